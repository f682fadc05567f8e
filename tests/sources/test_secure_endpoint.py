"""Cisco Secure Endpoint source against the AMP simulator, through the real pipeline and a file sink."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.core.polling import MALFORMED_ATTEMPTS
from logferry.sim.amp import AmpSim
from logferry.sim.faults import parse_rules
from logferry.sources.secure_endpoint.api import parse_events
from logferry.state.sqlite import SQLiteStateStore
from tests.conftest import read_ndjson, running, secret_ref, wait_for

HOUR = 3600.0
THREAT_DETECTED = 1090519054
CLOUD_IOC = 1107296274


def amp_source(sim: AmpSim, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "cisco_secure_endpoint",
        "api_url": sim.url,
        "client_id": sim.client_id,
        "api_key": secret_ref("TEST_AMP_API_KEY", sim.api_key),
        # Further back than any test's backlog: every event the simulator holds is wanted.
        "initial_lookback_secs": 8 * HOUR,
        "interval_secs": 1,
        "requests_per_hour": 360_000,
        **overrides,
    }


def pipeline(sim: AmpSim, out: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "sources": {"amp": amp_source(sim, **overrides)},
        "sinks": {"out": {"type": "file", "inputs": ["amp"], "path": str(out), "rotate_max_bytes": 0}},
    }


def ids(out: Path) -> list[int]:
    return [r["id"] for r in read_ndjson(out)] if out.exists() else []


def source_health(service: Any) -> Any:
    return next(c for c in service.pipeline.status().components if c.name == "amp")


async def saved_cursor(tmp_path: Path) -> dict[str, Any]:
    store = SQLiteStateStore(tmp_path / "state.db")
    await store.open()
    try:
        cursor = await store.get_cursor("amp")
    finally:
        await store.close()
    assert isinstance(cursor, dict)
    return cursor


async def stop_live(sim: AmpSim) -> None:
    async with aiohttp.ClientSession() as s, s.post(f"{sim.url}/sim/control", json={"live": False}) as r:
        assert r.status == 200


async def test_collects_every_event_once_following_next_links(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=1200, live_rate=0) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.expected_ids()
        async with running(pipeline(sim, out, page_size=100), tmp_path) as svc:
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
            await wait_for(lambda: source_health(svc).details.get("last_success") is not None)
        got = ids(out)
        assert len(got) == len(set(got)) == 1200
        assert sim.by_path["/v1/events"] >= 12


async def test_event_types_filter_is_one_query_with_repeated_event_type(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=600, live_rate=0) as sim:
        out = tmp_path / "out.ndjson"
        types = frozenset({THREAT_DETECTED, CLOUD_IOC})
        want = sim.expected_ids(event_types=types)
        async with running(pipeline(sim, out, event_types=sorted(types)), tmp_path):
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
            await asyncio.sleep(0.3)
        assert sorted(ids(out)) == sorted(want)
        assert {r["event_type_id"] for r in read_ndjson(out)} == types


async def test_events_inserted_between_page_requests_are_neither_lost_nor_duplicated(tmp_path: Path) -> None:
    # Seven newer events arrive before every answer: each page repeats the tail of the one before,
    # and every pass starts with events the previous one never saw.
    async with AmpSim(backlog_events=1000, live_rate=0, insert_per_request=7) as sim:
        out = tmp_path / "out.ndjson"
        async with running(pipeline(sim, out, page_size=50), tmp_path):
            await wait_for(lambda: len(ids(out)) >= 1000, timeout=30)
            want = sim.expected_ids()  # everything that exists now, inserts included
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
        got = ids(out)
        assert len(got) == len(set(got)), "an event was delivered twice"
        assert sim.events_served > len(got), "shifted offsets must have served repeats"
        assert set(got) <= sim.expected_ids()


async def test_live_events_during_a_multi_page_pass_are_all_delivered(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=1000, live_rate=150, latency_secs=0.01) as sim:
        out = tmp_path / "out.ndjson"
        async with running(pipeline(sim, out, page_size=100), tmp_path):
            await wait_for(lambda: len(ids(out)) >= 1300, timeout=30)
            await stop_live(sim)
            want = sim.expected_ids()
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
        got = ids(out)
        assert len(got) == len(set(got)) == len(want)


async def test_stop_mid_pass_commits_the_pass_and_the_restart_resumes_it(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=3000, live_rate=0, latency_secs=0.02) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.expected_ids()
        cfg = pipeline(sim, out, page_size=100)
        async with running(dict(cfg), tmp_path):
            await wait_for(lambda: len(ids(out)) >= 500)
        cursor = await saved_cursor(tmp_path)
        assert cursor["pass"] is not None
        assert "offset=" in cursor["pass"]["next"]
        assert cursor["start_date"] < time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 6 * HOUR)
        ), "the cursor must not move before the pass ends"
        before = sim.by_path["/v1/events"]
        async with running(dict(cfg), tmp_path) as svc2:
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
            await wait_for(lambda: source_health(svc2).details.get("last_success") is not None)
        got = ids(out)
        assert len(got) == len(set(got)) == 3000
        # Resumed at the saved page: the second run did not read the pass again from the top.
        assert sim.by_path["/v1/events"] - before < 30


async def test_a_failed_request_mid_pass_resumes_at_the_last_committed_page(tmp_path: Path) -> None:
    # The sixth /v1/events request fails for good (400): the pass fails and is retried after backoff.
    bad = [{"path": "/v1/events", "status": 400, "count": 1, "after": 5}]
    async with AmpSim(backlog_events=1000, live_rate=0, faults=bad) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.expected_ids()
        async with running(pipeline(sim, out, page_size=100), tmp_path) as svc:
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
            await wait_for(lambda: source_health(svc).details.get("last_success") is not None)
        assert sorted(ids(out)) == sorted(want)
        # The refused request never reached the handler: 10 pages, then at most two one-page passes.
        # Reading the pass again from the top would have made 15.
        assert sim.by_path["/v1/events"] <= 12, "the retry read the pass again from the top"


async def test_completed_pass_moves_start_date_to_the_newest_event_it_began_with(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=300, live_rate=0) as sim:
        out = tmp_path / "out.ndjson"
        newest = max(e.seconds for e in sim.store.all_events())
        async with running(pipeline(sim, out, page_size=100), tmp_path) as svc:
            await wait_for(lambda: len(ids(out)) >= 300)
            await wait_for(lambda: source_health(svc).details.get("last_success") is not None)
        cursor = await saved_cursor(tmp_path)
        assert cursor["pass"] is None
        assert cursor["start_date"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(newest))


@pytest.mark.parametrize(
    "style", ["x-ratelimit", "x-rate-limit"], ids=["wire-spelling", "documented-spelling"]
)
async def test_quota_is_respected_before_the_vendor_has_to_refuse(tmp_path: Path, style: str) -> None:
    # 5 requests per 1 s window, 11 pages: the client waits for each reset when remaining hits 0.
    async with AmpSim(
        backlog_events=1050, live_rate=0, quota_per_hour=5, quota_window_secs=1.0, header_style=style
    ) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.expected_ids()
        async with running(pipeline(sim, out, page_size=100), tmp_path):
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
        assert sim.rate_limited == 0
        assert len(ids(out)) == 1050


async def test_429_is_waited_out_until_the_reset_header_and_nothing_is_skipped(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=400, live_rate=0, quota_per_hour=4, quota_window_secs=1.5) as sim:
        # Another integration on the same credential has spent the quota.
        auth = {
            "Authorization": "Basic " + base64.b64encode(f"{sim.client_id}:{sim.api_key}".encode()).decode()
        }
        async with aiohttp.ClientSession(headers=auth) as s:
            for _ in range(4):
                async with s.get(f"{sim.url}/v1/version") as r:
                    assert r.status == 200
        out = tmp_path / "out.ndjson"
        want = sim.expected_ids()
        async with running(pipeline(sim, out, page_size=100), tmp_path):
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
        assert sim.rate_limited >= 1
        log = list(sim.events_log)
        first_429 = next(i for i, (_, status) in enumerate(log) if status == 429)
        refused_at = log[first_429][0]
        later = [t for t, status in log[first_429 + 1 :]]
        assert later and later[0] - refused_at >= 0.5, "the retry came before the quota window reset"
        assert len(ids(out)) == 400


async def test_wrong_api_key_turns_health_red_with_the_vendor_message(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=10, live_rate=0) as sim:
        out = tmp_path / "out.ndjson"
        cfg = pipeline(sim, out, stale_after_secs=1)
        cfg["sources"]["amp"]["api_key"] = secret_ref("TEST_AMP_BAD_KEY", "not-the-key")
        async with running(cfg, tmp_path) as svc:
            # Wait for the vendor's answer: the 1 s staleness alone can turn health red first.
            await wait_for(lambda: "HTTP 401" in (source_health(svc).reason or ""), timeout=10)
            assert not source_health(svc).healthy
            reason = source_health(svc).reason or ""
            assert "HTTP 401" in reason and "Unknown API key or Client ID" in reason
            assert "not-the-key" not in reason
            assert svc.health is not None
            async with aiohttp.ClientSession() as s, s.get(f"{svc.health.url}/readyz") as r:
                assert r.status == 503


async def test_malformed_records_are_dead_lettered_and_the_rest_delivered(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=500, live_rate=0, malformed_every=7) as sim:
        out = tmp_path / "out.ndjson"
        broken = sim.malformed_ids()
        assert broken
        async with running(pipeline(sim, out, page_size=100), tmp_path) as svc:
            await wait_for(lambda: set(ids(out)) >= sim.expected_ids() - broken, timeout=30)
            letters = await svc.store.dead_letters(limit=1000)
        assert {letter.stage for letter in letters} == {"source"}
        assert all("lacks an integer id or timestamp" in letter.reason for letter in letters)
        assert len(letters) >= len(broken)
        assert not set(ids(out)) & broken


async def test_a_garbage_page_is_asked_for_again_and_nothing_is_lost(tmp_path: Path) -> None:
    # Two proxy error pages in a row in the middle of a pass: a skip would lose the page's events for good.
    bad = [{"path": "/v1/events", "status": 200, "count": 2, "after": 2, "body": "<html>proxy error</html>"}]
    async with AmpSim(backlog_events=600, live_rate=0, faults=bad) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.expected_ids()
        async with running(pipeline(sim, out, page_size=100), tmp_path) as svc:
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
            assert await svc.store.dead_letters() == []
        assert sorted(ids(out)) == sorted(want)


async def test_a_page_that_stays_garbage_is_dead_lettered_and_stepped_over(tmp_path: Path) -> None:
    bad = [{"path": "/v1/events", "status": 200, "count": MALFORMED_ATTEMPTS, "after": 2, "body": "<html>"}]
    async with AmpSim(backlog_events=600, live_rate=0, faults=bad) as sim:
        out = tmp_path / "out.ndjson"
        async with running(pipeline(sim, out, page_size=100), tmp_path) as svc:
            await wait_for(svc.store.dead_letters, timeout=30)
            letters = await svc.store.dead_letters()
            # The pass goes on past the broken page; the next pass reads again what it held.
            await wait_for(lambda: set(ids(out)) >= sim.expected_ids(), timeout=30)
        assert len(letters) == 1 and "no data list" in letters[0].reason
        assert f"stepped over after {MALFORMED_ATTEMPTS} attempts" in letters[0].reason


async def test_next_link_to_another_host_is_not_followed(tmp_path: Path) -> None:
    page = {
        "version": "v1.2.0",
        "metadata": {
            "links": {"next": "https://attacker.example/v1/events?limit=100&offset=100"},
            "results": {"total": 300, "current_item_count": 0, "index": 0, "items_per_page": 100},
        },
        "data": [],
    }
    rule = [{"path": "/v1/events", "status": 200, "count": 1, "body": page}]
    async with AmpSim(backlog_events=300, live_rate=0, faults=rule) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.expected_ids()
        async with running(pipeline(sim, out, page_size=100), tmp_path) as svc:
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
            letters = await svc.store.dead_letters()
        assert any("not followed" in letter.reason for letter in letters)


async def test_a_next_link_that_does_not_advance_is_stepped_over(tmp_path: Path) -> None:
    async with AmpSim(backlog_events=250, live_rate=0) as sim:
        same_page = f"{sim.url}/v1/events?limit=100&offset=0"
        page = {"metadata": {"links": {"next": same_page}}, "data": []}
        sim.faults.set_rules(parse_rules([{"path": "/v1/events", "status": 200, "count": 1, "body": page}]))
        out = tmp_path / "out.ndjson"
        want = sim.expected_ids()
        async with running(pipeline(sim, out, page_size=100), tmp_path) as svc:
            await wait_for(lambda: set(ids(out)) >= want, timeout=30)
            letters = await svc.store.dead_letters()
        assert any("does not advance the offset" in letter.reason for letter in letters)


def test_region_presets_and_api_url_override(tmp_path: Path) -> None:
    os_ref = secret_ref("TEST_AMP_CFG_KEY", "k")

    def source(**extra: Any) -> Any:
        cfg = {
            "sources": {
                "amp": {"type": "cisco_secure_endpoint", "client_id": "c", "api_key": os_ref, **extra}
            }
        }
        cfg["sinks"] = {"out": {"type": "stdout", "inputs": ["amp"]}}
        return parse_config(cfg, tmp_path).sources["amp"]

    assert source().base_url == "https://api.amp.cisco.com"
    assert source(region="eu").base_url == "https://api.eu.amp.cisco.com"
    assert source(region="apjc").base_url == "https://api.apjc.amp.cisco.com"
    assert source(region="eu", api_url="https://proxy.example/").base_url == "https://proxy.example"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"region": "us"}, "sources.amp.region"),
        ({"api_url": "http://api.amp.cisco.com"}, "must use https"),
        ({"event_types": [0]}, "positive numbers from GET /v1/event_types"),
        ({"page_size": 1000}, "sources.amp.page_size"),
        ({"api_key": "inline-key"}, "must not be written inline"),
    ],
    ids=["unknown-region", "plain-http", "bad-type-id", "page-too-big", "inline-secret"],
)
def test_invalid_config_names_the_field_and_the_fix(
    tmp_path: Path, extra: dict[str, Any], problem: str
) -> None:
    src = {"type": "cisco_secure_endpoint", "client_id": "c", "api_key": secret_ref("TEST_AMP_CFG_KEY", "k")}
    cfg = {"sources": {"amp": {**src, **extra}}, "sinks": {"out": {"type": "stdout", "inputs": ["amp"]}}}
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, tmp_path)
    assert problem in str(exc.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>", "not JSON"),
        (b"[]", "no data list"),
        (b'{"data": {"id": 1}}', "no data list"),
    ],
    ids=["not-json", "array", "data-not-list"],
)
def test_parse_events_rejects_pages_that_are_not_envelopes(body: bytes, reason: str) -> None:
    page = parse_events(body)
    assert not page.usable and page.records == [] and reason in page.rejects[0][0]


def test_a_page_without_next_link_that_counts_more_items_is_not_the_last() -> None:
    body = b'{"metadata": {"links": {}, "results": {"total": 900, "current_item_count": 2, "index": 0}}, "data": []}'
    assert parse_events(body).more
    last = b'{"metadata": {"links": {}, "results": {"total": 2, "current_item_count": 2, "index": 0}}, "data": []}'
    assert not parse_events(last).more
