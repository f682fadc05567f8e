"""How logferry reaches a Kafka cluster or Event Hubs' Kafka endpoint, for the source and the sink alike.

Two ways in:

* ``kafka`` types: :class:`KafkaConnection` — bootstrap servers, PLAINTEXT / SSL / SASL_SSL, TLS;
* ``event_hubs`` types: a connection string, parsed by :func:`parse_connection_string` and turned
  into the Kafka endpoint's settings by :func:`event_hubs_props` (specs/event_hubs.md §2: bootstrap
  ``<namespace>.servicebus.windows.net:9093``, SASL_SSL, mechanism PLAIN, username
  ``$ConnectionString``, password = the connection string; only in the Standard tier and up).

The librdkafka properties hold the SASL password in clear text, so they are never logged, shown
in status or put in an error message; :func:`describe` gives the safe summary for those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Literal, NamedTuple
from urllib.parse import urlparse

from confluent_kafka import KafkaError
from pydantic import Field, field_validator, model_validator

from logferry.config.base import Model, TLSConfig
from logferry.config.secrets import Secret

__all__ = [
    "EVENT_HUBS_KAFKA_PORT",
    "EVENT_HUBS_USERNAME",
    "HOPELESS_CODES",
    "EventHubsEndpoint",
    "KafkaConnection",
    "RdkafkaValue",
    "connection_string_parts",
    "describe",
    "event_hubs_props",
    "librdkafka_logger",
    "parse_connection_string",
    "pick_event_hub",
    "tls_props",
]

RdkafkaValue = str | int | bool

#: Errors after which waiting longer for metadata will not help.
HOPELESS_CODES = frozenset(
    {
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError._SSL,
        KafkaError._RESOLVE,
    }
)

EVENT_HUBS_KAFKA_PORT = 9093
EVENT_HUBS_USERNAME = "$ConnectionString"

#: librdkafka properties that may carry a credential: never shown.
_SECRET_KEYS = frozenset({"sasl.password", "sasl.username", "ssl.key.password", "sasl.oauthbearer.config"})


def describe(props: Mapping[str, RdkafkaValue]) -> dict[str, RdkafkaValue]:
    """The properties without credentials, for messages and tests."""
    return {k: ("***" if k in _SECRET_KEYS else v) for k, v in props.items()}


def librdkafka_logger(logger: logging.Logger) -> logging.Logger:
    """The child logger a client hands librdkafka, which logs each identical line once a minute."""
    rdlog = logger.getChild("librdkafka")
    if not any(isinstance(f, _Repeats) for f in rdlog.filters):
        rdlog.addFilter(_Repeats())
    return rdlog


class _Repeats(logging.Filter):
    """librdkafka logs every reconnect attempt (many a second while brokers are down): the same
    line once a minute is enough; the component's health says the rest."""

    def __init__(self, every_secs: float = 60.0) -> None:
        super().__init__()
        self._every = every_secs
        self._seen: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        msg, now = record.getMessage(), time.monotonic()
        last = self._seen.get(msg)
        if last is not None and now - last < self._every:
            return False
        if len(self._seen) > 1000:
            self._seen.clear()
        self._seen[msg] = now
        return True


def tls_props(tls: TLSConfig) -> dict[str, RdkafkaValue]:
    props: dict[str, RdkafkaValue] = {
        "enable.ssl.certificate.verification": tls.verify,
        "ssl.endpoint.identification.algorithm": "https" if tls.verify else "none",
    }
    if tls.ca_file:
        props["ssl.ca.location"] = tls.ca_file
    return props


class EventHubsEndpoint(NamedTuple):
    """Where a connection string points: the namespace host, its Kafka port, the hub if any."""

    host: str
    kafka_port: int
    entity: str | None

    @property
    def kafka_bootstrap(self) -> str:
        return f"[{self.host}]:{self.kafka_port}" if ":" in self.host else f"{self.host}:{self.kafka_port}"


def parse_connection_string(value: str) -> EventHubsEndpoint:
    """The namespace an Event Hubs connection string points to.

    Shape: ``Endpoint=sb://<namespace>.servicebus.windows.net/;SharedAccessKeyName=<rule>;
    SharedAccessKey=<key>[;EntityPath=<hub>]``. The Kafka port is 9093 unless the Endpoint names
    another (an emulator, or a local front such as the simulator's). Raises ``ValueError`` with a
    message that never quotes the string (it holds the key).
    """
    parts = connection_string_parts(value)
    endpoint = parts.get("endpoint")
    if not endpoint:
        raise ValueError(
            "the connection string has no Endpoint=sb://<namespace>.servicebus.windows.net/; copy "
            "'Connection string-primary key' of a SAS policy (Event Hubs namespace > Shared access policies)"
        )
    url = urlparse(endpoint)
    try:
        host, port = url.hostname, url.port
    except ValueError:  # a port that is not a number, or out of 0-65535
        host, port = None, None
    if not host:
        raise ValueError(
            "the connection string's Endpoint is not a URL like sb://<namespace>.servicebus.windows.net/"
        )
    if "sharedaccesskey" not in parts:
        raise ValueError(
            "the connection string has no SharedAccessKey; the Kafka endpoint takes the policy's connection "
            "string, not a generated SAS token"
        )
    if not parts.get("sharedaccesskeyname"):
        raise ValueError(
            "the connection string has no SharedAccessKeyName (the policy's name); copy the whole "
            "'Connection string-primary key' of the SAS policy"
        )
    return EventHubsEndpoint(host, port or EVENT_HUBS_KAFKA_PORT, parts.get("entitypath") or None)


def connection_string_parts(value: str) -> dict[str, str]:
    """The ``Key=value`` pairs of a connection string, keys lower-cased (Azure treats them so)."""
    parts: dict[str, str] = {}
    for item in value.strip().split(";"):
        key, sep, val = item.partition("=")
        if sep:
            parts[key.strip().lower()] = val.strip()
    return parts


def pick_event_hub(configured: str | None, entity: str | None, claim: str) -> tuple[str | None, str | None]:
    """``(hub, problem)``: the ``event_hub`` option or else the connection string's EntityPath.

    ``claim`` is the SAS right the policy needs (``read``/``write``), for the mismatch message.
    Event Hubs entity names are not case-sensitive, so neither is the comparison.
    """
    hub = configured or entity
    if hub is None:
        return None, (
            "event_hub: required because the connection string has no EntityPath (it belongs to the "
            "namespace); set event_hub to the hub's name"
        )
    if configured and entity and configured.lower() != entity.lower():
        return hub, (
            f"event_hub: {configured!r} differs from the connection string's EntityPath {entity!r}; "
            f"a hub-level policy can {claim} only its own hub"
        )
    return hub, None


def event_hubs_props(
    endpoint: EventHubsEndpoint, connection_string: str, tls: TLSConfig
) -> dict[str, RdkafkaValue]:
    """Client properties for the Kafka endpoint of the namespace at ``endpoint``."""
    return {
        "bootstrap.servers": endpoint.kafka_bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": EVENT_HUBS_USERNAME,
        "sasl.password": connection_string,
        **tls_props(tls),
    }


class KafkaConnection(Model):
    """The options that say how to reach any Kafka cluster; mixed into the ``kafka`` source and sink."""

    bootstrap_servers: list[str] = Field(
        min_length=1,
        description="Brokers to bootstrap from, host:port.",
        examples=[["kafka1.corp.example:9093", "kafka2.corp.example:9093"]],
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="PLAINTEXT (no TLS, no authentication), SSL (TLS) or SASL_SSL (TLS plus a username "
        "and password). SASL without TLS is not offered: the password would cross the network in clear.",
        examples=["SASL_SSL"],
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism for SASL_SSL.", examples=["SCRAM-SHA-512"]
    )
    sasl_username: str | None = Field(
        None, description="SASL username (SASL_SSL only).", examples=["logferry"]
    )
    sasl_password: Secret | None = Field(
        None, description="SASL password by reference (SASL_SSL only).", examples=["${env:KAFKA_PASSWORD}"]
    )
    tls: TLSConfig = Field(TLSConfig(), description="TLS settings for SSL and SASL_SSL.")

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, v: list[str]) -> list[str]:
        for s in v:
            host, _, port = s.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{s!r} is not host:port; example: kafka1.corp.example:9093")
        return v

    @model_validator(mode="after")
    def _security(self) -> KafkaConnection:
        if self.security_protocol == "SASL_SSL":
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError(
                    "security_protocol SASL_SSL needs sasl_username and sasl_password "
                    "(e.g. sasl_password: ${env:KAFKA_PASSWORD})"
                )
        elif self.sasl_username or self.sasl_password is not None:
            raise ValueError(
                f"sasl_username/sasl_password are used only with security_protocol SASL_SSL "
                f"(now {self.security_protocol}); set security_protocol: SASL_SSL or remove them"
            )
        return self

    def connection_props(self) -> dict[str, RdkafkaValue]:
        """bootstrap, security, TLS and SASL properties; contains the password."""
        props: dict[str, RdkafkaValue] = {
            "bootstrap.servers": ",".join(self.bootstrap_servers),
            "security.protocol": self.security_protocol,
        }
        if self.security_protocol != "PLAINTEXT":
            props.update(tls_props(self.tls))
        if self.security_protocol == "SASL_SSL":
            assert self.sasl_username is not None and self.sasl_password is not None  # validated above
            props["sasl.mechanism"] = self.sasl_mechanism
            props["sasl.username"] = self.sasl_username
            props["sasl.password"] = self.sasl_password.reveal()
        return props
