"""``logferry run`` on a Falcon event stream, killed with SIGKILL mid-backlog: nothing lost, no replay."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
from pathlib import Path

import orjson
import yaml

from logferry.sim.crowdstrike import CrowdStrikeSim
from tests.conftest import kill_after_progress, output_bytes, read_ndjson, wait_for
from tests.conftest import start_logferry as start
from tests.sources.test_crowdstrike import cs_source, expected


def committed(db: Path) -> dict[int, int]:
    """Partition → committed offset, read from the state store the killed process left behind."""
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT cursor FROM cursors WHERE source='cs'").fetchone()
    lanes = orjson.loads(row[0])["lanes"] if row else {}
    return {int(name.removeprefix("partition-")): c["offset"] for name, c in lanes.items()}


async def test_sigkill_mid_backlog_loses_nothing_and_resumes_at_the_committed_offsets(tmp_path: Path) -> None:
    async with CrowdStrikeSim(partitions=2, backlog_events=2500, stream_rate=700) as sim:
        want = expected(sim)
        out, db = tmp_path / "out.ndjson", tmp_path / "state.db"
        cfg = {
            "state": {"path": str(db)},
            "sources": {"cs": cs_source(sim, batch_events=200, flush_secs=0.5)},
            "sinks": {"out": {"type": "file", "inputs": ["cs"], "path": str(out)}},
        }
        path = tmp_path / "logferry.yaml"
        path.write_text(yaml.safe_dump(cfg))
        rng = random.Random(int(os.environ.get("LOGFERRY_CRASH_SEED", "3")))
        cursors: list[dict[int, int]] = []  # committed when each run was killed
        opened: list[int] = []  # index into sim.stream_starts where each run began
        for _ in range(2):  # two kills: the second run itself resumes from a killed run's cursor
            opened.append(len(sim.stream_starts))
            # Timed from this run's first write (the previous run's output must not count).
            await kill_after_progress(
                path, tmp_path / "run.log", lambda: output_bytes(out), rng.uniform(0.5, 1.2)
            )
            cursors.append(committed(db))
        assert len({(r["metadata"]["eventType"], r["metadata"]["offset"]) for r in read_ndjson(out)}) < len(
            want
        ), "the kills must land before the end"
        opened.append(len(sim.stream_starts))
        served = sim.events_served
        proc = await start(path, tmp_path / "run.log")
        try:
            await wait_for(
                lambda: (
                    {(r["metadata"]["eventType"], r["metadata"]["offset"]) for r in read_ndjson(out)} >= want
                ),
                timeout=30,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
        got = [(r["metadata"]["eventType"], r["metadata"]["offset"]) for r in read_ndjson(out)]
        assert set(got) == want
        # The last run was served what was missing plus the one event per partition an inclusive
        # offset repeats, not the backlog again.
        assert sim.events_served - served == sum(2500 - o for o in cursors[-1].values()) + 2
        # Each restarted process opened every partition at the offset the killed one had committed:
        # the backlog is never replayed, and the one inclusive repeat per partition is dropped.
        for run, cursor in enumerate(cursors, start=1):
            first: dict[int, int | None] = {}
            for partition, offset in sim.stream_starts[opened[run] :]:
                first.setdefault(partition, offset)
            assert cursor and first == cursor, (run, cursor, sim.stream_starts)
