from __future__ import annotations

import io

import orjson
import pytest

from logferry.observe import (
    BackpressureWaited,
    EventsDeadLettered,
    EventsDeduplicated,
    HttpResponseReceived,
    Metrics,
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
    configure_logging,
)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            SourcePageFetched(source="duo", events=50),
            {
                'logferry_source_pages_total{source="duo"}': 1.0,
                'logferry_source_events_received_total{source="duo"}': 50.0,
            },
        ),
        (
            SourcePollSucceeded(source="duo", events=50, cursor_at=1000.0, at=1030.0),
            {
                'logferry_source_polls_total{outcome="ok",source="duo"}': 1.0,
                'logferry_source_last_success_timestamp_seconds{source="duo"}': 1030.0,
                'logferry_source_lag_seconds{source="duo"}': 30.0,
            },
        ),
        (
            SourcePollFailed(source="duo", error_type="VendorAPIError", message="HTTP 500"),
            {'logferry_source_polls_total{outcome="error",source="duo"}': 1.0},
        ),
        (
            SourceItemsSkipped(source="o365", reason="expired", item="tenant/Audit.Exchange/blob-1"),
            {'logferry_source_items_skipped_total{reason="expired",source="o365"}': 1.0},
        ),
        (
            EventsDeduplicated(source="duo", count=3),
            {'logferry_source_events_deduplicated_total{source="duo"}': 3.0},
        ),
        (
            BackpressureWaited(source="duo", seconds=0.5),
            {'logferry_backpressure_wait_seconds_total{source="duo"}': 0.5},
        ),
        (
            SinkRequestSent(sink="sentinel", status=503, bytes=2048),
            {
                'logferry_sink_requests_total{sink="sentinel",status_class="5xx"}': 1.0,
                'logferry_sink_request_bytes_total{sink="sentinel"}': 2048.0,
            },
        ),
        (
            SinkEventsDelivered(sink="sentinel", events=7),
            {'logferry_sink_events_delivered_total{sink="sentinel"}': 7.0},
        ),
        (
            SinkRetryScheduled(sink="sentinel", reason="http_503", delay_secs=2.0, attempt=1),
            {'logferry_sink_retries_total{reason="http_503",sink="sentinel"}': 1.0},
        ),
        (
            EventsDeadLettered(component="sentinel", stage="encode", count=2, reason="record over 1 MiB"),
            {'logferry_dead_letters_total{component="sentinel",stage="encode"}': 2.0},
        ),
        (
            OutboxDepthChanged(sink="sentinel", events=10, bytes=900),
            {
                'logferry_outbox_events{sink="sentinel"}': 10.0,
                'logferry_outbox_bytes{sink="sentinel"}': 900.0,
            },
        ),
        (
            RateLimitWaited(component="duo", seconds=1.25),
            {'logferry_rate_limit_wait_seconds_total{component="duo"}': 1.25},
        ),
        (
            HttpResponseReceived(component="duo", status=None, duration_secs=0.2),
            {
                'logferry_http_requests_total{component="duo",status="error"}': 1.0,
                'logferry_http_request_duration_seconds_count{component="duo"}': 1.0,
            },
        ),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, TelemetryEvent) else "",
)
def test_emit_updates_the_matching_metrics(event: TelemetryEvent, expected: dict[str, float]) -> None:
    metrics = Metrics()

    event.emit(metrics)

    snap = metrics.snapshot()
    assert {key: snap.get(key) for key in expected} == expected


def test_lag_is_never_negative_when_the_cursor_is_ahead_of_the_clock() -> None:
    metrics = Metrics()
    SourcePollSucceeded(source="duo", events=0, cursor_at=2000.0, at=1000.0).emit(metrics)
    assert metrics.snapshot()['logferry_source_lag_seconds{source="duo"}'] == 0.0


def test_emit_logs_one_line_named_after_the_event_with_its_fields() -> None:
    out = io.StringIO()
    configure_logging(level="debug", stream=out)

    SinkRetryScheduled(sink="sentinel", reason="http_429", delay_secs=4.0, attempt=2).emit(Metrics())

    [line] = [orjson.loads(raw) for raw in out.getvalue().splitlines()]
    assert line["event"] == "sink_retry_scheduled"
    assert line["level"] == "warning"
    assert line["logger"] == "logferry.events"
    assert (line["sink"], line["reason"], line["delay_secs"], line["attempt"]) == (
        "sentinel",
        "http_429",
        4.0,
        2,
    )


def test_metric_only_events_write_no_log_line() -> None:
    out = io.StringIO()
    configure_logging(level="debug", stream=out)

    OutboxDepthChanged(sink="sentinel", events=1, bytes=1).emit(Metrics())
    HttpResponseReceived(component="duo", status=200, duration_secs=0.1).emit(Metrics())

    assert out.getvalue() == ""


def test_debug_events_are_not_logged_at_info_but_still_counted() -> None:
    out = io.StringIO()
    configure_logging(level="info", stream=out)
    metrics = Metrics()

    SourcePageFetched(source="duo", events=5).emit(metrics)

    assert out.getvalue() == ""
    assert metrics.snapshot()['logferry_source_pages_total{source="duo"}'] == 1.0


def test_events_are_immutable() -> None:
    event = SourcePageFetched(source="duo", events=1)
    with pytest.raises(AttributeError):
        event.events = 2  # type: ignore[misc]
