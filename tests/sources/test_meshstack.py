"""meshStack source against the meshStack simulator, through the real pipeline and a file sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from logferry.sim.meshstack import MeshStackSim
from logferry.sources.meshstack import parse_page
from tests.conftest import read_ndjson, running, secret_ref, wait_for


def mesh_config(sim: MeshStackSim, out: Path, **source: Any) -> dict[str, Any]:
    creds = sim.credentials
    return {
        "sources": {
            "mesh": {
                "type": "meshstack",
                "api_url": sim.url,
                "client_id": creds["client_id"],
                "client_secret": secret_ref("TEST_MESH_SECRET", creds["client_secret"]),
                "initial_lookback_secs": 2 * 3600,
                "window_secs": 900,
                "lag_secs": 0,
                "interval_secs": 1,
                "page_size": 100,
                **source,
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["mesh"], "path": str(out), "rotate_max_bytes": 0}},
    }


async def stats(sim: MeshStackSim) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{sim.url}/sim/stats") as r:
        data: dict[str, Any] = await r.json()
        return data


def uuids(out: Path) -> list[str]:
    return [r["metadata"]["uuid"] for r in read_ndjson(out)]


async def test_form_login_follows_the_307_to_the_idp(tmp_path: Path) -> None:
    async with MeshStackSim(backlog_events=50, live_rate=0) as sim:
        out = tmp_path / "out.ndjson"
        async with running(mesh_config(sim, out, login="form"), tmp_path):
            await wait_for(lambda: out.exists() and len(uuids(out)) == 50)
        st = await stats(sim)
        assert st["requests"].get("307", 0) >= 1


async def test_token_expiry_mid_run_is_refreshed_without_losing_pages(tmp_path: Path) -> None:
    async with MeshStackSim(
        backlog_events=3000, backlog_secs=3600, live_rate=0, token_lifetime_secs=1, latency_secs=0.02
    ) as sim:
        out = tmp_path / "out.ndjson"
        async with running(mesh_config(sim, out, page_size=50), tmp_path):
            await wait_for(lambda: out.exists() and len(uuids(out)) >= 3000, timeout=60)
        st = await stats(sim)
        assert st["tokens_issued"] >= 2
        assert sorted(set(uuids(out))) == sorted(uuids(out))


async def test_429_storm_is_waited_out_and_nothing_is_skipped(tmp_path: Path) -> None:
    storm = [{"path": "/api/meshobjects/*", "status": 429, "count": 8, "after": 2, "retry_after": 0.2}]
    async with MeshStackSim(backlog_events=600, live_rate=0, faults=storm) as sim:
        out = tmp_path / "out.ndjson"
        async with running(mesh_config(sim, out), tmp_path):
            await wait_for(lambda: out.exists() and len(uuids(out)) >= 600, timeout=60)
        assert len(set(uuids(out))) == 600
        assert (await stats(sim))["requests"]["429"] >= 8


async def test_overdriving_the_key_is_prevented_by_the_client_side_limit(tmp_path: Path) -> None:
    # The simulator 429s on a second concurrent request per key; our limiter never sends one.
    async with MeshStackSim(backlog_events=800, live_rate=0, latency_secs=0.01) as sim:
        out = tmp_path / "out.ndjson"
        async with running(mesh_config(sim, out, page_size=20), tmp_path):
            await wait_for(lambda: out.exists() and len(uuids(out)) >= 800, timeout=60)
        assert (await stats(sim))["requests"].get("429", 0) == 0


async def test_live_events_keep_arriving_after_catch_up(tmp_path: Path) -> None:
    async with MeshStackSim(backlog_events=10, live_rate=20) as sim:
        out = tmp_path / "out.ndjson"
        async with running(mesh_config(sim, out), tmp_path):
            await wait_for(lambda: out.exists() and len(uuids(out)) >= 40, timeout=30)


async def test_malformed_page_is_dead_lettered_and_the_pipeline_keeps_going(tmp_path: Path) -> None:
    bad = [{"path": "/api/meshobjects/*", "status": 200, "count": 1, "after": 1, "body": "<html>oops</html>"}]
    async with MeshStackSim(backlog_events=300, live_rate=0, faults=bad) as sim:
        out = tmp_path / "out.ndjson"
        async with running(mesh_config(sim, out), tmp_path) as svc:
            await wait_for(lambda: out.exists() and len(uuids(out)) >= 200, timeout=30)
            letters = await svc.store.dead_letters()
            assert letters and letters[0].stage == "source"
            assert "not a JSON object" in letters[0].reason
            await wait_for(lambda: svc.pipeline.status().components[0].details["last_success"] is not None)


async def test_wrong_secret_turns_health_red_with_the_reason(tmp_path: Path) -> None:
    async with MeshStackSim(backlog_events=10, live_rate=0) as sim:
        out = tmp_path / "out.ndjson"
        cfg = mesh_config(sim, out, stale_after_secs=1)
        cfg["sources"]["mesh"]["client_secret"] = secret_ref("TEST_MESH_BAD", "wrong-secret")
        async with running(cfg, tmp_path) as svc:

            def red() -> bool:
                (src,) = [c for c in svc.pipeline.status().components if c.kind == "source"]
                return not src.healthy and "HTTP 401" in (src.reason or "")

            await wait_for(red, timeout=10)
            assert svc.health is not None
            async with aiohttp.ClientSession() as s, s.get(f"{svc.health.url}/readyz") as r:
                assert r.status == 503


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"page": {"totalPages": "x"}}', "non-integer"),
        (
            b'{"_embedded": {"meshEventLogs": {}}, "page": {"totalPages": 1}}',
            "no _embedded.meshEventLogs list",
        ),
    ],
    ids=["not-json", "array", "bad-total-pages", "embedded-not-list"],
)
def test_parse_page_rejects_malformed_pages_with_a_reason(body: bytes, reason: str) -> None:
    records, _ids, rejects, _pages = parse_page(body)
    assert records == [] and reason in rejects[0][0]


def test_parse_page_treats_missing_embedded_as_empty_and_rejects_records_without_uuid() -> None:
    assert parse_page(b'{"page": {"totalPages": 0, "number": 0}}') == ([], [], [], 0)
    body = (
        b'{"_embedded": {"meshEventLogs": [{"metadata": {"createdAt": "2026-01-01T00:00:00Z"}}]}, "page": {}}'
    )
    records, _ids, rejects, _ = parse_page(body)
    assert records == [] and "uuid" in rejects[0][0]


async def test_two_sources_with_one_api_key_share_its_request_budget(tmp_path: Path) -> None:
    async with MeshStackSim(backlog_events=1500, live_rate=0, latency_secs=0.01) as sim:
        out = tmp_path / "out.ndjson"
        # The nine event types split between two sources that use the same key.
        cfg = mesh_config(sim, out, page_size=20, event_types=["Added", "Created", "Changed", "Deleted"])
        other = ["Approved", "Cancelled", "Rejected", "Removed", "Requested"]
        cfg["sources"]["mesh2"] = dict(cfg["sources"]["mesh"], event_types=other)
        cfg["sinks"]["out"]["inputs"] = ["mesh", "mesh2"]
        async with running(cfg, tmp_path):
            await wait_for(lambda: out.exists() and len(uuids(out)) >= 1500, timeout=60)
        assert sorted(set(uuids(out))) == sorted(uuids(out))
        assert (await stats(sim))["requests"].get("429", 0) == 0
