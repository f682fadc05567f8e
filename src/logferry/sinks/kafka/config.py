"""What a user writes to send records to a Kafka topic or an Azure event hub.

Everything here is checked without I/O (``logferry validate``). The connection string is a secret
reference that may only be resolved at start, so its shape is checked by ``build``. Examples::

    sinks:
      hub:
        type: event_hubs
        inputs: [o365]
        connection_string: ${env:EVENTHUB_SEND_CONNECTION_STRING}   # a policy with the Send claim
        event_hub: securityevents
        partition_key: tenant

      topic:
        type: kafka
        inputs: [duo]
        bootstrap_servers: [kafka1.corp.example:9093]
        topic: security-logs
        security_protocol: SASL_SSL
        sasl_mechanism: SCRAM-SHA-512
        sasl_username: logferry
        sasl_password: ${env:KAFKA_PASSWORD}
        compression: zstd
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from pydantic import Field, field_validator, model_validator

from logferry.config.base import BuildContext, ClientTLSConfig, SinkConfig, TLSConfig
from logferry.config.secrets import Secret
from logferry.core.errors import ConfigError
from logferry.core.registry import register_sink
from logferry.net.http import is_loopback
from logferry.net.kafka import (
    KafkaConnection,
    RdkafkaValue,
    connection_string_parts,
    event_hubs_props,
    parse_connection_string,
    pick_event_hub,
)
from logferry.sinks.kafka.messages import KeyMode, LineEncoder, MessageFormat, MessageShape

if TYPE_CHECKING:
    from logferry.core.sink import Sink

__all__ = ["EVENT_HUBS_MAX_MESSAGE_BYTES", "EventHubsSinkConfig", "KafkaSinkConfig"]

Compression = Literal["none", "gzip", "snappy", "lz4", "zstd"]
#: Microsoft: "Event Hubs currently supports gzip compression" (Kafka endpoint; AMQP sends uncompressed).
EventHubsCompression = Literal["none", "gzip"]
#: Event Hubs refuses an event (or a Kafka record batch) over 1 MB; this leaves room for the
#: protocol's own bytes around the largest message.
EVENT_HUBS_MAX_MESSAGE_BYTES = 1_000_000
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
DEFAULT_DELIVERY_TIMEOUT_SECS = 30.0


class _ProducerConfig(SinkConfig):
    """Options both sink types share: message shape, partition key, timing."""

    format: MessageFormat = Field(
        "event",
        description="'event': one message per record. 'array': the records of a request that share a "
        "partition key go out as JSON arrays, each message at most max_message_bytes (fewer, larger "
        "messages; the consumers must expect arrays).",
        examples=["event", "array"],
    )
    partition_key: KeyMode = Field(
        "none",
        description="What becomes the message key, which picks the partition (records with the same "
        "key stay in order): 'none' (spread over partitions), 'source' (the logferry source's name), "
        "'tenant' (the first present of TenantId, OrganizationId, tenantId, organizationId, tenant_id, "
        "AADTenantId) or 'field' (partition_key_field). Records without the value are sent without a key.",
        examples=["tenant"],
    )
    partition_key_field: str | None = Field(
        None,
        min_length=1,
        description="The record field whose value is the key with partition_key: field; a dotted "
        "path reaches into nested objects.",
        examples=["properties.tenantId"],
    )
    max_message_bytes: int = Field(
        DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024,
        le=100 * 1024 * 1024,
        description="Largest message (key plus value) logferry sends; a single record larger than this "
        "is dead-lettered with the reason instead of being retried forever. Keep it at or below the "
        "broker's and topic's max.message.bytes.",
        examples=[DEFAULT_MAX_MESSAGE_BYTES],
    )
    delivery_timeout_secs: float = Field(
        DEFAULT_DELIVERY_TIMEOUT_SECS,
        gt=0,
        le=900,
        description="How long a message may wait for its acknowledgement before the attempt counts as "
        "failed (librdkafka message.timeout.ms for Kafka; for AMQP, filling the batches and then each "
        "batch's transfer). A timeout after part of a request was stored splits the request in halves.",
        examples=[30],
    )

    @model_validator(mode="after")
    def _key_field(self) -> _ProducerConfig:
        if self.partition_key == "field" and not self.partition_key_field:
            raise ValueError(
                "partition_key: field needs partition_key_field, "
                "e.g. partition_key_field: properties.tenantId"
            )
        if self.partition_key != "field" and self.partition_key_field:
            raise ValueError(
                f"partition_key_field is used only with partition_key: field (now {self.partition_key}); "
                "set partition_key: field or remove partition_key_field"
            )
        return self

    def line_encoder(self) -> LineEncoder:
        return LineEncoder(self.partition_key, self.partition_key_field)

    def message_shape(self) -> MessageShape:
        return MessageShape(self.format, self.max_message_bytes)

    def _producer_props(self, client_id: str, compression: Compression) -> dict[str, RdkafkaValue]:
        return {
            "client.id": client_id,
            # Safe resends within one producer session: the broker drops a retried duplicate.
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": compression,
            "message.timeout.ms": int(self.delivery_timeout_secs * 1000),
            # librdkafka counts a little framing into a message's size; our own check is exact.
            "message.max.bytes": self.max_message_bytes + 4096,
            # A typo in the topic must not create a topic on clusters that allow that.
            "allow.auto.create.topics": False,
        }


@register_sink("kafka")
class KafkaSinkConfig(KafkaConnection, _ProducerConfig):
    """Produce records to a topic of any Kafka cluster (idempotent, acks=all)."""

    type: Literal["kafka"] = Field(description="Sink type.", examples=["kafka"])
    topic: str = Field(min_length=1, description="The topic to produce to.", examples=["security-logs"])
    client_id: str | None = Field(
        None,
        min_length=1,
        description="Kafka client.id the brokers see (quotas, logs). Default: logferry-<sink name>.",
        examples=["logferry-siem"],
    )
    compression: Compression = Field(
        "none",
        description="Compression of record batches: none, gzip, snappy, lz4 or zstd (zstd needs brokers "
        "2.1+).",
        examples=["zstd"],
    )

    def build(self, name: str, ctx: BuildContext) -> Sink:
        from logferry.sinks.kafka.producer import KafkaSink, ProducerSettings

        if self.security_protocol != "PLAINTEXT":
            tls_context(self.tls, f"sinks.{name}")
        props = {
            **self.connection_props(),
            **self._producer_props(self.client_id or f"logferry-{name}", self.compression),
        }
        settings = ProducerSettings(
            props=props,
            topic=self.topic,
            where=f"Kafka brokers {', '.join(self.bootstrap_servers)} (topic {self.topic})",
            hint="check bootstrap_servers, security_protocol and that this host can reach the brokers",
            timeout_secs=self.delivery_timeout_secs,
        )
        return KafkaSink(
            name, settings, self.line_encoder(), self.message_shape(), ctx.logger.getChild(f"sink.{name}")
        )


@register_sink("event_hubs")
class EventHubsSinkConfig(_ProducerConfig):
    """Send records to an Azure event hub, through its Kafka endpoint or the AMQP SDK."""

    type: Literal["event_hubs"] = Field(description="Sink type.", examples=["event_hubs"])
    connection_string: Secret = Field(
        description="Connection string of a shared access policy with the Send claim, by reference "
        "(namespace or event hub > Shared access policies > Connection string-primary key).",
        examples=["${env:EVENTHUB_SEND_CONNECTION_STRING}"],
    )
    event_hub: str | None = Field(
        None,
        min_length=1,
        description="The event hub to send to. Default: the connection string's EntityPath (present "
        "when the policy belongs to the hub, not the namespace).",
        examples=["securityevents"],
    )
    protocol: Literal["kafka", "amqp"] = Field(
        "kafka",
        description="'kafka': the namespace's Kafka endpoint on port 9093 (Standard tier and up). "
        "'amqp': Microsoft's azure-eventhub SDK over AMQP on port 5671 (every tier; "
        "pip install 'logferry[eventhubs]').",
        examples=["kafka", "amqp"],
    )
    amqp_endpoint: str | None = Field(
        None,
        description="Connect here instead of the namespace's own address (protocol amqp only): a private "
        "endpoint or a proxy in front of Event Hubs, as sb://HOST:PORT. TLS and the SAS token are "
        "still those of the namespace.",
        examples=["sb://eventhubs-proxy.corp.example:5671"],
    )
    compression: EventHubsCompression = Field(
        "none",
        description="Compression of Kafka record batches (protocol kafka only): none or gzip, the only "
        "codec Event Hubs supports.",
        examples=["gzip"],
    )
    max_message_bytes: int = Field(
        EVENT_HUBS_MAX_MESSAGE_BYTES,
        ge=1024,
        le=EVENT_HUBS_MAX_MESSAGE_BYTES,
        description="Largest message (key plus value) logferry sends, at most 1000000 (Event Hubs refuses "
        "events over 1 MB). A single record larger than this is dead-lettered with the reason.",
        examples=[EVENT_HUBS_MAX_MESSAGE_BYTES],
    )
    tls: TLSConfig = Field(
        TLSConfig(), description="TLS settings (a TLS-inspecting proxy's CA, for instance)."
    )

    @field_validator("compression", mode="before")
    @classmethod
    def _gzip_only(cls, v: Any) -> Any:
        if v in ("snappy", "lz4", "zstd"):
            raise ValueError(
                f"{v} is not supported by Event Hubs, which supports gzip compression only; "
                "use compression: gzip or none"
            )
        return v

    @model_validator(mode="after")
    def _protocol_options(self) -> EventHubsSinkConfig:
        if self.protocol == "amqp" and self.compression != "none":
            raise ValueError(
                "compression applies to protocol kafka only (the AMQP SDK sends uncompressed); "
                "remove compression or set protocol: kafka"
            )
        if self.amqp_endpoint is not None:
            if self.protocol != "amqp":
                raise ValueError(
                    "amqp_endpoint is used only with protocol: amqp; remove it or set protocol: amqp"
                )
            url = urlparse(self.amqp_endpoint)
            try:
                port_ok = url.port is None or url.port > 0
            except ValueError:  # a port that is not a number, or out of 0-65535
                port_ok = False
            if url.scheme != "sb" or not url.hostname or not port_ok:
                raise ValueError(f"amqp_endpoint must look like sb://HOST:PORT, got {self.amqp_endpoint!r}")
        return self

    def build(self, name: str, ctx: BuildContext) -> Sink:
        secret = self.connection_string.reveal()
        field = f"sinks.{name}"
        try:
            endpoint = parse_connection_string(secret)
        except ValueError as exc:
            raise ConfigError([f"{field}.connection_string: {exc}"]) from None
        host = endpoint.host
        hub, problem = pick_event_hub(self.event_hub, endpoint.entity, "write")
        if problem is not None or hub is None:
            raise ConfigError([f"{field}.{problem}"])
        emulator = connection_string_parts(secret).get("usedevelopmentemulator", "").lower() == "true"
        logger = ctx.logger.getChild(f"sink.{name}")
        context = tls_context(self.tls, field)
        if self.protocol == "amqp":
            if emulator:
                _emulator_is_local(field, host, self.amqp_endpoint)
            try:
                from logferry.sinks.kafka.amqp import AmqpSink
            except ImportError:
                raise ConfigError(
                    [f"{field}.protocol: amqp needs Microsoft's SDK: pip install 'logferry[eventhubs]'"]
                ) from None

            return AmqpSink(
                name,
                secret,
                hub,
                f"Event Hubs {self.amqp_endpoint or host} hub {hub} (AMQP)",
                context,
                self.amqp_endpoint,
                self.line_encoder(),
                self.message_shape(),
                self.delivery_timeout_secs,
                logger,
            )
        if emulator:
            raise ConfigError(
                [
                    f"{field}.connection_string: UseDevelopmentEmulator=true is supported with "
                    "protocol: amqp only; set protocol: amqp or use a namespace's connection string"
                ]
            )
        from logferry.sinks.kafka.producer import KafkaSink, ProducerSettings

        settings = ProducerSettings(
            props={
                **event_hubs_props(endpoint, secret, self.tls),
                **self._producer_props(f"logferry-{name}", self.compression),
            },
            topic=hub,
            where=f"Event Hubs {endpoint.kafka_bootstrap} hub {hub}",
            hint="check the connection string, that the namespace is Standard tier or above (the Kafka "
            "endpoint is not in Basic) and that this host can reach port 9093",
            timeout_secs=self.delivery_timeout_secs,
        )
        return KafkaSink(name, settings, self.line_encoder(), self.message_shape(), logger)


def tls_context(tls: TLSConfig, field: str) -> ssl.SSLContext:
    """The client TLS context; a ``tls.ca_file`` that does not load is refused here, naming the field,
    rather than failing every send."""
    try:
        return ClientTLSConfig(verify=tls.verify, ca_file=tls.ca_file).client_context()
    except ValueError as exc:
        raise ConfigError([f"{field}.{exc}"]) from None


def _emulator_is_local(field: str, host: str, endpoint: str | None) -> None:
    """``UseDevelopmentEmulator=true`` makes the SDK speak plain AMQP (no TLS) wherever it connects:
    the SAS token and the records would cross the network in clear unless that is this machine."""
    where = [("connection_string", host)]
    if endpoint is not None:
        where.append(("amqp_endpoint", urlparse(endpoint).hostname or endpoint))
    for option, target in where:
        if not is_loopback(f"http://[{target}]" if ":" in target else f"http://{target}"):
            raise ConfigError(
                [
                    f"{field}.{option}: UseDevelopmentEmulator=true in the connection string turns TLS "
                    f"off, which is allowed only for a local emulator (localhost), not {target}; "
                    "use a namespace's connection string or a local endpoint"
                ]
            )
