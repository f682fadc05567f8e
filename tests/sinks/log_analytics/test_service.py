"""The sink against the Data Collector API simulator over real sockets: signing, typing as stored,
what each answer means for the batch, the retirement warning, and that the key never leaks."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from logferry.config.base import BuildContext
from logferry.core.sink import Action
from logferry.observe.metrics import Metrics
from logferry.sim.faults import parse_rules
from logferry.sim.log_analytics import LogAnalyticsSim
from logferry.sinks.log_analytics import LogAnalyticsSink
from tests.sinks.log_analytics.conftest import KEY_ENV, stored_rows

MakeSink = Callable[..., Awaitable[LogAnalyticsSink]]
OTHER_KEY = (
    "b3RoZXIga2V5IHRoYXQgdGhlIHdvcmtzcGFjZSBkb2VzIG5vdCBob2xk"  # "other key that the workspace does not hold"
)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def test_records_are_stored_with_the_services_typing(
    sim: LogAnalyticsSim, la_config: dict[str, Any], make_sink: MakeSink
) -> None:
    sink = await make_sink({**la_config, "time_generated_field": "@timestamp"})
    recent = datetime.now(UTC) - timedelta(hours=1)
    record = {
        "@timestamp": iso(recent),
        "user.name": "Jürgen",
        "ok": True,
        "count": 3,
        "ratio": 0.5,
        "id": "0b5d6c3e-1111-4222-8333-944455556666",
        "gone": None,
        "nested": {"a": [1, 2]},
        "TimeGenerated": "from the source",
    }
    result = await sink.send(sink.encode([record]))
    assert result.action is Action.DELIVERED, result.reason
    [row] = await stored_rows(sim)
    assert row == {
        "_timestamp_t": iso(recent),
        "user_name_s": "Jürgen",
        "ok_b": True,
        "count_d": 3.0,
        "ratio_d": 0.5,
        "id_g": "0b5d6c3e-1111-4222-8333-944455556666",
        "nested_s": '{"a":[1,2]}',
        "TimeGenerated__s": "from the source",
        "TimeGenerated": iso(recent),
        "Type": "MeshAudit_CL",
    }


async def test_time_generated_older_than_two_days_becomes_ingestion_time(
    sim: LogAnalyticsSim, la_config: dict[str, Any], make_sink: MakeSink
) -> None:
    resource = "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Web/sites/app"
    sink = await make_sink({**la_config, "time_generated_field": "at", "azure_resource_id": resource})
    old = datetime.now(UTC) - timedelta(days=3)
    before = datetime.now(UTC)
    assert (await sink.send(sink.encode([{"at": iso(old)}]))).action is Action.DELIVERED
    [row] = await stored_rows(sim)
    assert datetime.fromisoformat(row["TimeGenerated"]) >= before - timedelta(seconds=1)
    assert row["at_t"] == iso(old) and row["_ResourceId"] == resource


async def test_a_non_ascii_body_is_accepted(
    sim: LogAnalyticsSim, la_config: dict[str, Any], make_sink: MakeSink
) -> None:
    # The simulator checks the signature over the body's byte length, as the service does.
    sink = await make_sink(la_config)
    result = await sink.send(sink.encode([{"msg": "Grüße € 😀 " * 50}]))
    assert result.action is Action.DELIVERED, result.reason


async def test_values_over_32_kb_are_counted_warned_once_and_truncated_by_the_service(
    sim: LogAnalyticsSim,
    la_config: dict[str, Any],
    make_sink: MakeSink,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = await make_sink(la_config)
    big = {"body": "é" * 20_000, "small": "x"}  # 40,000 bytes of UTF-8 in 20,000 characters
    with caplog.at_level(logging.WARNING):
        lines = sink.encode([big, {"small": "y" * 40_000}])
        sink.encode([big])
    value = metrics.registry.get_sample_value("logferry_sink_fields_oversized_total", {"sink": "dst"})
    assert value == 3
    assert len([r for r in caplog.records if "truncated" in r.getMessage()]) == 1
    assert (await sink.send(lines)).action is Action.DELIVERED
    rows = await stored_rows(sim)
    assert len(rows[0]["body_s"].encode()) == 32 * 1024 and len(rows[1]["small_s"]) == 32 * 1024


async def test_wrong_key_is_retried_with_a_hint_and_the_key_never_shows(
    sim: LogAnalyticsSim,
    la_config: dict[str, Any],
    make_sink: MakeSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("LA_OTHER_KEY", OTHER_KEY)
    caplog.set_level(logging.DEBUG)
    sink = await make_sink({**la_config, "shared_key": "${env:LA_OTHER_KEY}"})
    result = await sink.send(sink.encode([{"a": 1}]))
    assert result.action is Action.RETRY and result.status == 403
    assert "InvalidAuthorization" in result.reason and "shared_key" in result.reason
    check = await sink.healthcheck()
    assert not check.ok and "invalid signature" in check.message
    text = result.reason + check.message + caplog.text
    assert OTHER_KEY not in text and sim.shared_key not in text
    assert sim.stats()["rows_accepted"] == {}


async def test_wrong_workspace_fails_the_healthcheck(
    sim: LogAnalyticsSim, la_config: dict[str, Any], make_sink: MakeSink
) -> None:
    sink = await make_sink({**la_config, "workspace_id": "00000000-0000-4000-8000-000000000000"})
    check = await sink.healthcheck()
    assert not check.ok and "workspace_id" in check.message
    ok = await (await make_sink(la_config)).healthcheck()
    assert ok.ok and "retired" in ok.message, ok.message


def fault(status: int, body: Any = None, retry_after: float | None = None) -> list[dict[str, Any]]:
    return [{"path": "/api/logs", "status": status, "count": 1, "body": body, "retry_after": retry_after}]


@pytest.mark.parametrize(
    ("rules", "lines", "action", "words"),
    [
        (fault(400, {"Error": "InvalidDataFormat", "Message": "bad record"}), 2, Action.SPLIT, "bad record"),
        (fault(400, {"Error": "InvalidDataFormat", "Message": "bad record"}), 1, Action.REJECT, "bad record"),
        (fault(400, {"Error": "InvalidLogType", "Message": "no"}), 2, Action.RETRY, "configuration"),
        (fault(400, {"Error": "InactiveCustomer", "Message": "no"}), 1, Action.RETRY, "configuration"),
        (fault(404), 1, Action.RETRY, "migrate to the sentinel sink"),
        # Not in the API's table, but a proxy or a retired endpoint may answer so: the key / the endpoint.
        (
            fault(401, {"Error": "Denied", "Message": "no"}),
            2,
            Action.RETRY,
            "HTTP 401 Denied: no; check that shared_key",
        ),
        (
            fault(410, {"Error": "Gone", "Message": "retired"}),
            2,
            Action.RETRY,
            "HTTP 410 Gone: retired; check workspace_id",
        ),
        (fault(429, retry_after=7), 2, Action.RETRY, "TooManyRequests"),
        (fault(503), 2, Action.RETRY, "ServiceUnavailable"),
        (fault(500), 1, Action.RETRY, "UnspecifiedError"),
    ],
)
async def test_answers_become_resolutions(
    sim: LogAnalyticsSim,
    la_config: dict[str, Any],
    make_sink: MakeSink,
    rules: list[dict[str, Any]],
    lines: int,
    action: Action,
    words: str,
) -> None:
    sim.faults.set_rules(parse_rules(rules))
    sink = await make_sink(la_config)
    result = await sink.send(sink.encode([{"n": i} for i in range(lines)]))
    assert result.action is action and words in result.reason, result
    if result.status == 429:
        assert result.after == 7
    # The fault was used up: the same request now goes through.
    assert (await sink.send(sink.encode([{"n": 0}]))).action is Action.DELIVERED


async def test_the_retirement_warning_is_logged_once_at_start(
    la_config: dict[str, Any], make_sink: MakeSink, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        sink = await make_sink(la_config)
        await sink.send(sink.encode([{"a": 1}]))
        await sink.healthcheck()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "sink dst" in warnings[0] and "14 September 2026" in warnings[0]
    assert "'sentinel' sink" in warnings[0] and "logferry azure template" in warnings[0]
    # A classic table (one this API created) must be migrated before a DCR can write to it.
    assert "classic table" in warnings[0] and "/tables/NAME/migrate" in warnings[0]
    assert KEY_ENV not in warnings[0]


async def test_a_retired_endpoint_fails_the_healthcheck_with_the_services_words(
    sim: LogAnalyticsSim, la_config: dict[str, Any], make_sink: MakeSink
) -> None:
    sim.faults.set_rules(parse_rules(fault(410, {"Error": "Gone", "Message": "this API is retired"})))
    check = await (await make_sink(la_config)).healthcheck()
    assert not check.ok and "HTTP 410 Gone: this API is retired" in check.message
    assert "migrate to the sentinel sink" in check.message


async def test_the_time_generated_field_header_names_the_column_holding_the_time(
    sim: LogAnalyticsSim, la_config: dict[str, Any], make_sink: MakeSink
) -> None:
    # The reviewer's case: the configured key is renamed, and another key already has the new name.
    sink = await make_sink({**la_config, "time_generated_field": "@timestamp"})
    event_time = iso(datetime.now(UTC) - timedelta(hours=1))
    lines = sink.encode([{"@timestamp": event_time, "_timestamp": "not a time"}])
    assert (await sink.send(lines)).action is Action.DELIVERED
    [row] = await stored_rows(sim)
    assert row["TimeGenerated"] == event_time
    assert row["_timestamp_t"] == event_time and row["_timestamp_2_s"] == "not a time"


async def test_a_header_aiohttp_refuses_gives_retry_and_a_failed_check_not_an_exception(
    sim: LogAnalyticsSim, la_config: dict[str, Any], make_sink: MakeSink, tmp_path: Path
) -> None:
    # The config refuses such a resource id; a value that slips past it must still not kill delivery.
    valid = (await make_sink(la_config, start=False)).config
    config = valid.model_copy(update={"azure_resource_id": "/subscriptions/0000/rg\x01x"})
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    try:
        sink = config.build("bad", ctx)
        result = await sink.send(sink.encode([{"a": 1}]))
        assert result.action is Action.RETRY and "ValueError" in result.reason, result
        check = await sink.healthcheck()
        assert not check.ok and "ValueError" in check.message
    finally:
        await ctx.close()
    assert sim.stats()["rows_accepted"] == {}
