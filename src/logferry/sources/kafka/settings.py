"""What the Kafka source runs on, whichever config type (``kafka`` or ``event_hubs``) built it.

The two config types differ only in how they reach the brokers; everything after that — the
consumer group, batching, envelopes, commits — is one implementation. A config hands the source a
:class:`ConsumerSettings`: the librdkafka properties, the topics and the decoding rules.

The librdkafka properties hold the SASL password in clear text, so they are never logged, shown
in status or put in an error message; :func:`~logferry.net.kafka.describe` gives the safe summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from logferry.net.kafka import RdkafkaValue, describe
from logferry.sources.kafka.envelope import Envelope

__all__ = ["ConsumerSettings", "RdkafkaValue", "describe"]


@dataclass(frozen=True)
class ConsumerSettings:
    #: librdkafka consumer properties (bootstrap, security, group); contains secrets.
    props: Mapping[str, RdkafkaValue] = field(repr=False)
    topics: Sequence[str]
    envelope: Envelope
    #: Where the records come from, in words (no secrets): used in health and check messages.
    where: str
    #: Add ``_kafka`` {topic, partition, offset, timestamp, key} to every record.
    include_metadata: bool
    batch_max_events: int
    batch_wait_secs: float
    stale_after_secs: float
    #: A problem found in the config that only shows at build time (a malformed connection
    #: string): the source reports it as its health reason instead of connecting.
    problem: str | None = None
    #: What to tell the user when the brokers cannot be reached (tier, port, firewall).
    unreachable_hint: str = "check bootstrap_servers and that this host can reach the brokers"
