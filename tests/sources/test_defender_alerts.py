"""Defender alerts source against the Graph simulator, through the real pipeline and a file sink."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.observe.metrics import Metrics
from logferry.sim.faults import FaultRule
from logferry.sim.graph import GraphSim
from logferry.sim.graph_alerts import render_graph
from logferry.sim.graph_odata import format_ticks, now_ticks
from logferry.sources.graph_common import RecordKey, parse_odata
from tests.conformance.source import SourceCase, SourceConformance
from tests.conftest import read_ndjson, running, secret_ref, wait_for

from .graph_helpers import file_pipeline, graph_source, serving, wrong_secret

TOTAL = 400


def versions(out: Path) -> list[str]:
    """The alert versions written, as ``lastUpdateDateTime|id``."""
    return [f"{r['lastUpdateDateTime']}|{r['id']}" for r in read_ndjson(out)] if out.exists() else []


def expected_versions(sim: GraphSim) -> set[str]:
    return {f"{format_ticks(a.updated)}|{a.id}" for a in sim.current_alerts()}


def quiet_sim(**options: Any) -> GraphSim:
    """Alerts that change only when a test says so."""
    defaults: dict[str, Any] = {"alert_rate": 0, "update_rate": 0, "message_rate": 0, "backlog_messages": 0}
    return GraphSim(**{**defaults, **options})


@pytest.fixture
async def sim() -> AsyncIterator[GraphSim]:
    async with serving(quiet_sim(backlog_alerts=300, latency_secs=0.001)) as started:
        yield started


async def test_pages_through_many_pages_and_keeps_seven_digit_timestamps(
    sim: GraphSim, tmp_path: Path
) -> None:
    out = tmp_path / "out.ndjson"
    async with running(file_pipeline(graph_source(sim, "defender_alerts", page_size=20), out), tmp_path):
        await wait_for(lambda: len(versions(out)) >= 300)
    assert sorted(versions(out)) == sorted(expected_versions(sim))
    assert all(len(v.split("|")[0]) == len("2026-11-21T10:00:00.1234567Z") for v in versions(out))
    pages = [e for e in sim.log if e[1] == "alerts" and e[2] == 200]
    assert len(pages) >= 15


async def test_an_updated_alert_is_delivered_again_and_a_reread_is_dropped(
    sim: GraphSim, tmp_path: Path
) -> None:
    out = tmp_path / "out.ndjson"
    cfg = file_pipeline(graph_source(sim, "defender_alerts", page_size=100), out)
    async with running(dict(cfg), tmp_path):
        await wait_for(lambda: len(versions(out)) >= 300)
        updated = sim.alerts.update_now(10, now_ticks())
        await wait_for(lambda: len(versions(out)) >= 310)
    records = read_ndjson(out)
    for alert in updated:
        mine = [r for r in records if r["id"] == alert.id]
        assert len(mine) == 2, alert.id
        assert mine[0]["lastUpdateDateTime"] < mine[1]["lastUpdateDateTime"]
        assert mine[1]["status"] == alert.status and mine[1]["assignedTo"] == alert.assigned_to
    # Read everything again from the start: the same versions are duplicates, nothing new is written.
    db = sqlite3.connect(tmp_path / "state.db")
    cursor = {"start": format_ticks(now_ticks() - 3 * 3600 * 10**7)[:19] + "Z", "end": None, "page": None}
    db.execute("UPDATE cursors SET cursor=? WHERE source='src'", (orjson.dumps(cursor).decode(),))
    db.commit()
    db.close()
    async with running(dict(cfg), tmp_path) as svc:
        rt = svc.pipeline.runtimes["src"]
        await wait_for(lambda: rt.duplicates >= 300)  # every current version, once more
    assert len(versions(out)) == 310


async def test_an_alert_updated_while_its_window_is_paged_shifts_nothing_out(tmp_path: Path) -> None:
    # Offset paging: once an alert on page 1 moves out of the window, every later alert moves up
    # one place and the first of page 2 would be skipped. The window's @odata.count catches it.
    pause = [{"path": "/v1.0/security/alerts_v2", "status": None, "delay_secs": 1.0, "after": 1, "count": 1}]
    async with serving(quiet_sim(backlog_alerts=60, faults=pause)) as sim:
        newest = sim.current_alerts()[-1]  # page 1: alerts_v2 lists newest first
        out = tmp_path / "out.ndjson"
        async with running(file_pipeline(graph_source(sim, "defender_alerts", page_size=20), out), tmp_path):
            await wait_for(lambda: sim.served["alerts_v2"] >= 20, interval=0.01)
            sim.alerts.update(newest, now_ticks())  # while page 2's request is held for a second
            await wait_for(lambda: expected_versions(sim) <= set(versions(out)))
        assert len(versions(out)) == 61
        assert sum(1 for e in sim.log if e[1] == "alerts") >= 5, "the window was read a second time"


async def test_throttling_is_waited_out_with_retry_after_and_nothing_is_lost(tmp_path: Path) -> None:
    # 3 requests a second (a minute scaled down to a second) against a client allowed 200.
    async with serving(quiet_sim(backlog_alerts=100, alerts_per_minute=3, limit_window_scale=1 / 60)) as sim:
        out = tmp_path / "out.ndjson"
        async with running(file_pipeline(graph_source(sim, "defender_alerts", page_size=10), out), tmp_path):
            await wait_for(lambda: len(versions(out)) >= 100)
        assert sorted(versions(out)) == sorted(expected_versions(sim))
        log = [e for e in sim.log if e[1] == "alerts"]
        throttled = [i for i, e in enumerate(log) if e[2] == 429]
        assert throttled, "the test must trip the simulator's limit"
        for i in throttled:
            t, _api, _status, after = log[i]
            assert after is not None and i + 1 < len(log)
            assert log[i + 1][0] - t >= after - 0.05, "the next request came before Retry-After"


async def test_malformed_page_is_dead_lettered_and_the_window_is_read_again(
    sim: GraphSim, tmp_path: Path
) -> None:
    sim.faults.set_rules([FaultRule("/v1.0/security/alerts_v2", status=200, after=1, body="<html>")])
    out = tmp_path / "out.ndjson"
    async with running(
        file_pipeline(graph_source(sim, "defender_alerts", page_size=50), out), tmp_path
    ) as svc:
        await wait_for(lambda: len(versions(out)) >= 300)
        letters = await svc.store.dead_letters()
        assert letters and letters[0].stage == "source"
        assert "Graph alerts_v2 page is not a JSON object" in letters[0].reason
    assert sorted(versions(out)) == sorted(expected_versions(sim))


async def test_mde_api_pages_by_skip_and_expands_evidence(tmp_path: Path) -> None:
    # Without next links (Elastic's MDE mock has none), full pages are followed by $skip.
    async with serving(quiet_sim(backlog_alerts=120, mde_next_links=False)) as sim:
        out = tmp_path / "out.ndjson"
        cfg = graph_source(sim, "defender_alerts", api="mde", page_size=25)
        async with running(file_pipeline(cfg, out), tmp_path):
            await wait_for(lambda: out.exists() and len(read_ndjson(out)) >= 120)
        records = read_ndjson(out)
        assert len({(r["lastUpdateTime"], r["id"]) for r in records}) == 120
        assert {e["entityType"] for e in records[0]["evidence"]} == {"User", "Process", "File"}
        assert sim.served["mde"] == 120


async def test_check_names_the_token_audience_when_mde_gets_a_graph_token(
    sim: GraphSim, tmp_path: Path
) -> None:
    cfg = file_pipeline(
        graph_source(sim, "defender_alerts", api="mde", token_scope="https://graph.microsoft.com/.default"),
        tmp_path / "out.ndjson",
    )
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    try:
        result = await parse_config(cfg, tmp_path).sources["src"].build("src", ctx).check()
    finally:
        await ctx.close()
    assert not result.ok
    assert "MDE alerts API refused the token (HTTP 401" in result.message
    assert "https://api.securitycenter.microsoft.com/.default" in result.message
    assert sim.unauthorized["mde"] >= 1


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"api": "mde", "page_size": 10_001}, "page_size 10001 exceeds 10000"),
        ({"api_url": "http://graph.example.com"}, "must use https"),
        ({"cloud": "usgov"}, "cloud"),
        ({"max_requests_per_sec": 0}, "max_requests_per_sec"),
    ],
    ids=["mde-page-size", "plain-http", "unknown-cloud", "zero-budget"],
)
def test_validate_refuses_values_the_api_cannot_take(
    overrides: dict[str, Any], problem: str, tmp_path: Path
) -> None:
    source = {
        "type": "defender_alerts",
        "auth": {"type": "client_secret", "tenant_id": "t", "client_id": "c",
                 "client_secret": secret_ref("TEST_DEFENDER_VALIDATE", "s")},
        **overrides,
    }  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        parse_config(file_pipeline(source, tmp_path / "out.ndjson"), tmp_path)
    assert problem in str(exc.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "page is not JSON"),
        (b"[]", "page is not a JSON object"),
        (b'{"error": {"code": "x"}}', "has no 'value' list"),
        (b'{"value": [], "@odata.nextLink": 5}', "nextLink that is not a string"),
        (b'{"value": [{"id": "a"}]}', "record lacks one of lastUpdateDateTime, id"),
    ],
    ids=["not-json", "array", "no-value", "bad-link", "record-without-time"],
)
def test_parse_odata_turns_malformed_input_into_rejects_with_a_reason(body: bytes, reason: str) -> None:
    page = parse_odata(body, RecordKey(("lastUpdateDateTime", "id")), "Graph alerts_v2")
    assert page.records == [] and reason in page.rejects[0][0]


def test_parse_odata_keeps_records_untouched_and_reads_count_and_next_link() -> None:
    record = render_graph(quiet_sim(backlog_alerts=1).current_alerts()[0], "tenant")
    body = orjson.dumps({"@odata.count": 7, "@odata.nextLink": "https://x/next", "value": [record]})
    page = parse_odata(body, RecordKey(("lastUpdateDateTime", "id")), "Graph alerts_v2")
    assert page.records == [record] and page.count == 7 and page.next_link == "https://x/next"
    assert page.ids == [f"{record['lastUpdateDateTime']}|{record['id']}"]


class TestDefenderAlertsConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        async with serving(quiet_sim(backlog_alerts=TOTAL, latency_secs=0.01)) as sim:
            yield SourceCase(
                config=graph_source(sim, "defender_alerts", page_size=20),
                total=TOTAL,
                event_id=lambda r: f"{r['lastUpdateDateTime']}|{r['id']}",
                wrong_credentials=wrong_secret(sim),
                check_failure="sign-in to Entra ID failed",
            )


class TestDefenderAlertsMdeConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        async with serving(quiet_sim(backlog_alerts=TOTAL, latency_secs=0.01)) as sim:
            yield SourceCase(
                config=graph_source(sim, "defender_alerts", api="mde", page_size=20),
                total=TOTAL,
                event_id=lambda r: f"{r['lastUpdateTime']}|{r['id']}",
                wrong_credentials=wrong_secret(sim),
                check_failure="sign-in to Entra ID failed",
            )
