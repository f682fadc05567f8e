"""Kafka peer: the Tansu broker (memory storage) in its own process, one topic of four partitions.

What arrived is counted by a consumer in a child process (so its CPU is not logferry's), reading
every partition to its end. Tansu answers ListOffsets with batch counts, so the cheaper sum of high
watermarks would not count messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from logferry.sim.peers import TansuBroker
from peers import Peer

TOPIC = "bench"
PARTITIONS = 4

_COUNT = """
import json, os, sys
from confluent_kafka import Consumer, KafkaError, TopicPartition

bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
login = json.loads(os.environ.get("BENCH_KAFKA_LOGIN", "{}"))  # not argv: it may hold a password
consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-count", "enable.auto.commit": False,
                     "enable.partition.eof": True, "fetch.wait.max.ms": 10, **login})
consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
count, at_end = 0, set()
while len(at_end) < partitions:
    for m in consumer.consume(10000, 0.1):
        err = m.error()
        if err is None:
            count += 1
        elif err.code() == KafkaError._PARTITION_EOF:
            at_end.add(m.partition())
        else:
            raise SystemExit(str(err))
consumer.close()
print(count)
"""


async def count_topic(
    bootstrap: str, topic: str, partitions: int, login: dict[str, Any] | None = None
) -> int:
    """Messages in ``topic`` now, counted by a consumer in a child process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _COUNT, bootstrap, topic, str(partitions),
        stdout=asyncio.subprocess.PIPE, env={**os.environ, "BENCH_KAFKA_LOGIN": json.dumps(login or {})},
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"counting the topic failed (exit {proc.returncode})")
    return int(out)


@contextlib.asynccontextmanager
async def peer(tmp: Path) -> AsyncIterator[Peer]:
    broker = TansuBroker(log=tmp / "tansu.log")
    await asyncio.to_thread(broker.start)

    async def arrived() -> int:
        return await count_topic(broker.bootstrap, TOPIC, PARTITIONS)

    try:
        await asyncio.to_thread(broker.create_topic, TOPIC, PARTITIONS)
        yield Peer({"type": "kafka", "bootstrap_servers": [broker.bootstrap], "topic": TOPIC}, arrived)
    finally:
        await asyncio.to_thread(broker.stop)
