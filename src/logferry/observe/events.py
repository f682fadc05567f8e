"""Named telemetry events: one log line and the matching counters, emitted together.

Components never touch a counter and write a log line separately; they emit an event, so the
two cannot drift apart (the pattern of Vector's ``internal_events``). An event is a small frozen
dataclass. Its fields become the log line's fields, and ``record()`` updates the metrics. Fields
used as metric labels (``source``, ``sink``, ``component``, ``stage``, ``reason``) must come from
a bounded set; free text such as ``message`` only goes to the log.

Usage::

    SourcePageFetched(source="duo", events=len(batch)).emit(metrics)
    SinkRetryScheduled(sink="sentinel", reason="http_503", delay_secs=2.0, attempt=3).emit(metrics)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import ClassVar

from logferry.observe.logging import log_event
from logferry.observe.metrics import Metrics, status_class, status_label

__all__ = [
    "BackpressureWaited",
    "EventsDeadLettered",
    "EventsDeduplicated",
    "EventsUnrouted",
    "HttpResponseReceived",
    "OutboxDepthChanged",
    "RateLimitWaited",
    "ReceiverConnectionsChanged",
    "ReceiverMessagesCounted",
    "ReceiverMessagesDropped",
    "SinkEventsDelivered",
    "SinkRequestSent",
    "SinkRetryScheduled",
    "SourceItemsSkipped",
    "SourcePageFetched",
    "SourcePollFailed",
    "SourcePollSucceeded",
    "SourceRecordsFiltered",
    "SourceRecordsUnrecognised",
    "TelemetryEvent",
]

_log = logging.getLogger("logferry.events")


@dataclass(frozen=True, slots=True)
class TelemetryEvent:
    """Base class: ``emit()`` records the metrics, then logs ``name`` at ``level`` (None: no log).

    Events on the per-request path log at debug or not at all; there is no per-record logging.
    """

    name: ClassVar[str] = "event"
    level: ClassVar[int | None] = logging.DEBUG

    def emit(self, metrics: Metrics) -> None:
        self.record(metrics)
        if self.level is not None and _log.isEnabledFor(self.level):
            fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
            log_event(_log, self.level, self.name, **fields)

    def record(self, metrics: Metrics) -> None:
        """Update ``metrics``; subclasses override."""


@dataclass(frozen=True, slots=True)
class SourcePageFetched(TelemetryEvent):
    """A source read one page of ``events`` records."""

    name: ClassVar[str] = "source_page_fetched"
    source: str
    events: int

    def record(self, metrics: Metrics) -> None:
        metrics.pages.labels(source=self.source).inc()
        metrics.events_received.labels(source=self.source).inc(self.events)


@dataclass(frozen=True, slots=True)
class SourcePollSucceeded(TelemetryEvent):
    """A poll cycle finished. ``events`` is logged only: pages already counted them.

    ``cursor_at`` is the committed cursor (Unix seconds); the lag gauge is ``at - cursor_at``.
    """

    name: ClassVar[str] = "source_poll_succeeded"
    level: ClassVar[int | None] = logging.INFO
    source: str
    events: int
    cursor_at: float | None = None
    at: float = dataclasses.field(default_factory=time.time)

    def record(self, metrics: Metrics) -> None:
        metrics.polls.labels(source=self.source, outcome="ok").inc()
        metrics.last_success.labels(source=self.source).set(self.at)
        if self.cursor_at is not None:
            metrics.source_lag.labels(source=self.source).set(max(0.0, self.at - self.cursor_at))


@dataclass(frozen=True, slots=True)
class SourcePollFailed(TelemetryEvent):
    """A poll cycle failed; ``error_type`` is the exception class name, ``message`` its redacted text."""

    name: ClassVar[str] = "source_poll_failed"
    level: ClassVar[int | None] = logging.WARNING
    source: str
    error_type: str
    message: str

    def record(self, metrics: Metrics) -> None:
        metrics.polls.labels(source=self.source, outcome="error").inc()


@dataclass(frozen=True, slots=True)
class SourceItemsSkipped(TelemetryEvent):
    """The vendor no longer serves an item the source had queued (an expired content blob).

    Nothing can bring it back, so it is counted and reported rather than retried forever;
    ``reason`` is a short code (``expired``, ``not_found``), ``item`` names what was lost.
    """

    name: ClassVar[str] = "source_items_skipped"
    level: ClassVar[int | None] = logging.WARNING
    source: str
    reason: str
    item: str

    def record(self, metrics: Metrics) -> None:
        metrics.source_items_skipped.labels(source=self.source, reason=self.reason).inc()


@dataclass(frozen=True, slots=True)
class SourceRecordsUnrecognised(TelemetryEvent):
    """``count`` records in a layout the parser does not know (a new vendor log version) were delivered
    with raw columns instead of named fields; ``kind`` is the bounded layout name (``umbrella_dns``),
    ``item`` where they came from (an object key)."""

    name: ClassVar[str] = "source_records_unrecognised"
    level: ClassVar[int | None] = logging.WARNING
    source: str
    kind: str
    count: int
    item: str

    def record(self, metrics: Metrics) -> None:
        metrics.source_records_unrecognised.labels(source=self.source, kind=self.kind).inc(self.count)


@dataclass(frozen=True, slots=True)
class SourceRecordsFiltered(TelemetryEvent):
    """A pull source left out ``count`` records on purpose (its own filter, such as Kafka's
    ``categories``): counted so a filter that drops too much shows, never stored."""

    name: ClassVar[str] = "source_records_filtered"
    level: ClassVar[int | None] = None
    source: str
    count: int

    def record(self, metrics: Metrics) -> None:
        metrics.source_records_filtered.labels(source=self.source).inc(self.count)


@dataclass(frozen=True, slots=True)
class ReceiverMessagesCounted(TelemetryEvent):
    """A push input committed ``messages`` from ``sender`` and filtered out ``filtered`` more."""

    name: ClassVar[str] = "receiver_messages_counted"
    level: ClassVar[int | None] = None
    source: str
    sender: str
    messages: int
    filtered: int = 0

    def record(self, metrics: Metrics) -> None:
        if self.messages:
            metrics.receiver_messages.labels(source=self.source, sender=self.sender).inc(self.messages)
        if self.filtered:
            metrics.receiver_filtered.labels(source=self.source).inc(self.filtered)


@dataclass(frozen=True, slots=True)
class ReceiverMessagesDropped(TelemetryEvent):
    """A push input could not take ``count`` messages (or connections); never silent."""

    name: ClassVar[str] = "receiver_messages_dropped"
    level: ClassVar[int | None] = logging.WARNING
    source: str
    reason: str
    count: int

    def record(self, metrics: Metrics) -> None:
        metrics.receiver_dropped.labels(source=self.source, reason=self.reason).inc(self.count)


@dataclass(frozen=True, slots=True)
class ReceiverConnectionsChanged(TelemetryEvent):
    """A TCP/TLS connection opened or closed; ``open`` is how many are open now."""

    name: ClassVar[str] = "receiver_connections_changed"
    source: str
    open: int
    peer: str

    def record(self, metrics: Metrics) -> None:
        metrics.receiver_connections.labels(source=self.source).set(self.open)


@dataclass(frozen=True, slots=True)
class EventsDeduplicated(TelemetryEvent):
    """Records dropped because they were seen before (lookback overlap, vendor replays)."""

    name: ClassVar[str] = "events_deduplicated"
    source: str
    count: int

    def record(self, metrics: Metrics) -> None:
        metrics.events_deduplicated.labels(source=self.source).inc(self.count)


@dataclass(frozen=True, slots=True)
class BackpressureWaited(TelemetryEvent):
    """A source waited ``seconds`` for room in the outbox instead of dropping data."""

    name: ClassVar[str] = "backpressure_waited"
    source: str
    seconds: float

    def record(self, metrics: Metrics) -> None:
        metrics.backpressure_wait.labels(source=self.source).inc(self.seconds)


@dataclass(frozen=True, slots=True)
class SinkRequestSent(TelemetryEvent):
    """One delivery request finished; ``status`` is None when no response arrived."""

    name: ClassVar[str] = "sink_request_sent"
    sink: str
    status: int | None
    bytes: int

    def record(self, metrics: Metrics) -> None:
        metrics.sink_requests.labels(sink=self.sink, status_class=status_class(self.status)).inc()
        metrics.sink_request_bytes.labels(sink=self.sink).inc(self.bytes)


@dataclass(frozen=True, slots=True)
class SinkEventsDelivered(TelemetryEvent):
    """The SIEM accepted ``events`` records; emitted once per acknowledged batch."""

    name: ClassVar[str] = "sink_events_delivered"
    sink: str
    events: int

    def record(self, metrics: Metrics) -> None:
        metrics.events_delivered.labels(sink=self.sink).inc(self.events)


@dataclass(frozen=True, slots=True)
class SinkRetryScheduled(TelemetryEvent):
    """A delivery will be retried after ``delay_secs``; ``reason`` is a bounded label (``http_503``)."""

    name: ClassVar[str] = "sink_retry_scheduled"
    level: ClassVar[int | None] = logging.WARNING
    sink: str
    reason: str
    delay_secs: float
    attempt: int
    message: str = ""

    def record(self, metrics: Metrics) -> None:
        metrics.sink_retries.labels(sink=self.sink, reason=self.reason).inc()


@dataclass(frozen=True, slots=True)
class EventsDeadLettered(TelemetryEvent):
    """Records set aside as undeliverable; ``stage`` is where (``decode``, ``encode``, ``deliver``)."""

    name: ClassVar[str] = "events_dead_lettered"
    level: ClassVar[int | None] = logging.ERROR
    component: str
    stage: str
    count: int
    reason: str

    def record(self, metrics: Metrics) -> None:
        metrics.dead_letters.labels(component=self.component, stage=self.stage).inc(self.count)


@dataclass(frozen=True, slots=True)
class OutboxDepthChanged(TelemetryEvent):
    """The outbox for ``sink`` now holds ``events`` records in ``bytes`` bytes (gauges only)."""

    name: ClassVar[str] = "outbox_depth_changed"
    level: ClassVar[int | None] = None
    sink: str
    events: int
    bytes: int

    def record(self, metrics: Metrics) -> None:
        metrics.outbox_events.labels(sink=self.sink).set(self.events)
        metrics.outbox_bytes.labels(sink=self.sink).set(self.bytes)


@dataclass(frozen=True, slots=True)
class EventsUnrouted(TelemetryEvent):
    """``count`` new records of ``source`` matched no sink's ``where`` and went to no outbox."""

    name: ClassVar[str] = "events_unrouted"
    source: str
    count: int

    def record(self, metrics: Metrics) -> None:
        metrics.events_unrouted.labels(source=self.source).inc(self.count)


@dataclass(frozen=True, slots=True)
class RateLimitWaited(TelemetryEvent):
    """A component waited ``seconds`` on its rate limiter or a ``Retry-After``."""

    name: ClassVar[str] = "rate_limit_waited"
    component: str
    seconds: float

    def record(self, metrics: Metrics) -> None:
        metrics.rate_limit_wait.labels(component=self.component).inc(self.seconds)


@dataclass(frozen=True, slots=True)
class HttpResponseReceived(TelemetryEvent):
    """One outgoing HTTP request finished (metrics only; the HTTP logging policy writes the line)."""

    name: ClassVar[str] = "http_response_received"
    level: ClassVar[int | None] = None
    component: str
    status: int | None
    duration_secs: float

    def record(self, metrics: Metrics) -> None:
        metrics.http_requests.labels(component=self.component, status=status_label(self.status)).inc()
        metrics.http_request_duration.labels(component=self.component).observe(self.duration_secs)
