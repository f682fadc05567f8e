"""meshStack → Sentinel through the real pipeline: outages, 413 splits, rejections, backpressure."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from logferry.core import delivery
from tests.conftest import read_ndjson, running, wait_for
from tests.e2e.conftest import Sims


def event_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r["EventId"]) for r in rows]


@pytest.mark.mesh(backlog_events=3000, live_rate=10.0)
async def test_sentinel_down_then_back_loses_nothing_and_blocks_no_other_sink(
    sims: Sims, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The outage is scaled down with the red threshold (30 s in production) so that the suite
    # stays short; what is checked does not depend on the absolute durations.
    monkeypatch.setattr(delivery, "UNHEALTHY_AFTER_SECS", 5.0)
    outage_secs = 15
    cfg = sims.config(tmp_path, sentinel={"include_event_id": True})
    archive = tmp_path / "archive.ndjson"
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: sims.sentinel.generated() >= 3000, timeout=30)
        await sims.post(sims.sentinel, "/sim/outage", {"seconds": outage_secs, "status": 503})
        outage_end = time.monotonic() + outage_secs
        archived_at_start = len(read_ndjson(archive))
        # The file sink keeps receiving live events while Sentinel is down.
        await wait_for(lambda: len(read_ndjson(archive)) >= archived_at_start + 50, timeout=20)
        await wait_for(lambda: svc.pipeline.outbox_bytes["sentinel"] > 0, timeout=10)

        def sentinel_red() -> bool:
            sink = next(c for c in svc.pipeline.status().components if c.name == "sentinel")
            return not sink.healthy and "503" in (sink.reason or "")

        await wait_for(sentinel_red, timeout=outage_secs)
        assert time.monotonic() < outage_end, "health should turn red during the outage"
        await wait_for(lambda: time.monotonic() > outage_end, timeout=outage_secs + 5, interval=0.5)
        await sims.post(sims.mesh, "/sim/control", {"live": False})
        generated = sims.mesh.generated()
        await wait_for(lambda: sims.sentinel.generated() >= generated, timeout=60)
        await wait_for(
            lambda: next(c for c in svc.pipeline.status().components if c.name == "sentinel").healthy
        )
    rows = await sims.rows()
    assert sorted(event_ids(rows)) == sorted(set(event_ids(rows)))
    assert len(rows) == generated
    assert len({r["metadata"]["uuid"] for r in read_ndjson(archive)}) == generated


@pytest.mark.mesh(backlog_events=6000)
async def test_byte_aware_packing_never_triggers_413_in_normal_operation(sims: Sims, tmp_path: Path) -> None:
    cfg = sims.config(tmp_path, sentinel={"batch": {"max_events": 100_000}, "compression": "none"})
    async with running(cfg, tmp_path):
        await wait_for(lambda: sims.sentinel.generated() >= 6000, timeout=30)
    by_status = sims.sentinel.requests
    assert by_status.get("413", 0) == 0
    # ~6000 rows of ~450 bytes do not fit one 1 MiB request: packing by bytes was what limited them.
    assert by_status["204"] >= 3


@pytest.mark.mesh(backlog_events=1500)
async def test_413_from_the_destination_splits_the_request_and_delivers_everything(
    sims: Sims, tmp_path: Path
) -> None:
    await sims.post(
        sims.sentinel, "/sim/faults", [{"path": "/dataCollectionRules/*", "status": 413, "count": 3}]
    )
    async with running(sims.config(tmp_path, sentinel={"include_event_id": True}), tmp_path) as svc:
        await wait_for(lambda: sims.sentinel.generated() >= 1500, timeout=30)
        assert await svc.store.dead_letters() == []
    assert sims.sentinel.requests["413"] == 3
    rows = await sims.rows()
    assert len(set(event_ids(rows))) == len(rows) == 1500


@pytest.mark.mesh(backlog_events=40)
async def test_records_the_destination_rejects_are_dead_lettered_with_its_reason(
    sims: Sims, tmp_path: Path
) -> None:
    # Pass-through records (kind, metadata, spec …) are not columns of the table: every one is
    # refused with a 400. The loop bisects until each stands alone, then dead-letters it.
    cfg = sims.config(tmp_path, sentinel={"table": None, "stream_name": "Custom-meshStackEventLogs_CL"})
    archive = tmp_path / "archive.ndjson"
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: archive.exists() and len(read_ndjson(archive)) == 40, timeout=20)
        await wait_for(lambda: svc.pipeline.loops["sentinel"].health.dead_lettered == 40, timeout=30)
        letters = await svc.store.dead_letters()
        assert len(letters) == 40
        assert all(d.sink == "sentinel" and "column" in d.reason for d in letters)
        assert svc.pipeline.outbox_bytes["sentinel"] == 0
    assert sims.sentinel.generated() == 0


@pytest.mark.mesh(backlog_events=4000)
async def test_full_outbox_pauses_the_source_instead_of_dropping(sims: Sims, tmp_path: Path) -> None:
    cap = 100_000
    await sims.post(sims.sentinel, "/sim/outage", {"seconds": 10, "status": 503})
    cfg = sims.config(tmp_path, sentinel={"outbox_max_bytes": cap, "include_event_id": True}, page_size=100)
    async with running(cfg, tmp_path) as svc:
        rt = svc.pipeline.runtimes["mesh"]
        await wait_for(lambda: svc.pipeline.outbox_bytes["sentinel"] >= cap, timeout=10)
        fetched = rt.received
        await asyncio.sleep(1.5)  # unthrottled, the source would fetch the rest in this time
        # While the outbox is full the source stops after at most one more page.
        assert rt.received <= fetched + 100 < 4000
        assert svc.pipeline.outbox_bytes["sentinel"] < cap + 100 * 1500
        await wait_for(lambda: sims.sentinel.generated() >= 4000, timeout=60)
        assert svc.metrics.snapshot()['logferry_backpressure_wait_seconds_total{source="mesh"}'] > 0
    rows = await sims.rows()
    assert len(set(event_ids(rows))) == 4000
