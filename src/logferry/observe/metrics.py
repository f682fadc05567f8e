"""Prometheus metrics for one pipeline, on a registry of its own.

Each :class:`Metrics` owns a ``CollectorRegistry`` instead of using the global one, so several
pipelines (tests, ``logferry check`` next to a running service) can live in one process without
"Duplicated timeseries" errors. Names follow ``logferry_<noun>_<unit>_total``. Label values must
be bounded: configured component names, outcomes, status classes, reasons from a fixed set. Never
URLs, tenant or record ids, or error text, which would explode cardinality and can carry secrets.

Usage::

    metrics = Metrics()
    metrics.events_received.labels(source="duo").inc(120)
    metrics.sink_requests.labels(sink="sentinel", status_class=status_class(204)).inc()
    body = metrics.render()
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics", "status_class", "status_label"]

# The classic text format; generate_latest() writes it whatever CONTENT_TYPE_LATEST says in newer
# prometheus_client releases.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_HTTP_DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


def status_class(status: int | None) -> str:
    """``"2xx"`` ... ``"5xx"`` for an HTTP status, ``"error"`` when no response arrived."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return f"{status // 100}xx"


def status_label(status: int | None) -> str:
    """The numeric status as a label value (a bounded set), or ``"error"`` when no response arrived."""
    if status is None or not 100 <= status <= 599:
        return "error"
    return str(status)


class Metrics:
    """Every logferry metric, as typed attributes on a private registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry

        # Sources
        self.events_received = Counter(
            "logferry_source_events_received_total", "Events read from a source.", ["source"], registry=r
        )
        self.events_deduplicated = Counter(
            "logferry_source_events_deduplicated_total",
            "Events dropped because they were already delivered (lookback overlap, vendor replays).",
            ["source"],
            registry=r,
        )
        self.source_items_skipped = Counter(
            "logferry_source_items_skipped_total",
            "Queued vendor items the vendor no longer serves (expired content), by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.source_records_unrecognised = Counter(
            "logferry_source_records_unrecognised_total",
            "Records delivered with raw columns because their layout (log version) is unknown, by kind.",
            ["source", "kind"],
            registry=r,
        )
        self.source_records_filtered = Counter(
            "logferry_source_records_filtered_total",
            "Records a source left out on purpose by its own filter (e.g. Kafka categories).",
            ["source"],
            registry=r,
        )
        self.polls = Counter(
            "logferry_source_polls_total",
            "Poll cycles by outcome (ok|error).",
            ["source", "outcome"],
            registry=r,
        )
        self.pages = Counter(
            "logferry_source_pages_total", "Pages fetched from a source.", ["source"], registry=r
        )
        self.last_success = Gauge(
            "logferry_source_last_success_timestamp_seconds",
            "Unix time of the last successful poll.",
            ["source"],
            registry=r,
        )
        self.source_lag = Gauge(
            "logferry_source_lag_seconds",
            "How far the source's committed cursor is behind now.",
            ["source"],
            registry=r,
        )
        self.backpressure_wait = Counter(
            "logferry_backpressure_wait_seconds_total",
            "Time a source spent waiting for room in the outbox.",
            ["source"],
            registry=r,
        )

        # Push inputs (syslog and other receivers)
        self.receiver_messages = Counter(
            "logferry_receiver_messages_total",
            "Messages a push input received, by sender address (the first 1,000 senders of a source; "
            "later ones count as 'other').",
            ["source", "sender"],
            registry=r,
        )
        self.receiver_filtered = Counter(
            "logferry_receiver_filtered_total",
            "Messages left out on purpose by the source's facility/severity filters.",
            ["source"],
            registry=r,
        )
        self.receiver_dropped = Counter(
            "logferry_receiver_dropped_total",
            "Messages or connections a push input could not take, by reason (queue_full: UDP while the "
            "outbox pushed back; kernel: the UDP socket buffer overflowed; denied: sender not in "
            "allowed_senders; too_many_connections).",
            ["source", "reason"],
            registry=r,
        )
        self.receiver_connections = Gauge(
            "logferry_receiver_connections",
            "Open TCP/TLS connections of a push input.",
            ["source"],
            registry=r,
        )

        # Sinks
        self.events_delivered = Counter(
            "logferry_sink_events_delivered_total", "Events accepted by a sink.", ["sink"], registry=r
        )
        self.sink_requests = Counter(
            "logferry_sink_requests_total",
            "Delivery requests by status class (2xx|4xx|5xx|error).",
            ["sink", "status_class"],
            registry=r,
        )
        self.sink_retries = Counter(
            "logferry_sink_retries_total", "Delivery retries by reason.", ["sink", "reason"], registry=r
        )
        self.sink_request_bytes = Counter(
            "logferry_sink_request_bytes_total", "Request body bytes sent to a sink.", ["sink"], registry=r
        )
        self.sink_fields_oversized = Counter(
            "logferry_sink_fields_oversized_total",
            "Field values larger than the destination keeps; it truncates them.",
            ["sink"],
            registry=r,
        )
        self.outbox_bytes = Gauge(
            "logferry_outbox_bytes", "Bytes waiting in a sink's outbox.", ["sink"], registry=r
        )
        self.outbox_events = Gauge(
            "logferry_outbox_events", "Events waiting in a sink's outbox.", ["sink"], registry=r
        )
        self.events_unrouted = Counter(
            "logferry_source_events_unrouted_total",
            "New events of a source that no sink's `where` took, so no sink received them.",
            ["source"],
            registry=r,
        )

        # Shared
        self.dead_letters = Counter(
            "logferry_dead_letters_total",
            "Events set aside as undeliverable, by component and stage.",
            ["component", "stage"],
            registry=r,
        )
        self.http_requests = Counter(
            "logferry_http_requests_total",
            "Outgoing HTTP requests by numeric status, or 'error' when no response arrived.",
            ["component", "status"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "logferry_http_request_duration_seconds",
            "Outgoing HTTP request latency, including reading the body.",
            ["component"],
            buckets=_HTTP_DURATION_BUCKETS,
            registry=r,
        )
        self.rate_limit_wait = Counter(
            "logferry_rate_limit_wait_seconds_total",
            "Time spent waiting on a rate limiter or a Retry-After.",
            ["component"],
            registry=r,
        )

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format (see :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def snapshot(self) -> dict[str, float]:
        """Every sample as ``{'name{label="v",...}': value}``, labels sorted as in :meth:`render`.

        ``_created`` samples are left out: they are timestamps, not measurements.
        """
        out: dict[str, float] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name.endswith("_created"):
                    continue
                out[_sample_key(sample.name, sample.labels)] = float(sample.value)
        return out


def _sample_key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{pairs}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
