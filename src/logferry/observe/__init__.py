"""Observability: redacted structured logs, Prometheus metrics, telemetry events and the health server.

Usage::

    from logferry.observe import HealthServer, Metrics, configure_logging, register_secret

    configure_logging(level="info", fmt="json")
    register_secret(config.auth.client_secret)
    metrics = Metrics()
    server = HealthServer(port=8686, status=pipeline.status, metrics=metrics)
"""

from __future__ import annotations

from logferry.observe.events import (
    BackpressureWaited,
    EventsDeadLettered,
    EventsDeduplicated,
    HttpResponseReceived,
    OutboxDepthChanged,
    RateLimitWaited,
    SinkEventsDelivered,
    SinkRequestSent,
    SinkRetryScheduled,
    SourceItemsSkipped,
    SourcePageFetched,
    SourcePollFailed,
    SourcePollSucceeded,
    TelemetryEvent,
)
from logferry.observe.health import ComponentHealth, HealthServer, Status
from logferry.observe.logging import JsonFormatter, TextFormatter, configure_logging, log_event
from logferry.observe.metrics import CONTENT_TYPE, Metrics, status_class, status_label
from logferry.observe.redact import (
    MASK,
    clear_secrets,
    is_sensitive_key,
    redact,
    redact_value,
    register_secret,
)

__all__ = [
    "CONTENT_TYPE",
    "MASK",
    "BackpressureWaited",
    "ComponentHealth",
    "EventsDeadLettered",
    "EventsDeduplicated",
    "HealthServer",
    "HttpResponseReceived",
    "JsonFormatter",
    "Metrics",
    "OutboxDepthChanged",
    "RateLimitWaited",
    "SinkEventsDelivered",
    "SinkRequestSent",
    "SinkRetryScheduled",
    "SourceItemsSkipped",
    "SourcePageFetched",
    "SourcePollFailed",
    "SourcePollSucceeded",
    "Status",
    "TelemetryEvent",
    "TextFormatter",
    "clear_secrets",
    "configure_logging",
    "is_sensitive_key",
    "log_event",
    "redact",
    "redact_value",
    "register_secret",
    "status_class",
    "status_label",
]
