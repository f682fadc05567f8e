"""meshStack → Logstash through the real pipeline: outbox, delivery loop, a dropped connection."""

from __future__ import annotations

from pathlib import Path

from logferry.sim.beats import BeatsSim
from logferry.sim.meshstack import MeshStackSim
from tests.conftest import running, secret_ref, wait_for
from tests.sinks.logstash.conftest import address

EVENTS = 1500


async def test_every_record_arrives_once_across_a_dropped_connection(tmp_path: Path) -> None:
    mesh = MeshStackSim(backlog_events=EVENTS, live_rate=0.0)
    await mesh.start(tls=True)
    beats = BeatsSim(partial_ack_every=100, cut_windows=1, cut_after_events=250)
    await beats.start()
    config = {
        "sources": {
            "mesh": {
                "type": "meshstack",
                "api_url": mesh.url,
                "client_id": mesh.credentials["client_id"],
                "client_secret": secret_ref("LOGSTASH_E2E_MESH_SECRET", mesh.credentials["client_secret"]),
                "initial_lookback_secs": 3 * 3600,
                "window_secs": 1800,
                "lag_secs": 0,
                "interval_secs": 1,
                "page_size": 500,
                "tls": {"ca_file": mesh.ca_file},
            }
        },
        "sinks": {
            "collector": {
                "type": "logstash",
                "inputs": ["mesh"],
                "hosts": [address(beats)],
                "batch": {"max_events": 600},
                "max_backoff_secs": 0.2,
            }
        },
    }
    try:
        async with running(config, tmp_path) as svc:
            await wait_for(lambda: beats.received >= EVENTS, timeout=20)
            await wait_for(lambda: svc.pipeline.loops["collector"].health.delivered >= EVENTS, timeout=10)
            assert svc.pipeline.loops["collector"].health.retries >= 1  # the cut was met
            assert await svc.store.dead_letters() == []
        uuids = [e["metadata"]["uuid"] for e in beats.events]
        assert len(uuids) == EVENTS == len(set(uuids))  # partial ACKs kept the resend from duplicating
        assert {e["@metadata"]["source"] for e in beats.events} == {"mesh"}
    finally:
        await beats.stop()
        await mesh.stop()
