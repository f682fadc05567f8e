"""The Kafka producer path against a real broker (Tansu): keys, message shapes, refusals, failures."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from logferry.core.sink import Action
from tests.sinks.kafka.conftest import SinkBroker, kafka_sink_config


def records(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": i, "TenantId": f"tenant-{i % 3}", "msg": "x" * 40, **extra} for i in range(n)]


async def test_partition_keys_land_as_kafka_keys_and_keep_a_tenant_on_one_partition(
    broker: SinkBroker, topic: str, build: Any
) -> None:
    sink = await build(kafka_sink_config(broker.bootstrap, topic, partition_key="tenant"))
    sent = records(30)
    result = await sink.send(sink.encode(sent))
    assert result.action is Action.DELIVERED, result.reason
    got = await asyncio.to_thread(broker.read, topic, 2)
    assert sorted(orjson.loads(m.value)["id"] for m in got) == list(range(30))
    partitions: dict[bytes | None, set[int]] = {}
    for m in got:
        value = orjson.loads(m.value)
        assert m.key == value["TenantId"].encode()
        partitions.setdefault(m.key, set()).add(m.partition)
    assert set(partitions) == {b"tenant-0", b"tenant-1", b"tenant-2"}
    assert all(len(p) == 1 for p in partitions.values())


async def test_array_format_sends_json_arrays_within_the_message_limit(
    broker: SinkBroker, topic: str, build: Any
) -> None:
    sink = await build(
        kafka_sink_config(
            broker.bootstrap, topic, format="array", partition_key="tenant", max_message_bytes=2048
        )
    )
    sent = records(200)
    assert (await sink.send(sink.encode(sent))).action is Action.DELIVERED
    got = await asyncio.to_thread(broker.read, topic, 2)
    assert len(got) < 100  # many records per message
    arrived: list[dict[str, Any]] = []
    for m in got:
        assert len(m.value) + len(m.key or b"") <= 2048
        batch = orjson.loads(m.value)
        assert {r["TenantId"].encode() for r in batch} == {m.key}
        arrived.extend(batch)
    assert sorted(r["id"] for r in arrived) == list(range(200))


async def test_a_record_over_the_message_limit_is_dead_lettered_and_the_rest_delivered(
    broker: SinkBroker, topic: str, build: Any
) -> None:
    sink = await build(kafka_sink_config(broker.bootstrap, topic, max_message_bytes=4096))
    lines = sink.encode([{"id": 0}, {"id": 1, "blob": "y" * 5000}, {"id": 2}])
    # What core.delivery does with the answers: halve on split, dead-letter a rejected single line.
    todo, rejected = [lines], []
    while todo:
        chunk = todo.pop(0)
        result = await sink.send(chunk)
        if result.action is Action.SPLIT:
            todo[:0] = [chunk[: len(chunk) // 2], chunk[len(chunk) // 2 :]]
        elif result.action is Action.REJECT:
            rejected.append(result.reason)
        else:
            assert result.action is Action.DELIVERED, result.reason
    assert len(rejected) == 1 and "record of 50" in rejected[0] and "max_message_bytes is 4096" in rejected[0]
    got = await asyncio.to_thread(broker.read, topic, 2)
    assert sorted(orjson.loads(m.value)["id"] for m in got) == [0, 2]


async def test_a_missing_topic_makes_sends_retry_with_the_reason_until_it_exists(
    broker: SinkBroker, topic: str, build: Any
) -> None:
    # (Tansu acknowledges writes to a deleted topic, so the topic here was never created.)
    missing = topic + "-missing"
    sink = await build(kafka_sink_config(broker.bootstrap, missing, delivery_timeout_secs=1))
    lines = sink.encode(records(5))
    started = time.monotonic()
    result = await sink.send(lines)
    assert result.action is Action.RETRY
    assert "the topic does not exist" in result.reason, result.reason
    assert time.monotonic() - started < 10
    check = await sink.healthcheck()
    assert not check.ok and "the topic does not exist" in check.message
    await asyncio.to_thread(broker.create_topic, missing, 2)
    result = await sink.send(lines)
    assert result.action is Action.DELIVERED, result.reason
    assert (await sink.healthcheck()).ok
    assert len(await asyncio.to_thread(broker.read, missing, 2)) == 5
