from __future__ import annotations

import pytest
from prometheus_client import Counter

from logferry.observe import Metrics, status_class, status_label

_REQUIRED = [
    "logferry_source_events_received_total",
    "logferry_source_events_deduplicated_total",
    "logferry_source_polls_total",
    "logferry_source_last_success_timestamp_seconds",
    "logferry_source_lag_seconds",
    "logferry_source_pages_total",
    "logferry_sink_events_delivered_total",
    "logferry_sink_requests_total",
    "logferry_sink_retries_total",
    "logferry_sink_request_bytes_total",
    "logferry_dead_letters_total",
    "logferry_outbox_bytes",
    "logferry_outbox_events",
    "logferry_http_requests_total",
    "logferry_rate_limit_wait_seconds_total",
    "logferry_backpressure_wait_seconds_total",
]


def test_two_instances_have_separate_registries() -> None:
    a, b = Metrics(), Metrics()

    a.events_received.labels(source="duo").inc(5)

    assert a.snapshot()['logferry_source_events_received_total{source="duo"}'] == 5.0
    assert 'logferry_source_events_received_total{source="duo"}' not in b.snapshot()


def test_metrics_do_not_register_on_the_global_registry() -> None:
    Metrics()
    # Would raise "Duplicated timeseries" if Metrics() had used the default registry.
    Counter("logferry_source_events_received_total", "probe").inc()


def test_snapshot_keys_carry_sorted_labels_and_values() -> None:
    m = Metrics()
    m.polls.labels(source="o365", outcome="ok").inc()
    m.polls.labels(source="o365", outcome="ok").inc()
    m.polls.labels(source="o365", outcome="error").inc()
    m.outbox_events.labels(sink="sentinel").set(42)
    m.rate_limit_wait.labels(component="duo").inc(1.5)

    snap = m.snapshot()

    assert snap['logferry_source_polls_total{outcome="ok",source="o365"}'] == 2.0
    assert snap['logferry_source_polls_total{outcome="error",source="o365"}'] == 1.0
    assert snap['logferry_outbox_events{sink="sentinel"}'] == 42.0
    assert snap['logferry_rate_limit_wait_seconds_total{component="duo"}'] == 1.5
    assert not any("_created" in key for key in snap)


def test_render_contains_every_required_metric_once_labelled() -> None:
    m = Metrics()
    for source_metric in (m.events_received, m.events_deduplicated, m.pages, m.backpressure_wait):
        source_metric.labels(source="s").inc()
    m.polls.labels(source="s", outcome="ok").inc()
    m.last_success.labels(source="s").set(1.0)
    m.source_lag.labels(source="s").set(1.0)
    m.events_delivered.labels(sink="k").inc()
    m.sink_requests.labels(sink="k", status_class="2xx").inc()
    m.sink_retries.labels(sink="k", reason="http_503").inc()
    m.sink_request_bytes.labels(sink="k").inc(10)
    m.dead_letters.labels(component="k", stage="encode").inc()
    m.outbox_bytes.labels(sink="k").set(1)
    m.outbox_events.labels(sink="k").set(1)
    m.http_requests.labels(component="k", status="200").inc()
    m.rate_limit_wait.labels(component="k").inc()

    text = m.render().decode()

    for name in _REQUIRED:
        assert f"\n{name}{{" in text, name


def test_every_metric_is_namespaced_under_logferry() -> None:
    names = [family.name for family in Metrics().registry.collect()]
    assert names
    assert all(name.startswith("logferry_") for name in names)


@pytest.mark.parametrize(
    ("status", "cls", "label"),
    [
        (200, "2xx", "200"),
        (204, "2xx", "204"),
        (404, "4xx", "404"),
        (503, "5xx", "503"),
        (None, "error", "error"),
    ],
    ids=["ok", "no-content", "not-found", "unavailable", "no-response"],
)
def test_status_class_and_label(status: int | None, cls: str, label: str) -> None:
    assert status_class(status) == cls
    assert status_label(status) == label


def test_out_of_range_status_counts_as_error() -> None:
    assert status_class(999) == "error"
    assert status_label(42) == "error"
