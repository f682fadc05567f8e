"""Configuration of the ``kafka`` and ``event_hubs`` sources: how to reach the brokers.

Both types share one implementation (:mod:`logferry.sources.kafka.source`); a config only builds
the librdkafka properties. Examples::

    sources:
      entra:
        type: event_hubs
        connection_string: ${env:EVENTHUB_CONNECTION_STRING}   # SAS policy with the Listen claim
        event_hub: insights-logs-signinlogs
        consumer_group: logferry-entra                         # created on first use; unique in the namespace

      app:
        type: kafka
        bootstrap_servers: [kafka1.corp.example:9093, kafka2.corp.example:9093]
        topics: [security-logs]
        group_id: logferry
        security_protocol: SASL_SSL
        sasl_mechanism: SCRAM-SHA-512
        sasl_username: logferry
        sasl_password: ${env:KAFKA_PASSWORD}

Event Hubs' Kafka endpoint (specs/event_hubs.md §2): bootstrap ``<namespace>.servicebus.windows.net
:9093``, SASL_SSL, mechanism PLAIN, username ``$ConnectionString``, password = the connection string.
It exists only in the Standard, Premium and Dedicated tiers. Kafka consumer groups there are
created automatically and are distinct from the portal's Event Hubs consumer groups (Microsoft's
"Frequently asked questions - Event Hubs for Apache Kafka", Event Hubs consumer group vs. Kafka
consumer group).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from logferry.config.base import BuildContext, SourceConfig, TLSConfig
from logferry.config.secrets import Secret
from logferry.core.registry import register_source
from logferry.net.kafka import (
    EVENT_HUBS_KAFKA_PORT,
    EventHubsEndpoint,
    KafkaConnection,
    RdkafkaValue,
    event_hubs_props,
    parse_connection_string,
    pick_event_hub,
)
from logferry.sources.kafka.envelope import Envelope, MessageFormat
from logferry.sources.kafka.settings import ConsumerSettings

if TYPE_CHECKING:
    from logferry.sources.kafka.source import KafkaSource

__all__ = ["EventHubsConfig", "KafkaConfig", "parse_connection_string"]

DEFAULT_BATCH_MAX_EVENTS = 500
DEFAULT_BATCH_WAIT_SECS = 1.0
DEFAULT_SESSION_TIMEOUT_SECS = 45.0  # Kafka's own default (session.timeout.ms=45000)
DEFAULT_STALE_AFTER_SECS = 300.0
#: Event Hubs' own name for the consumer group every hub has (specs/event_hubs.md §1).
EVENT_HUBS_DEFAULT_GROUP = "$Default"

StartOffset = Literal["earliest", "latest"]


class _ConsumerConfig(SourceConfig):
    """Options every Kafka-protocol source shares: decoding, batching, group timing."""

    stale_after_secs: float | None = Field(
        None,
        gt=0,
        description="Health turns red when the brokers have not been reached for this long (unreachable, "
        "credentials refused, topic missing). Default: 300.",
        examples=[300],
    )
    format: MessageFormat = Field(
        "json",
        description="How message values are read: 'json' (an object is one record, an array one record "
        "per element; anything else is dead-lettered with the reason) or 'text' (each message is one "
        'record {"message": "..."}).',
        examples=["json"],
    )
    categories: list[str] = Field(
        default_factory=list,
        description="Keep only records whose 'category' is one of these (case-insensitive); empty keeps "
        "all. With one source (and consumer group) per category set, each set can go to its own sink.",
        examples=[["SignInLogs", "NonInteractiveUserSignInLogs"]],
    )
    include_metadata: bool = Field(
        False,
        description="Add '_kafka': {topic, partition, offset, timestamp, key} to every record.",
        examples=[True],
    )
    start_offset: StartOffset = Field(
        "earliest",
        description="Where a consumer group with no committed offset starts: 'earliest' (everything the "
        "topic still retains) or 'latest' (only new messages). Committed offsets always win.",
        examples=["earliest"],
    )
    batch_max_events: int = Field(
        DEFAULT_BATCH_MAX_EVENTS,
        ge=1,
        le=100_000,
        description="Messages read per batch; a batch is committed to the outbox, then its offsets to "
        "Kafka. A crash between the two replays at most this many messages (dropped again by id).",
        examples=[500],
    )
    batch_wait_secs: float = Field(
        DEFAULT_BATCH_WAIT_SECS,
        gt=0,
        le=5,
        description="Longest wait to fill a batch before committing what has arrived (at most 5 s, so a "
        "stop is never held up for long).",
        examples=[1.0],
    )
    session_timeout_secs: float = Field(
        DEFAULT_SESSION_TIMEOUT_SECS,
        ge=1,
        le=3600,
        description="A consumer that stops heartbeating (a crashed instance) keeps its partitions for this "
        "long before the group hands them to the others (librdkafka session.timeout.ms). The broker "
        "bounds it (Kafka: 6 to 300 s by default).",
        examples=[45],
    )

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: list[str]) -> list[str]:
        if any(not c.strip() for c in v):
            raise ValueError("categories must not contain empty names; example: [AuditLogs, SignInLogs]")
        return v

    def _common_props(self, name: str, group: str) -> dict[str, RdkafkaValue]:
        return {
            "group.id": group,
            "client.id": f"logferry-{name}",
            # Offsets are committed by logferry after the records are in the outbox, never by
            # librdkafka on a timer: an auto-commit could run ahead of what was stored.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.start_offset,
            "session.timeout.ms": int(self.session_timeout_secs * 1000),
            "heartbeat.interval.ms": max(100, int(self.session_timeout_secs * 1000 / 10)),
            "enable.partition.eof": False,
        }

    def _settings(
        self, props: dict[str, RdkafkaValue], topics: list[str], unwrap: bool, where: str, hint: str
    ) -> ConsumerSettings:
        return ConsumerSettings(
            props=props,
            topics=topics,
            envelope=Envelope(
                format=self.format,
                unwrap_records=unwrap,
                categories=frozenset(c.lower() for c in self.categories),
            ),
            where=where,
            include_metadata=self.include_metadata,
            batch_max_events=self.batch_max_events,
            batch_wait_secs=self.batch_wait_secs,
            stale_after_secs=self.stale_after_secs or DEFAULT_STALE_AFTER_SECS,
            unreachable_hint=hint,
        )


@register_source("kafka")
class KafkaConfig(KafkaConnection, _ConsumerConfig):
    """Any Kafka cluster: consumer-group consumption, offsets committed after the outbox commit."""

    type: Literal["kafka"] = Field(description="Source type.", examples=["kafka"])
    topics: list[str] = Field(min_length=1, description="Topics to consume.", examples=[["security-logs"]])
    group_id: str = Field(
        min_length=1,
        description="Consumer group. Every logferry instance with the same group shares the partitions; "
        "use a group no other application uses.",
        examples=["logferry"],
    )
    unwrap_records: bool = Field(
        False,
        description='Split a JSON object {"records": [...]} (the Azure diagnostic-settings envelope) into '
        "one record per entry.",
        examples=[True],
    )

    def consumer_settings(self, name: str) -> ConsumerSettings:
        props = {**self.connection_props(), **self._common_props(name, self.group_id)}
        where = f"Kafka brokers {', '.join(self.bootstrap_servers)} (group {self.group_id})"
        return self._settings(
            props,
            list(self.topics),
            self.unwrap_records,
            where,
            "check bootstrap_servers, security_protocol and that this host can reach the brokers",
        )

    def build(self, name: str, ctx: BuildContext) -> KafkaSource:
        from logferry.sources.kafka.source import KafkaSource

        return KafkaSource(name, self.consumer_settings(name), ctx.metrics)


@register_source("event_hubs")
class EventHubsConfig(_ConsumerConfig):
    """Azure Event Hubs via its Kafka endpoint (Standard tier and up): diagnostic settings, Entra ID logs."""

    type: Literal["event_hubs"] = Field(description="Source type.", examples=["event_hubs"])
    connection_string: Secret = Field(
        description="Connection string of a shared access policy with the Listen claim, by reference "
        "(namespace or event hub > Shared access policies > Connection string-primary key).",
        examples=["${env:EVENTHUB_CONNECTION_STRING}"],
    )
    event_hub: str | None = Field(
        None,
        min_length=1,
        description="The event hub (Kafka topic) to read. Default: the connection string's EntityPath "
        "(present when the policy belongs to the hub, not the namespace).",
        examples=["insights-logs-signinlogs"],
    )
    consumer_group: str = Field(
        EVENT_HUBS_DEFAULT_GROUP,
        min_length=1,
        description="Kafka consumer group: all logferry instances with this group share the partitions. "
        "Nothing to create in Azure: Kafka groups on Event Hubs are created on first use, are not the "
        "portal's consumer groups and span the namespace, so pick a name no other Kafka client of the "
        "namespace uses.",
        examples=["logferry-entra"],
    )
    unwrap_records: bool = Field(
        True,
        description='Split the diagnostic-settings envelope {"records": [...]} into one record per entry.',
        examples=[True],
    )
    tls: TLSConfig = Field(
        TLSConfig(), description="TLS settings (a TLS-inspecting proxy's CA, for instance)."
    )

    def consumer_settings(self, name: str) -> ConsumerSettings:
        try:
            endpoint = parse_connection_string(self.connection_string.reveal())
            problem = None
        except ValueError as exc:
            endpoint, problem = (
                EventHubsEndpoint("", EVENT_HUBS_KAFKA_PORT, None),
                f"connection_string: {exc}",
            )
        hub, hub_problem = pick_event_hub(self.event_hub, endpoint.entity, "read")
        problem = problem or hub_problem
        props = {
            **event_hubs_props(endpoint, self.connection_string.reveal(), self.tls),
            **self._common_props(name, self.consumer_group),
        }
        settings = self._settings(
            props,
            [hub or ""],
            self.unwrap_records,
            f"Event Hubs {endpoint.kafka_bootstrap} hub {hub} (consumer group {self.consumer_group})",
            "check the connection string, that the namespace is Standard tier or above (the Kafka endpoint "
            "is not in Basic) and that this host can reach port 9093",
        )
        return settings if problem is None else replace(settings, problem=problem)

    def build(self, name: str, ctx: BuildContext) -> KafkaSource:
        from logferry.sources.kafka.source import KafkaSource

        return KafkaSource(name, self.consumer_settings(name), ctx.metrics)
