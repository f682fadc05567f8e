"""``logferry run`` with a Mimecast source, killed with SIGKILL mid-backlog, loses nothing."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from pathlib import Path

import yaml

from logferry.sim.mimecast import MimecastSim
from tests.conftest import kill_after_progress, output_bytes, read_ndjson, wait_for
from tests.conftest import start_logferry as start
from tests.sources.test_mimecast import keys, mc_source, siem

TYPES = ("receipt", "url protect")
KILLS = 3


async def test_sigkill_mid_backlog_loses_nothing_and_repeats_nothing_of_its_own(tmp_path: Path) -> None:
    async with MimecastSim(
        audit_events=8000, batch_files=60, records_per_file=20, batch_types=",".join(TYPES), latency_secs=0.03
    ) as sim:
        want = sim.audit_ids() | set().union(*(sim.batch_ids(t) for t in TYPES))
        src = mc_source(sim, siem=siem(*TYPES))
        src["audit"].update(page_size=50, window_secs=1800)
        out = tmp_path / "out.ndjson"
        cfg = {
            "state": {"path": str(tmp_path / "state.db")},
            "api": {"enabled": False},
            "sources": {"mc": src},
            "sinks": {"out": {"type": "file", "inputs": ["mc"], "path": str(out), "rotate_max_bytes": 0}},
        }
        path = tmp_path / "logferry.yaml"
        path.write_text(yaml.safe_dump(cfg))
        rng = random.Random(int(os.environ.get("LOGFERRY_CRASH_SEED", "5")))
        for _ in range(KILLS):
            await kill_after_progress(
                path, tmp_path / "run.log", lambda: output_bytes(out), rng.uniform(0.1, 0.9)
            )
        assert not want <= set(keys(out)), "the kills must land before the end of the backlog"
        proc = await start(path, tmp_path / "run.log")
        try:
            await wait_for(lambda: want <= set(keys(out)), timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
        got = keys(out)
        assert set(got) == want
        # The file sink may write again what it had not acknowledged when killed; the source (ids
        # dedupe, per-file commits with the vendor token) adds no repeats of its own.
        assert len(got) - len(want) <= KILLS * 2000
        assert len(read_ndjson(out)) == len(got)
