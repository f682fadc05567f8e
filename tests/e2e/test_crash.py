"""``logferry run`` in a subprocess, killed with SIGKILL at random moments, loses nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from logferry.sinks.file import NDJSON_LIMITS
from tests.conftest import read_ndjson, start_logferry, wait_for
from tests.e2e.conftest import Sims

KILLS = 10
MAX_EVENTS_PER_REQUEST = 500


def write_config(sims: Sims, data: Path) -> Path:
    cfg: dict[str, Any] = sims.config(
        data,
        sentinel={"include_event_id": True, "batch": {"max_events": MAX_EVENTS_PER_REQUEST}},
        page_size=200,
    )
    path = data / "logferry.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.mesh(backlog_events=15000, backlog_secs=2 * 3600, live_rate=40.0, latency_secs=0.01)
async def test_sigkill_at_random_moments_loses_nothing(sims: Sims, tmp_path: Path) -> None:
    cfg_path = write_config(sims, tmp_path)
    log = tmp_path / "run.log"
    rng = random.Random(int(os.environ.get("LOGFERRY_CRASH_SEED", "7")))
    for _ in range(KILLS):
        proc = await start_logferry(cfg_path, log)
        await asyncio.sleep(rng.uniform(0.8, 3.0))
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL

    proc = await start_logferry(cfg_path, log)
    await sims.post(sims.mesh, "/sim/control", {"live": False})
    generated = sims.mesh.generated()
    archive = tmp_path / "archive.ndjson"
    try:

        async def all_in_sentinel() -> bool:
            return len({r["EventId"] for r in await sims.rows()}) >= generated

        await wait_for(all_in_sentinel, timeout=120, interval=0.5)
        await wait_for(
            lambda: len({r["metadata"]["uuid"] for r in read_ndjson(archive)}) >= generated, timeout=60
        )
    finally:
        # Graceful stop: SIGTERM, exit 0 within 10 s.
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=10)
    assert code == 0, log.read_text()[-3000:]

    rows = await sims.rows()
    ids = [r["EventId"] for r in rows]
    expected = set(ids)
    assert len(expected) == generated
    # The only duplicate window is "destination accepted, ack not committed": one request per kill.
    assert len(ids) - len(expected) <= KILLS * MAX_EVENTS_PER_REQUEST
    archived = [r["metadata"]["uuid"] for r in read_ndjson(archive)]
    assert set(archived) == expected
    assert len(archived) - len(set(archived)) <= KILLS * NDJSON_LIMITS.max_events
    assert "Traceback" not in log.read_text()
