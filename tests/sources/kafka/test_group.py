"""Two ``logferry run`` processes in one consumer group; one is killed with SIGKILL mid-stream.

The survivor takes the dead member's partitions after the session timeout and starts at the
group's committed offsets, which never run ahead of an outbox commit: nothing is lost. What the
dead member had stored but not yet committed to Kafka is read again by the survivor — at most one
batch. The killed instance is started again at the end, as an operator would, so whatever sat in
its outbox is delivered too.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from logferry.sim.peers import free_port
from tests.conftest import read_ndjson, start_logferry, wait_for
from tests.sources.kafka.conftest import Broker, kafka_source

TOPIC = "events"
PARTITIONS = 4
BATCH = 50


def write_config(broker: Broker, data: Path) -> Path:
    data.mkdir()
    cfg: dict[str, Any] = {
        "state": {"path": str(data / "state.db")},
        "api": {"address": f"127.0.0.1:{free_port()}"},
        "sources": {"hub": kafka_source(broker.bootstrap, TOPIC, batch_max_events=BATCH)},
        "sinks": {
            "out": {
                "type": "file",
                "inputs": ["hub"],
                "path": str(data / "out.ndjson"),
                "rotate_max_bytes": 0,
            }
        },
    }
    path = data / "logferry.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def seqs(data: Path) -> list[int]:
    out = data / "out.ndjson"
    return [r["seq"] for r in read_ndjson(out)] if out.exists() else []


class Feed:
    """Produces ``{"seq": n}`` round-robin over the partitions and remembers what it sent."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.sent: list[int] = []

    async def send(self, count: int) -> list[int]:
        batch = list(range(len(self.sent), len(self.sent) + count))
        for p in range(PARTITIONS):
            values = [{"seq": s} for s in batch if s % PARTITIONS == p]
            await asyncio.to_thread(self.broker.produce, TOPIC, values, None, p)
        self.sent += batch
        return batch


async def test_sigkill_one_of_two_instances_loses_nothing(broker: Broker, tmp_path: Path) -> None:
    broker.create_topic(TOPIC, partitions=PARTITIONS)
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_cfg, b_cfg = write_config(broker, a_dir), write_config(broker, b_dir)
    feed = Feed(broker)
    a = await start_logferry(a_cfg, a_cfg.parent / "run.log")
    b = await start_logferry(b_cfg, b_cfg.parent / "run.log")
    try:
        # Both members get partitions: each writes some of a steady trickle.
        async def both_consuming() -> bool:
            await feed.send(8)
            return bool(seqs(a_dir)) and bool(seqs(b_dir))

        await wait_for(both_consuming, timeout=90, interval=0.5)

        # A stream in progress; A dies in the middle of it.
        async def stream() -> None:
            for _ in range(12):
                await feed.send(100)
                await asyncio.sleep(0.1)

        producing = asyncio.create_task(stream())
        await wait_for(lambda: len(feed.sent) > 400, timeout=60)
        a.send_signal(signal.SIGKILL)
        assert await a.wait() == -signal.SIGKILL
        await producing

        # The survivor takes over every partition: it alone delivers what comes after the kill.
        after = set(await feed.send(200))
        await wait_for(lambda: after <= set(seqs(b_dir)), timeout=90, interval=0.5)

        # Restarted, A delivers what it had stored before it died (its outbox survives SIGKILL).
        a = await start_logferry(a_cfg, a_cfg.parent / "run.log")
        await wait_for(lambda: (a_dir / "run.log").read_text().count("pipeline_started") == 2, timeout=60)
        everything = set(feed.sent)
        await wait_for(lambda: set(seqs(a_dir)) | set(seqs(b_dir)) >= everything, timeout=90, interval=0.5)
    finally:
        for proc in (a, b):
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(p.wait(), timeout=30) for p in (a, b)]
    assert codes == [0, 0], (a_dir / "run.log").read_text()[-3000:] + (b_dir / "run.log").read_text()[-3000:]

    delivered = seqs(a_dir) + seqs(b_dir)
    assert set(delivered) == set(feed.sent)  # no loss
    duplicates = sum(n - 1 for n in Counter(delivered).values())
    # One batch stored but not committed by the killed member, plus at most one batch fetched by the
    # survivor for partitions revoked when A rejoined (never committed by it, re-read by A).
    assert duplicates <= 2 * BATCH, duplicates
    for log in (a_dir / "run.log", b_dir / "run.log"):
        assert "Traceback" not in log.read_text()
