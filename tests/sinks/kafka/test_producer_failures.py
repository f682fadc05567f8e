"""How the Kafka producer path handles failures, against librdkafka's mock cluster (real librdkafka on
both ends; see mock_cluster.py): fatal errors, timed-out messages, a slow link, refused writes, a full
queue. Overdue delivery reports cannot be provoked from a broker (librdkafka times messages out
itself), so that one test replaces ``confluent_kafka.Producer`` with a subclass that drops the
delivery callbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from confluent_kafka import KafkaError, Producer

import logferry.sinks.kafka.producer as producer_module
from logferry.core.sink import Action
from logferry.sinks.kafka.producer import CAP_GROWS_AFTER
from tests.sinks.kafka.conftest import deliver, kafka_sink_config, read_topic
from tests.sinks.kafka.mock_cluster import PRODUCE, MockCluster

TOPIC = "logs"


@pytest.fixture
def cluster() -> Iterator[MockCluster]:
    c = MockCluster()
    c.create_topic(TOPIC)
    try:
        yield c
    finally:
        c.close()


def ids(cluster: MockCluster) -> list[int]:
    return [orjson.loads(m.value)["id"] for m in read_topic(cluster.bootstrap, TOPIC, 1)]


def records(n: int, size: int = 40) -> list[dict[str, Any]]:
    return [{"id": i, "msg": "x" * size} for i in range(n)]


async def test_a_fatal_producer_error_replaces_the_producer_and_the_resend_delivers(
    cluster: MockCluster, build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sink = await build(kafka_sink_config(cluster.bootstrap, TOPIC))
    lines = sink.encode(records(3))
    # The broker lost track of this idempotent producer's sequence: fatal for the session.
    cluster.fail_requests(PRODUCE, [KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER])
    result = await sink.send(lines)
    assert result.action is Action.RETRY and "the producer failed" in result.reason, result
    with caplog.at_level(logging.WARNING):
        result = await sink.send(lines)
    assert result.action is Action.DELIVERED, result.reason
    assert "kafka_producer_replaced" in caplog.text
    assert sorted(set(await asyncio.to_thread(ids, cluster))) == [0, 1, 2]


async def test_timed_out_messages_retry_with_the_reason_and_a_new_producer_delivers(
    cluster: MockCluster, build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # 2 s, not less: after the outage a new idempotent producer must get its producer id within it.
    sink = await build(kafka_sink_config(cluster.bootstrap, TOPIC))
    lines = sink.encode(records(2))
    cluster.set_down()
    result = await sink.send(lines)
    # Nothing of the request was stored: the same request again, not halves.
    assert result.action is Action.RETRY, result
    assert "no acknowledgement from Kafka brokers" in result.reason and "within 2 s" in result.reason
    cluster.set_up()
    # On a loaded runner the new producer may still miss the first attempt; the delivery loop simply
    # sends again, and so does this.
    deadline = time.monotonic() + 15
    with caplog.at_level(logging.WARNING):
        while (result := await sink.send(lines)).action is Action.RETRY and time.monotonic() < deadline:
            pass
    assert result.action is Action.DELIVERED, result.reason
    assert "kafka_producer_replaced" in caplog.text
    assert sorted(set(await asyncio.to_thread(ids, cluster))) == [0, 1]


async def test_a_request_too_slow_for_the_timeout_is_split_and_the_halves_deliver(
    cluster: MockCluster, build: Any
) -> None:
    # Small produce requests (message.max.bytes bounds them), answered one per 20 ms round trip: a
    # part of the request is acknowledged within the timeout, the rest times out.
    sink = await build(
        kafka_sink_config(cluster.bootstrap, TOPIC, delivery_timeout_secs=0.6, max_message_bytes=1024)
    )
    n = 3000
    lines = sink.encode(records(n, size=200))
    cluster.set_rtt(20)
    first = await sink.send(lines)
    assert first.action is Action.SPLIT and "messages of the request were stored" in first.reason, first
    stored = len(await asyncio.to_thread(ids, cluster))
    # The link recovers; the pieces (the stored part sent once more) complete the request. From now
    # on nothing should time out, even on a loaded machine: the session replaced after the timeout
    # gets a timeout of seconds, as a sink configured so would have.
    cluster.set_rtt(0)
    sink.settings = dataclasses.replace(
        sink.settings, props={**sink.settings.props, "message.timeout.ms": 10_000}, timeout_secs=10.0
    )
    answers, rejected = await deliver(sink, lines)
    assert rejected == [] and Action.RETRY not in answers, answers
    got = await asyncio.to_thread(ids, cluster)
    assert sorted(set(got)) == list(range(n)) and len(got) == stored + n
    # Later requests are held to the size that got through: a large one is split before anything
    # is sent, so a link that stays slow does not store the head of every request twice.
    more = sink.encode(records(n, size=200))
    held = await sink.send(more)
    assert held.action is Action.SPLIT and "requests are held to" in held.reason, held
    assert len(await asyncio.to_thread(ids, cluster)) == stored + n
    # ... until enough clean requests at that size double it.
    match = re.search(r"held to (\d+) messages", held.reason)
    assert match is not None
    cap = int(match[1])
    for _ in range(CAP_GROWS_AFTER):
        assert (await sink.send(sink.encode(records(cap, size=200)))).action is Action.DELIVERED
    assert (await sink.send(sink.encode(records(2 * cap, size=200)))).action is Action.DELIVERED


async def test_a_refused_write_asks_to_check_the_credentials(cluster: MockCluster, build: Any) -> None:
    sink = await build(kafka_sink_config(cluster.bootstrap, TOPIC))
    lines = sink.encode(records(1))
    cluster.fail_requests(PRODUCE, [KafkaError.TOPIC_AUTHORIZATION_FAILED])
    result = await sink.send(lines)
    assert result.action is Action.RETRY
    assert "refused the credentials" in result.reason and "may write (Send)" in result.reason, result
    assert (await sink.send(lines)).action is Action.DELIVERED
    assert await asyncio.to_thread(ids, cluster) == [0]


async def test_a_full_producer_queue_splits_after_what_went_out(cluster: MockCluster, build: Any) -> None:
    sink = await build(kafka_sink_config(cluster.bootstrap, TOPIC))
    await sink.close()  # the next send starts a producer with the settings below
    sink.settings = dataclasses.replace(
        sink.settings, props={**sink.settings.props, "queue.buffering.max.messages": 4}
    )
    lines = sink.encode(records(10))
    first = await sink.send(lines)
    assert first.action is Action.SPLIT and "the producer's queue is full" in first.reason, first
    answers, rejected = await deliver(sink, lines)
    assert rejected == [] and answers[-1] is Action.DELIVERED
    assert sorted(set(await asyncio.to_thread(ids, cluster))) == list(range(10))


class _SilentProducer(Producer):
    """A producer whose delivery reports never reach the caller."""

    def produce(self, *args: Any, **kwargs: Any) -> None:
        kwargs.pop("on_delivery", None)
        super().produce(*args, **kwargs)


async def test_overdue_delivery_reports_retry_and_replace_the_producer(
    cluster: MockCluster, build: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sink = await build(kafka_sink_config(cluster.bootstrap, TOPIC))
    await sink.close()
    normal = sink.settings
    # Waits this long for the reports (librdkafka's own message timeout stays as configured).
    sink.settings = dataclasses.replace(normal, timeout_secs=0.2, report_grace_secs=0.1)
    lines = sink.encode(records(2))
    with monkeypatch.context() as m:
        m.setattr(producer_module, "Producer", _SilentProducer)
        result = await sink.send(lines)
    assert result.action is Action.RETRY and "no delivery report within 0.3 s" in result.reason, result
    sink.settings = normal
    with caplog.at_level(logging.WARNING):
        assert (await sink.send(lines)).action is Action.DELIVERED
    assert "kafka_producer_replaced" in caplog.text
