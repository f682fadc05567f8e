"""``logferry run`` reading Umbrella objects from moto, killed with SIGKILL mid-object, loses nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

import yaml

from logferry.sinks.file import NDJSON_LIMITS
from tests.conftest import read_ndjson, start_logferry, wait_for
from tests.sources.s3 import umbrella_rows as rows
from tests.sources.s3.conftest import Moto, pipeline, put

KILLS = 3
OBJECTS = 20
ROWS = 300


def delivered(out: Path) -> list[str]:
    return [r["domain"] for r in read_ndjson(out)] if out.exists() else []


async def test_sigkill_mid_object_loses_nothing(moto: Moto, bucket: str, tmp_path: Path) -> None:
    for n in range(OBJECTS):
        key = f"acme/dnslogs/2026-11-21/2026-11-21-10-{n:02d}-k{n:03d}.csv.gz"
        put(moto, bucket, key, [rows.dns(n * ROWS + i) for i in range(ROWS)])
    want = {f"host{i}.example.com." for i in range(OBJECTS * ROWS)}
    out = tmp_path / "out.ndjson"
    cfg = pipeline(moto, bucket, out, log_types=["dns"], batch_rows=10)
    cfg.update(state={"path": str(tmp_path / "state.db")}, api={"address": "127.0.0.1:0"})
    cfg_path = tmp_path / "logferry.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "run.log"
    rng = random.Random(int(os.environ.get("LOGFERRY_CRASH_SEED", "7")))
    procs: list[asyncio.subprocess.Process] = []
    try:
        for k in range(KILLS):
            procs.append(proc := await start_logferry(cfg_path, log))
            # Kill once this run has delivered something new, part-way through the backlog.
            before = len(delivered(out))

            def progressed(before: int = before) -> bool:
                return len(delivered(out)) > before

            await wait_for(progressed, timeout=60, interval=0.02)
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
            done = len(set(delivered(out)))
            assert done < len(want), f"kill {k + 1} came after the backlog was done"

        procs.append(proc := await start_logferry(cfg_path, log))
        await wait_for(lambda: set(delivered(out)) >= want, timeout=90, interval=0.2)
        # Graceful stop: SIGTERM, exit 0.
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=15)
        assert code == 0, log.read_text()[-3000:]
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
    got = delivered(out)
    assert set(got) == want
    # The only duplicates: records the sink wrote but had not acknowledged when killed.
    assert len(got) - len(want) <= KILLS * NDJSON_LIMITS.max_events
    assert "Traceback" not in log.read_text()
    # A kill inside an object made the next run fetch that object again and resume at its row.
    fetched = [
        path for method, path, _ in moto.requests(bucket) if method == "GET" and path.endswith(".csv.gz")
    ]
    assert len(fetched) > len(set(fetched)) == OBJECTS
