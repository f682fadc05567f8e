"""One Tansu broker per test module (topics per test), a reader that proves what arrived, and sink builders.

Tansu keeps topics in memory: a restart (the outage tests) starts empty, so tests that restart it
create their topic again and count what arrived before the restart themselves.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, TopicPartition

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.sink import Action
from logferry.observe.metrics import Metrics
from logferry.sim.peers import free_port
from tests.conftest import secret_ref
from tests.sources.kafka.conftest import Broker


@dataclass(frozen=True)
class Arrived:
    key: bytes | None
    value: bytes
    partition: int


class SinkBroker(Broker):
    def stop(self) -> None:
        """Kill at once: Tansu takes 5 s over a SIGTERM with clients connected, and memory storage
        has nothing to save (for the outage tests, a crash is as good an outage as any)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def ensure_running(self) -> None:
        """Start the broker unless it runs (a failed outage test must not take the next tests down)."""
        if self._proc is None or self._proc.poll() is not None:
            self.start()

    def read(self, topic: str, partitions: int, timeout: float = 10.0) -> list[Arrived]:
        return read_topic(self.bootstrap, topic, partitions, timeout)

    def count(self, topic: str, partitions: int) -> int:
        return len(self.read(topic, partitions))


def read_topic(
    bootstrap: str, topic: str, partitions: int, timeout: float = 10.0, login: dict[str, Any] | None = None
) -> list[Arrived]:
    """Every message of ``topic`` now, read with assign() from offset 0 to each partition's end.

    ``login``: client properties for a broker that wants TLS and SASL (the Event Hubs simulator's).

    (Tansu's ListOffsets answers with batch counts, so watermarks cannot count messages; a fetch's
    end of partition is right.)
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "read",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 10,  # an empty partition's end is reported without a long poll
            **(login or {}),
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got: list[Arrived] = []
    at_end: set[int] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(at_end) < partitions:
            assert time.monotonic() < deadline, f"{topic}: no end of partition within {timeout} s"
            for m in consumer.consume(1000, 0.1):
                err = m.error()
                if err is None:
                    got.append(Arrived(m.key(), m.value() or b"", m.partition() or 0))
                elif err.code() == KafkaError._PARTITION_EOF:
                    at_end.add(m.partition() or 0)
                else:
                    raise AssertionError(f"{topic}: {err}")
    finally:
        consumer.close()
    return got


async def deliver(sink: Any, lines: list[bytes]) -> tuple[list[Action], list[str]]:
    """Send ``lines`` as ``core.delivery`` would (halve on split, dead-letter a rejected single line,
    resend on retry, at most 20 attempts): every answer in order, and the dead-letter reasons."""
    todo, answers, rejected = [lines], list[Action](), list[str]()
    while todo:
        assert len(answers) < 20, f"no end after {answers}"
        chunk = todo.pop(0)
        result = await sink.send(chunk)
        answers.append(result.action)
        if result.action is Action.SPLIT and len(chunk) > 1:
            todo[:0] = [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
        elif result.action in (Action.SPLIT, Action.REJECT):
            rejected.append(result.reason)
        elif result.action is Action.RETRY:
            todo.insert(0, chunk)
    return answers, rejected


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SinkBroker]:
    b = SinkBroker(free_port(), tmp_path_factory.mktemp("tansu") / "tansu.log")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def topic(broker: SinkBroker, request: pytest.FixtureRequest) -> str:
    """A fresh two-partition topic named after the test."""
    broker.ensure_running()
    name = "t-" + "".join(c if c.isalnum() else "-" for c in request.node.name)[:100]
    broker.create_topic(name, partitions=2)
    return name


def kafka_sink_config(bootstrap: str, topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "kafka",
        "bootstrap_servers": [bootstrap],
        "topic": topic,
        "delivery_timeout_secs": 2,
        **extra,
    }


def full(sink: dict[str, Any]) -> dict[str, Any]:
    return {
        "sources": {
            "src": {
                "type": "meshstack",
                "api_url": "https://mesh.example.com",
                "client_id": "k",
                "client_secret": secret_ref("KAFKA_SINK_TEST_UNUSED", "unused"),
            }
        },
        "sinks": {"dst": {**sink, "inputs": ["src"]}},
    }


@pytest.fixture
async def build(tmp_path: Path) -> AsyncIterator[Any]:
    """``await build(sink_entry)``: the started sink, closed after the test."""
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    built: list[Any] = []

    async def make(entry: dict[str, Any]) -> Any:
        sink = parse_config(full(entry), tmp_path).sinks["dst"].build("dst", ctx)
        await sink.start()
        built.append(sink)
        return sink

    yield make
    for sink in built:
        await sink.close()
    await ctx.close()
