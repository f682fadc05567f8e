"""A real Kafka-protocol broker (Tansu, in memory) on a free port, and producer helpers.

Tansu speaks the Kafka wire protocol with consumer groups and commits, but no SASL or TLS
(TESTING.md); the Event Hubs simulator puts both in front of it (test_event_hubs_endpoint.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from logferry.sim.peers import TansuBroker, free_port

#: Short enough that a killed consumer's partitions move within seconds (Tansu accepts 6 s).
SESSION_TIMEOUT_SECS = 6


class Broker(TansuBroker):
    """Tansu with the test-only helpers; :meth:`start` and :meth:`stop` may be called again (memory
    storage is lost)."""

    def __init__(self, port: int, log: Path) -> None:
        super().__init__(port, log)

    def committed(self, group: str, topic: str, partitions: int) -> dict[int, int]:
        """The group's committed next offset per partition, as the broker has it."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            parts = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        finally:
            consumer.close()
        return {tp.partition: tp.offset for tp in parts}

    def delete_topic(self, name: str) -> None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        for future in admin.delete_topics([name]).values():
            future.result(10)

    def produce(
        self,
        topic: str,
        values: Sequence[bytes | dict[str, Any]],
        keys: Sequence[bytes] | None = None,
        partition: int | None = None,
    ) -> None:
        """Send ``values`` (dicts as JSON) and wait until the broker acknowledged every one."""
        raw = [v if isinstance(v, bytes) else orjson.dumps(v) for v in values]
        super().produce(topic, raw, keys, partition)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = Broker(free_port(), tmp_path / "tansu.log")
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def stopped_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker on a reserved port that the test starts when it wants."""
    b = Broker(free_port(), tmp_path / "tansu.log")
    try:
        yield b
    finally:
        b.stop()


def kafka_source(bootstrap: str, topic: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "kafka",
        "bootstrap_servers": [bootstrap],
        "topics": [topic],
        "group_id": "logferry",
        "session_timeout_secs": SESSION_TIMEOUT_SECS,
        "batch_wait_secs": 0.2,
        **extra,
    }
