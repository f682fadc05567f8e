"""The CrowdStrike source against the Falcon simulator over real sockets (specs/crowdstrike.md §3)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.service import Service
from logferry.sim.crowdstrike import CrowdStrikeSim
from logferry.sources.crowdstrike.config import CrowdStrikeConfig
from logferry.sources.crowdstrike.mapping import mapper_for
from tests.conftest import read_ndjson, running, secret_ref, wait_for

APP = "logferrytest"
Key = tuple[str, int]


def cs_source(sim: CrowdStrikeSim, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "crowdstrike",
        "api_url": sim.url,
        "client_id": sim.client_id,
        "client_secret": secret_ref("TEST_CROWDSTRIKE_SECRET", sim.client_secret),
        "app_id": APP,
        "output_format": "raw",
        "flush_secs": 0.2,
        "reconnect_max_secs": 2,
        **({"tls": {"ca_file": sim.ca_file}} if sim.ca_file else {}),
        **overrides,
    }


def pipeline(sim: CrowdStrikeSim, tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "state": {"path": str(tmp_path / "state.db")},
        "api": {"enabled": False},
        "sources": {"cs": cs_source(sim, **overrides)},
        "sinks": {"out": {"type": "file", "inputs": ["cs"], "path": str(tmp_path / "out.ndjson")}},
    }


def expected(sim: CrowdStrikeSim) -> set[Key]:
    """(eventType, offset) of every event: unique across partitions because types rotate per partition."""
    log = sim.log
    return {
        (log.event_type(p, i), log.offset(i))
        for p in range(sim.partitions)
        for i in range(log.count(time.time()))
    }


def keys(tmp_path: Path) -> list[Key]:
    out = tmp_path / "out.ndjson"
    if not out.exists():
        return []
    return [(r["metadata"]["eventType"], r["metadata"]["offset"]) for r in read_ndjson(out)]


def lane_cursor(service: Service) -> Any:
    return service.pipeline.runtimes["cs"].cursor


def refreshes(sim: CrowdStrikeSim, partition: int) -> int:
    return sum(1 for part, _ in sim.refresh_log if part == partition)


def unchanged_for(value: Callable[[], int], secs: float, samples: int = 5) -> Callable[[], bool]:
    """A predicate that is true once ``value()`` has read the same for ``secs`` and ``samples`` calls.

    Counting calls as well as time keeps a stalled event loop (which stops the simulator too) from
    passing for a stalled stream.
    """
    last: int | None = None
    since = 0.0
    seen = 0

    def check() -> bool:
        nonlocal last, since, seen
        v, now = value(), time.monotonic()
        if v != last:
            last, since, seen = v, now, 0
        seen += 1
        return seen > samples and now - since >= secs

    return check


async def test_collects_every_partition_once_with_one_offset_cursor_per_partition(tmp_path: Path) -> None:
    async with CrowdStrikeSim(partitions=3, backlog_events=400, first_offset=1000) as sim:
        want = expected(sim)
        async with running(pipeline(sim, tmp_path, batch_events=100), tmp_path) as service:
            await wait_for(lambda: len(keys(tmp_path)) >= len(want), timeout=20)
            await wait_for(
                lambda: lane_cursor(service) is not None and len(lane_cursor(service)["lanes"]) == 3
            )
            await wait_for(
                lambda: all(c == {"offset": 1399} for c in lane_cursor(service)["lanes"].values()), timeout=5
            )
        got = keys(tmp_path)
        assert len(got) == len(set(got)) and set(got) == want
        assert set(lane_cursor(service)["lanes"]) == {"partition-0", "partition-1", "partition-2"}
        assert sim.discovers == 1


@pytest.mark.parametrize("inclusive", [True, False], ids=["offset-inclusive", "offset-exclusive"])
async def test_restart_resumes_each_partition_at_its_offset_without_replaying_the_backlog(
    tmp_path: Path, inclusive: bool
) -> None:
    async with CrowdStrikeSim(
        partitions=2, backlog_events=400, stream_rate=400, offset_inclusive=inclusive
    ) as sim:
        want = expected(sim)
        cfg = pipeline(sim, tmp_path, batch_events=50)
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: len(keys(tmp_path)) >= 200, timeout=20)
        committed = {lane: c["offset"] for lane, c in lane_cursor(service)["lanes"].items()}
        assert len(committed) == 2 and sum(o - 1 for o in committed.values()) < len(want) - 2, "stop part-way"
        served_before = sim.events_served
        async with running(cfg, tmp_path):
            await wait_for(lambda: set(keys(tmp_path)) >= want, timeout=20)
        got = keys(tmp_path)
        assert len(got) == len(set(got)) and set(got) == want
        # No backlog replay: after the restart Falcon serves each partition from its committed
        # offset on, which is one event more when ``offset`` is inclusive (the lane drops it).
        missing = sum(400 - o for o in committed.values())
        assert sim.events_served - served_before == missing + (2 if inclusive else 0)


async def test_dropped_and_reset_streams_reconnect_and_lose_nothing(tmp_path: Path) -> None:
    async with CrowdStrikeSim(
        partitions=2, backlog_events=500, drop_after_events=70, stream_rate=1000
    ) as sim:
        want = expected(sim)
        cfg = pipeline(sim, tmp_path, max_requests_per_sec=50)  # a discover per reconnect
        async with running(cfg, tmp_path), aiohttp.ClientSession() as http:
            await wait_for(lambda: len(keys(tmp_path)) >= 200, timeout=20)
            async with http.post(f"{sim.url}/sim/drop", json={"mode": "reset"}) as r:
                assert r.status == 200
            await wait_for(lambda: set(keys(tmp_path)) >= want, timeout=20)
        got = keys(tmp_path)
        assert len(got) == len(set(got)) and set(got) == want
        assert sim.discovers >= 500 // 70  # partitions reconnecting together share one discovery


async def test_a_silent_stream_is_reopened_from_the_last_offset(tmp_path: Path) -> None:
    # No keepalive lines: after the backlog the connection looks exactly like one a NAT dropped.
    async with CrowdStrikeSim(partitions=1, backlog_events=50, keepalive_secs=0) as sim:
        want = expected(sim)
        cfg = pipeline(sim, tmp_path, idle_timeout_secs=1, max_requests_per_sec=50)
        async with running(cfg, tmp_path):
            await wait_for(lambda: set(keys(tmp_path)) >= want, timeout=20)
            await wait_for(lambda: sim.discovers >= 3, timeout=20)
            served = sim.events_served
        got = keys(tmp_path)
        assert len(got) == len(set(got)) and set(got) == want
        # Each reconnect resumed at the committed offset: at most the inclusive one event again.
        assert served <= 50 + (sim.discovers - 1)


async def test_session_is_refreshed_before_its_interval_and_the_token_renews_on_its_own(
    tmp_path: Path,
) -> None:
    async with CrowdStrikeSim(
        partitions=2, backlog_events=10, live_rate=20, refresh_interval_secs=4, token_lifetime_secs=60
    ) as sim:
        # A 4 s session leaves 0.4 s for the refresh; a roomy request budget keeps the limiter out of it.
        async with running(pipeline(sim, tmp_path, max_requests_per_sec=50), tmp_path):
            # The first refresh comes at 3.6 s, the second at 7.2 s; waits for them, not fixed
            # sleeps, keep a slow machine from stopping the service before the second has gone through.
            await wait_for(lambda: all(refreshes(sim, p) >= 1 for p in (0, 1)), timeout=15)
            sim.tokens.clear()  # revoked early: the second refresh gets 401, renews and retries
            await wait_for(lambda: all(refreshes(sim, p) >= 2 for p in (0, 1)), timeout=15)
            await wait_for(lambda: len(keys(tmp_path)) >= 2 * (10 + 20 * 7), timeout=15)
        assert sim.sessions_expired == 0, sim.refresh_log
        for p in (0, 1):
            times = [t for part, t in sim.refresh_log if part == p]
            assert len(times) >= 2
            assert all(b - a < 4 for a, b in zip([0.0, *times], times, strict=False))
        assert sim.discovers == 1, "the stream never had to reconnect"
        assert sim.tokens_issued == 2 and 1 <= sim.requests["401"] <= 2  # one renewal for both partitions
        got = keys(tmp_path)
        assert len(got) == len(set(got)) and len(got) >= 2 * (10 + 20 * 7)


async def test_malformed_lines_are_dead_lettered_and_the_stream_goes_on(tmp_path: Path) -> None:
    async with CrowdStrikeSim(partitions=1, backlog_events=100, malformed_every=40) as sim:
        want = expected(sim)
        async with running(pipeline(sim, tmp_path), tmp_path) as service:
            await wait_for(lambda: set(keys(tmp_path)) >= want, timeout=20)
            letters = await service.store.dead_letters()
        assert len(letters) == 2
        assert letters[0].reason.startswith("partition-0: partition 0: stream line is not JSON")
        assert letters[0].payload == b'{"metadata": {"offset": truncated'


async def test_empty_discover_bodies_and_429s_are_retried(tmp_path: Path) -> None:
    # Every stream ends after 60 events; every second discover answers an empty 200; the discover
    # after the first is throttled.
    async with CrowdStrikeSim(
        partitions=1,
        backlog_events=120,
        drop_after_events=60,
        empty_discover_every=2,
        faults=[{"path": "/sensors/entities/datafeed/v2", "status": 429, "count": 1, "after": 1}],
    ) as sim:
        want = expected(sim)
        async with running(pipeline(sim, tmp_path), tmp_path):
            await wait_for(lambda: set(keys(tmp_path)) >= want, timeout=20)
        got = keys(tmp_path)
        assert len(got) == len(set(got)) and set(got) == want
        assert sim.faults.injected == 1 and sim.discovers >= 3


async def test_a_full_outbox_stops_reading_the_stream_until_the_sink_drains(tmp_path: Path) -> None:
    async with CrowdStrikeSim(partitions=1, backlog_events=30000) as sim:
        want = expected(sim)
        blocker = tmp_path / "blocked"
        blocker.write_text("")  # a file where the sink's directory should be: every write fails
        out = blocker / "out.ndjson"
        cfg = pipeline(sim, tmp_path)
        cfg["sinks"]["out"].update(path=str(out), outbox_max_bytes=3_000_000, max_backoff_secs=0.3)
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: sim.events_served > 0, timeout=10)
            # Once the outbox is at its cap and the socket buffers are full the stream stalls; how
            # long that takes depends on the machine, so wait for it rather than a fixed time.
            outbox = service.pipeline.outbox_bytes
            stalled = unchanged_for(lambda: sim.events_served, 0.5)
            await wait_for(lambda: outbox["out"] >= 3_000_000 and stalled(), timeout=15)
            held = sim.events_served
            await asyncio.sleep(0.4)
            # Nothing more is read, so TCP holds the simulator back; nothing is dropped either.
            assert sim.events_served == held < len(want), held
            blocker.unlink()
            # Count lines rather than parse 30,000 records on every poll.
            await wait_for(lambda: out.exists() and out.read_bytes().count(b"\n") >= len(want), timeout=20)
        got = [(r["metadata"]["eventType"], r["metadata"]["offset"]) for r in read_ndjson(out)]
        assert len(got) == len(set(got)) and set(got) == want


async def test_a_new_partition_in_discovery_rebuilds_the_lanes_from_the_committed_offsets(
    tmp_path: Path,
) -> None:
    async with CrowdStrikeSim(partitions=2, backlog_events=300, drop_after_events=100) as sim:
        async with running(pipeline(sim, tmp_path), tmp_path) as service, aiohttp.ClientSession() as http:
            await wait_for(lambda: len(keys(tmp_path)) >= 100, timeout=10)
            async with http.post(f"{sim.url}/sim/control", json={"partitions": 3}) as r:
                assert (await r.json())["partitions"] == 3
            want = expected(sim)
            await wait_for(lambda: set(keys(tmp_path)) >= want, timeout=20)
            await wait_for(lambda: len(lane_cursor(service)["lanes"]) == 3, timeout=5)
        got = keys(tmp_path)
        assert len(got) == len(set(got)) and set(got) == want


async def test_siem_format_maps_fields_as_the_siem_connector_names_them(tmp_path: Path) -> None:
    async with CrowdStrikeSim(partitions=1, backlog_events=8) as sim:
        events = [sim.log.event(0, i) for i in range(4)]
    siem = mapper_for("siem")
    detection = next(e for e in events if e["metadata"]["eventType"] == "DetectionSummaryEvent")
    d = detection["event"]
    assert siem(detection) == {
        "signatureId": "DetectionSummaryEvent",
        "name": "DetectionSummaryEvent",
        "severity": d["Severity"],
        "cat": d["Tactic"],
        "externalId": d["SensorId"],
        "cn1": d["ParentProcessId"],
        "cn2": d["ProcessId"],
        "dhost": d["ComputerName"],
        "duser": d["UserName"],
        "msg": d["DetectDescription"],
        "fname": d["FileName"],
        "filePath": d["FilePath"],
        "fileHash": d["MD5String"],
        "dntdom": d["MachineDomain"],
        "cs5": d["CommandLine"],
        "cs6": d["FalconHostLink"],
        "tactic": d["Tactic"],
        "technique": d["Technique"],
        "objective": d["Objective"],
        "patternDisposition": d["PatternDispositionDescription"],
        "outcome": d["PatternDispositionValue"],
        "cn3": detection["metadata"]["offset"],
        "cn3Label": "Offset",
        "rt": detection["metadata"]["eventCreationTime"],
    }
    audit = next(e for e in events if e["metadata"]["eventType"] == "AuthActivityAuditEvent")
    assert siem(audit)["duser"] == audit["event"]["UserId"]
    assert siem(audit)["deviceProcessName"] == "Crowdstrike Streaming API"
    other = next(e for e in events if e["metadata"]["eventType"] == "RemoteResponseSessionStartEvent")
    assert siem(other) == other, "types without a mapping pass through whole"
    assert mapper_for("raw")(detection) is detection


def test_config_refuses_a_bad_app_id_and_picks_the_cloud_host(tmp_path: Path) -> None:
    base = {
        "type": "crowdstrike",
        "client_id": "abc",
        "client_secret": secret_ref("CS_X", "s"),
        "app_id": APP,
    }
    cfg: dict[str, Any] = {"sources": {"cs": base}, "sinks": {"o": {"type": "stdout", "inputs": ["cs"]}}}
    parsed = parse_config(cfg, tmp_path)
    assert isinstance(parsed.sources["cs"], CrowdStrikeConfig)
    assert parsed.sources["cs"].base_url == "https://api.crowdstrike.com"
    cfg["sources"]["cs"] = {**base, "cloud": "us-gov-2"}
    gov = parse_config(cfg, tmp_path).sources["cs"]
    assert isinstance(gov, CrowdStrikeConfig) and gov.base_url == "https://api.us-gov-2.crowdstrike.mil"
    cfg["sources"]["cs"] = {**base, "app_id": "logferry-prod"}
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, tmp_path)
    assert any(
        p.startswith("sources.cs.app_id:") and "1-32 letters and digits" in p for p in exc.value.problems
    )
    cfg["sources"]["cs"] = {**base, "api_url": "http://falcon.example.com"}
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, tmp_path)
    assert any(p.startswith("sources.cs.api_url:") and "https" in p for p in exc.value.problems)


async def test_alerts_lane_pages_every_alert_once_and_resumes_its_own_cursor(tmp_path: Path) -> None:
    async with CrowdStrikeSim(partitions=1, backlog_events=20, alerts=230, backlog_secs=3600) as sim:
        want = {sim.alert_log.alert(i)["composite_id"] for i in range(230)}
        cfg = pipeline(sim, tmp_path, alerts={"batch_size": 40, "initial_lookback_secs": 7200})

        def alert_ids() -> list[str]:
            out = tmp_path / "out.ndjson"
            return (
                [r["composite_id"] for r in read_ndjson(out) if "composite_id" in r] if out.exists() else []
            )

        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: set(alert_ids()) >= want, timeout=20)
            await wait_for(
                lambda: (lane_cursor(service) or {}).get("lanes", {}).get("alerts", {}).get("after") is None
            )
            alerts_cursor = lane_cursor(service)["lanes"]["alerts"]
        assert alerts_cursor["since"] == sim.alert_log.alert(229)["updated_timestamp"]
        assert len(keys_of_stream(tmp_path)) == 20
        queries = sim.alert_queries
        assert queries == 230 // 40 + 1
        async with running(cfg, tmp_path):
            await wait_for(lambda: sim.alert_queries > queries, timeout=10)
        got = alert_ids()
        assert len(got) == len(set(got)) and set(got) == want, "the restart re-read only the boundary alerts"


def keys_of_stream(tmp_path: Path) -> list[Key]:
    return [
        (r["metadata"]["eventType"], r["metadata"]["offset"])
        for r in read_ndjson(tmp_path / "out.ndjson")
        if "metadata" in r
    ]
