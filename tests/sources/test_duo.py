"""The Duo source against the Duo simulator (TLS, real sockets), through the real pipeline."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.core.polling import MALFORMED_ATTEMPTS
from logferry.observe.metrics import Metrics
from logferry.sim.duo import DuoSim
from logferry.sim.duo_logs import LOG_TYPES, LogType
from logferry.sources.duo import DuoSource
from logferry.state.sqlite import SQLiteStateStore
from tests.conftest import read_ndjson, running, secret_ref, wait_for
from tests.sim.helpers import ssl_for

ID_FIELDS: dict[str, str] = {
    "authentication": "txid",
    "telephony": "telephony_id",
    "activity": "activity_id",
    "trust_monitor": "sekey",
}


def duo_source(sim: DuoSim, **overrides: Any) -> dict[str, Any]:
    creds = sim.credentials
    return {
        "type": "duo",
        "host": creds["host"],
        "ikey": creds["ikey"],
        "skey": secret_ref("TEST_DUO_SKEY", creds["skey"]),
        "initial_lookback_secs": 2 * 3600,
        # The simulator holds back exactly 120 s on the same clock: no skew to allow for.
        "lag_secs": 120,
        "interval_secs": 1,
        "page_size": 100,
        "requests_per_minute": 6000,
        "tls": {"ca_file": sim.ca_file},
        **overrides,
    }


def pipeline(sim: DuoSim, out: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "api": {"enabled": False},
        "sources": {"duo": duo_source(sim, **overrides)},
        "sinks": {"out": {"type": "file", "inputs": ["duo"], "path": str(out), "rotate_max_bytes": 0}},
    }


def event_id(record: dict[str, Any]) -> str:
    """``logtype|vendor id``; administrator records have no id, so their content stands in."""
    kind = str(record["eventtype"])
    if kind == "administrator":
        own = {k: v for k, v in record.items() if k not in ("eventtype", "host")}
        return f"{kind}|{orjson.dumps(own, option=orjson.OPT_SORT_KEYS).decode()}"
    return f"{kind}|{record[ID_FIELDS[kind]]}"


def expected(sim: DuoSim, log_types: tuple[LogType, ...] = LOG_TYPES) -> set[str]:
    out: set[str] = set()
    for kind in log_types:
        out |= {event_id({**r, "eventtype": kind}) for r in sim.expected(kind)}
    return out


def ids(out: Path) -> list[str]:
    return [event_id(r) for r in read_ndjson(out)] if out.exists() else []


async def sim_stats(sim: DuoSim) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{sim.url}/sim/stats", ssl=ssl_for(sim)) as r:
        data: dict[str, Any] = await r.json()
        return data


def source_health(service: Any) -> Any:
    return next(c for c in service.pipeline.status().components if c.name == "duo")


async def stored_cursor(tmp_path: Path) -> dict[str, Any]:
    store = SQLiteStateStore(tmp_path / "state.db")
    await store.open()
    try:
        cursor = await store.get_cursor("duo")
    finally:
        await store.close()
    assert isinstance(cursor, dict)
    return cursor


async def test_every_log_type_is_collected_once_across_pages(tmp_path: Path) -> None:
    sim = await tls_sim(backlog_events=450, live_rate=0, requests_per_minute=0, v1_page_cap=200)
    try:
        out = tmp_path / "out.ndjson"
        want = expected(sim)
        assert len(want) == 5 * 450
        async with running(pipeline(sim, out), tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
        got = ids(out)
        assert len(got) == len(set(got)) == len(want)
        st = await sim_stats(sim)
        # 450 records at 100 per page: 5 pages for each v2 log and trust monitor.
        for path in ("/admin/v2/logs/authentication", "/admin/v1/trust_monitor/events"):
            assert st["endpoint_requests"][path] >= 5
        assert all(r["host"] == sim.credentials["host"] for r in read_ndjson(out))
        cursor = await stored_cursor(tmp_path)
        assert set(cursor["lanes"]) == set(LOG_TYPES)
    finally:
        await sim.stop()


async def tls_sim(**options: Any) -> DuoSim:
    sim = DuoSim(**options)
    await sim.start(tls=True)
    return sim


@pytest.mark.parametrize("signature", ["v5", "v2-sha512", "v2-sha1"])
async def test_each_signature_scheme_is_accepted(tmp_path: Path, signature: str) -> None:
    sim = await tls_sim(backlog_events=20, live_rate=0, requests_per_minute=0)
    try:
        out = tmp_path / "out.ndjson"
        cfg = pipeline(sim, out, signature=signature, log_types=["authentication"])
        async with running(cfg, tmp_path):
            await wait_for(lambda: len(ids(out)) >= 20, timeout=20)
        assert (await sim_stats(sim))["bad_signatures"] == 0
    finally:
        await sim.stop()


async def test_throttling_42901_without_retry_after_is_backed_off_and_nothing_is_lost(tmp_path: Path) -> None:
    throttled = {"code": 42901, "message": "Too Many Requests", "stat": "FAIL"}
    faults = [
        {"path": "/admin/v2/logs/authentication", "status": 429, "count": 3, "after": 1, "body": throttled}
    ]
    sim = await tls_sim(backlog_events=300, live_rate=0, requests_per_minute=0, faults=faults)
    try:
        out = tmp_path / "out.ndjson"
        want = expected(sim, ("authentication",))
        async with running(pipeline(sim, out, log_types=["authentication"]), tmp_path) as service:
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
            assert source_health(service).healthy
        got = ids(out)
        assert len(got) == len(set(got)) == 300
        st = await sim_stats(sim)
        assert st["requests"]["429"] == 3
    finally:
        await sim.stop()


async def test_bad_signature_turns_health_red_with_a_clear_reason(tmp_path: Path) -> None:
    sim = await tls_sim(backlog_events=5, live_rate=0, requests_per_minute=0)
    try:
        out = tmp_path / "out.ndjson"
        cfg = pipeline(sim, out, skey=secret_ref("TEST_DUO_WRONG", "x" * 40), stale_after_secs=1,
                       log_types=["telephony"])  # fmt: skip
        async with running(cfg, tmp_path) as service:
            # Wait for the vendor's answer: the 1 s staleness alone can turn health red first.
            await wait_for(lambda: "40103" in (source_health(service).reason or ""), timeout=15)
            assert not source_health(service).healthy
            reason = source_health(service).reason or ""
        assert "telephony" in reason and "signature (40103)" in reason and "ikey, skey and host" in reason
        assert "x" * 40 not in reason
        assert not out.exists() or ids(out) == []
    finally:
        await sim.stop()


async def test_malformed_records_are_dead_lettered_and_the_rest_delivered(tmp_path: Path) -> None:
    sim = await tls_sim(backlog_events=200, live_rate=0, requests_per_minute=0, malformed_every=40)
    try:
        out = tmp_path / "out.ndjson"
        want = expected(sim)
        async with running(pipeline(sim, out), tmp_path) as service:
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
            letters = await service.store.dead_letters()
        reasons = Counter(d.reason for d in letters)
        assert reasons == {f"{t}: Duo {t} record lacks its id or time": 5 for t in LOG_TYPES}
        assert len(ids(out)) == len(want) == 5 * 195
    finally:
        await sim.stop()


async def test_a_page_that_is_not_duo_json_is_asked_for_again_and_nothing_is_lost(tmp_path: Path) -> None:
    # Page 2 of the window comes back as a proxy's answer twice: the lane stays on that page.
    faults = [
        {"path": "/admin/v2/logs/activity", "status": 200, "count": 2, "after": 1, "body": {"unexpected": True}}
    ]
    sim = await tls_sim(backlog_events=300, live_rate=0, requests_per_minute=0, faults=faults)
    try:
        out = tmp_path / "out.ndjson"
        want = expected(sim, ("activity",))
        async with running(pipeline(sim, out, log_types=["activity"]), tmp_path) as service:
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
            assert await service.store.dead_letters() == []
        assert sorted(ids(out)) == sorted(want)
    finally:
        await sim.stop()


async def test_a_page_that_stays_malformed_is_dead_lettered_and_collection_goes_on(tmp_path: Path) -> None:
    faults = [{"path": "/admin/v2/logs/activity", "status": 200, "count": None, "body": {"unexpected": True}}]
    sim = await tls_sim(backlog_events=30, live_rate=0, requests_per_minute=0, faults=faults)
    try:
        out = tmp_path / "out.ndjson"
        want = expected(sim, ("telephony",))
        cfg = pipeline(sim, out, log_types=["activity", "telephony"])
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
            await wait_for(service.store.dead_letters, timeout=30)
            letters = await service.store.dead_letters()
        assert letters[0].reason.startswith(
            f"activity: Duo activity page is not a stat=OK envelope; after {MALFORMED_ATTEMPTS} attempts"
        )
        assert orjson.loads(letters[0].payload) == {"unexpected": True}
    finally:
        await sim.stop()


async def test_administrator_log_pages_by_mintime_past_the_answer_cap(tmp_path: Path) -> None:
    sim = await tls_sim(
        backlog_events=250, backlog_secs=600, live_rate=0, requests_per_minute=0, v1_page_cap=40
    )
    try:
        out = tmp_path / "out.ndjson"
        want = expected(sim, ("administrator",))
        async with running(pipeline(sim, out, log_types=["administrator"]), tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
        got = ids(out)
        assert len(got) == len(set(got)) == 250
        assert (await sim_stats(sim))["endpoint_requests"]["/admin/v1/logs/administrator"] >= 7
    finally:
        await sim.stop()


async def test_stopping_mid_window_keeps_next_offset_in_the_cursor_and_resumes(tmp_path: Path) -> None:
    sim = await tls_sim(backlog_events=600, live_rate=0, requests_per_minute=0, latency_secs=0.05)
    try:
        out = tmp_path / "out.ndjson"
        want = expected(sim, ("authentication",))
        cfg = pipeline(sim, out, log_types=["authentication"], page_size=50, requests_per_minute=300)
        async with running(dict(cfg), tmp_path):
            await wait_for(lambda: len(ids(out)) >= 100, timeout=20)
        lane = (await stored_cursor(tmp_path))["lanes"]["authentication"]
        assert isinstance(lane["page"], str) and "," in lane["page"], lane
        assert not want <= set(ids(out))
        async with running(dict(cfg), tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
        got = ids(out)
        assert len(got) == len(set(got)) == 600
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        ({"host": "https://api-1a2b3c4d.duosecurity.com"}, "sources.duo.host", "without https://"),
        ({"host": "example.com"}, "sources.duo.host", "api-1a2b3c4d.duosecurity.com"),
        ({"lag_secs": 30}, "sources.duo.lag_secs", "120"),
        ({"log_types": ["authentication", "authentication"]}, "sources.duo.log_types", "twice"),
        ({"log_types": ["auth"]}, "sources.duo.log_types[0]", "'authentication'"),
        ({"page_size": 5000}, "sources.duo.page_size", "1000"),
        ({"signature": "v3"}, "sources.duo.signature", "'v5'"),
    ],
)
def test_invalid_config_names_the_field_and_the_fix(
    tmp_path: Path, change: dict[str, Any], field: str, phrase: str
) -> None:
    raw = {
        "sources": {
            "duo": {
                "type": "duo",
                "host": "api-1a2b3c4d.duosecurity.com",
                "ikey": "DIWJ8X6AEYOR5OMC6TQ1",
                "skey": secret_ref("TEST_DUO_CFG", "s" * 40),
                **change,
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["duo"], "path": str(tmp_path / "o.ndjson")}},
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, tmp_path)
    assert any(p.startswith(field) and phrase in p for p in exc.value.problems), exc.value.problems


def test_duo_hostnames_are_normalised(tmp_path: Path) -> None:
    raw = {
        "sources": {
            "duo": {
                "type": "duo",
                "host": "API-1A2B3C4D.duosecurity.com",
                "ikey": "DIWJ8X6AEYOR5OMC6TQ1",
                "skey": secret_ref("TEST_DUO_CFG", "s" * 40),
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["duo"], "path": str(tmp_path / "o.ndjson")}},
    }
    cfg = parse_config(raw, tmp_path).sources["duo"]
    assert cfg.host == "api-1a2b3c4d.duosecurity.com"  # type: ignore[attr-defined]
    assert "s" * 40 not in repr(cfg)


async def test_each_endpoint_gets_its_own_limiter_at_one_request_a_minute_shared_by_sources_of_one_app(
    tmp_path: Path,
) -> None:
    base = {
        "type": "duo",
        "host": "api-1a2b3c4d.duosecurity.com",
        "ikey": "DIWJ8X6AEYOR5OMC6TQ1",
        "skey": secret_ref("TEST_DUO_CFG", "s" * 40),
    }
    raw = {
        "sources": {"a": base, "b": {**base, "log_types": ["authentication"]}},
        "sinks": {"out": {"type": "file", "inputs": ["a", "b"], "path": str(tmp_path / "o.ndjson")}},
    }
    cfg = parse_config(raw, tmp_path)
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    try:
        a = cfg.sources["a"].build("a", ctx)
        b = cfg.sources["b"].build("b", ctx)
        assert isinstance(a, DuoSource) and isinstance(b, DuoSource)
        limiters = {kind: lane.http.limiter for kind, lane in a.lanes.items()}
        assert len({id(limiter) for limiter in limiters.values()}) == 5
        assert b.lanes["authentication"].http.limiter is limiters["authentication"]
        for limiter in limiters.values():
            assert limiter is not None and limiter.rate is not None
            assert 60.0 < 1 / limiter.rate < 63.0, "about 1 request a minute per endpoint"
    finally:
        await ctx.close()
