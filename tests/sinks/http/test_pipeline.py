"""meshStack → Splunk HEC (with acks) and the generic HTTP sink through the real pipeline."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from logferry.sim.hec import DEFAULT_TOKEN, INGEST_INDEX
from logferry.sim.meshstack import MeshStackSim
from tests.conftest import running, secret_ref, wait_for
from tests.sinks.http.conftest import StartHec, harness, stored

EVENTS = 1500


@pytest.fixture
async def mesh() -> AsyncIterator[MeshStackSim]:
    sim = MeshStackSim(backlog_events=EVENTS, live_rate=0.0)
    await sim.start(tls=True)
    yield sim
    await sim.stop()


async def test_both_sinks_get_every_record_once_across_a_hec_outage(
    mesh: MeshStackSim, start_hec: StartHec, tmp_path: Path
) -> None:
    hec = await start_hec(ack=True, ack_delay_secs=0.05)
    # The outage lasts until both sinks have met it (ended below), however slow the start-up.
    await harness(hec, "POST", "/sim/outage", {"seconds": 600, "status": 503, "retry_after": 0.5})
    config = {
        "sources": {
            "mesh": {
                "type": "meshstack",
                "api_url": mesh.url,
                "client_id": mesh.credentials["client_id"],
                "client_secret": secret_ref("HTTP_E2E_MESH_SECRET", mesh.credentials["client_secret"]),
                "initial_lookback_secs": 3 * 3600,
                "window_secs": 1800,
                "lag_secs": 0,
                "interval_secs": 1,
                "page_size": 500,
                "tls": {"ca_file": mesh.ca_file},
            }
        },
        "sinks": {
            "splunk": {
                "type": "splunk_hec",
                "inputs": ["mesh"],
                "url": hec.url,
                "token": secret_ref("HTTP_E2E_HEC_TOKEN", DEFAULT_TOKEN),
                "index": "security",
                "time_field": "metadata.createdAt",
                "id_field": "logferry_id",
                "ack": True,
                "ack_poll_interval_secs": 0.1,
                "max_backoff_secs": 1,
                "tls": {"ca_file": hec.ca_file},
            },
            "collector": {
                "type": "http",
                "inputs": ["mesh"],
                "url": f"{hec.url}/ingest",
                "format": "ndjson",
                "auth": {"type": "bearer", "token": secret_ref("HTTP_E2E_BEARER", "ingest-bearer-token-1")},
                "tls": {"ca_file": hec.ca_file},
            },
        },
    }
    async with running(config, tmp_path) as svc:
        loops = svc.pipeline.loops
        await wait_for(lambda: loops["splunk"].health.retries > 0 and loops["collector"].health.retries > 0)
        await harness(hec, "DELETE", "/sim/outage")

        async def all_arrived() -> bool:
            return (
                len(await stored(hec, "security")) >= EVENTS
                and len(await stored(hec, INGEST_INDEX)) >= EVENTS
            )

        await wait_for(all_arrived, timeout=30)
        assert await svc.store.dead_letters() == []
    splunk = await stored(hec, "security")
    assert len({e["fields"]["logferry_id"] for e in splunk}) == len(splunk) == EVENTS
    assert len({e["event"]["metadata"]["uuid"] for e in await stored(hec, INGEST_INDEX)}) == EVENTS
