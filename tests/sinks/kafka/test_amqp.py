"""The ``event_hubs`` sink over AMQP against the Event Hubs simulator, which Microsoft's SDK talks
to unchanged: partition keys, arrays, TLS through ``amqp_endpoint``, refused credentials."""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from logferry.core.sink import Action
from logferry.sim.eventhubs import EventHubsSim
from logferry.sinks.kafka.amqp import AmqpSink
from logferry.sinks.kafka.messages import LineEncoder, MessageShape
from tests.conftest import secret_ref
from tests.sinks.kafka.conftest import deliver


@pytest.fixture
async def hub() -> AsyncIterator[EventHubsSim]:
    sim = EventHubsSim(partitions=4)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def events(sim: EventHubsSim) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/sim/events", ssl=False) as resp:
        assert resp.status == 200
        found: list[dict[str, Any]] = (await resp.json())["events"]
        return found


def amqp_sink(conn: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "event_hubs",
        "protocol": "amqp",
        "connection_string": secret_ref("TEST_EH_AMQP_CS", conn),
        "delivery_timeout_secs": 3,
        **extra,
    }


def records(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "tenantId": f"tenant-{i % 3}"} for i in range(n)]


async def test_tenant_keys_become_partition_keys_and_keep_a_tenant_on_one_partition(
    hub: EventHubsSim, build: Any
) -> None:
    sink = await build(amqp_sink(hub.credentials["connection_string"], partition_key="tenant"))
    result = await sink.send(sink.encode(records(30)))
    assert result.action is Action.DELIVERED, result.reason
    got = await events(hub)
    assert sorted(orjson.loads(e["body"])["id"] for e in got) == list(range(30))
    partitions: dict[str, set[str]] = {}
    for e in got:
        assert e["partition_key"] == orjson.loads(e["body"])["tenantId"]
        partitions.setdefault(e["partition_key"], set()).add(e["partition"])
    assert len(partitions) == 3 and all(len(p) == 1 for p in partitions.values())


async def test_array_format_sends_one_event_per_key_group(hub: EventHubsSim, build: Any) -> None:
    sink = await build(
        amqp_sink(hub.credentials["connection_string"], partition_key="tenant", format="array")
    )
    assert (await sink.send(sink.encode(records(30)))).action is Action.DELIVERED
    got = await events(hub)
    assert len(got) == 3
    assert sorted(r["id"] for e in got for r in orjson.loads(e["body"])) == list(range(30))


async def test_tls_through_amqp_endpoint_with_the_simulator_ca(build: Any) -> None:
    sim = EventHubsSim(partitions=2)
    await sim.start(tls=True)
    try:
        creds = sim.credentials
        assert "UseDevelopmentEmulator" not in creds["connection_string"]
        entry = amqp_sink(
            creds["connection_string"],
            amqp_endpoint=creds["custom_endpoint_address"],
            tls={"ca_file": sim.ca_file},
        )
        sink = await build(entry)
        assert (await sink.healthcheck()).ok
        assert (await sink.send(sink.encode(records(5)))).action is Action.DELIVERED
        assert len(await events(sim)) == 5
        # The system store does not trust the simulator: verification is on by default.
        untrusted = await build({**entry, "tls": {}})
        result = await untrusted.send(untrusted.encode(records(1)))
        assert result.action is Action.RETRY
        assert not (await untrusted.healthcheck()).ok
        assert len(await events(sim)) == 5
    finally:
        await sim.stop()


async def test_a_refused_key_is_retried_with_the_fix_and_without_the_key(
    hub: EventHubsSim, build: Any
) -> None:
    wrong_key = base64.b64encode(b"w" * 32).decode()
    conn = hub.credentials["connection_string"].replace(hub.sas.key, wrong_key)
    sink = await build(amqp_sink(conn))
    result = await sink.send(sink.encode(records(2)))
    assert result.action is Action.RETRY
    assert "refused the credentials" in result.reason and "Send claim" in result.reason, result.reason
    assert wrong_key not in result.reason
    check = await sink.healthcheck()
    assert not check.ok and wrong_key not in check.message
    assert await events(hub) == []


async def test_a_record_over_the_limit_is_rejected_before_sending(hub: EventHubsSim, build: Any) -> None:
    sink = await build(amqp_sink(hub.credentials["connection_string"], max_message_bytes=2048))
    result = await sink.send(sink.encode([{"blob": "z" * 3000}]))
    assert result.action is Action.REJECT and "max_message_bytes is 2048" in result.reason
    assert await events(hub) == []


async def test_a_record_over_the_hubs_own_limit_is_split_out_then_rejected(build: Any) -> None:
    sim = EventHubsSim(partitions=1, max_message_size=200_000)
    await sim.start()
    try:
        sink = await build(amqp_sink(sim.credentials["connection_string"]))
        lines = sink.encode([{"id": 0}, {"id": 1, "blob": "b" * 300_000}])
        split = await sink.send(lines)
        assert split.action is Action.SPLIT, split
        reject = await sink.send(lines[1:])
        assert reject.action is Action.REJECT and "hub logferry (AMQP) accepts" in reject.reason
        assert (await sink.send(lines[:1])).action is Action.DELIVERED
        assert [orjson.loads(e["body"]) for e in await events(sim)] == [{"id": 0}]
    finally:
        await sim.stop()


async def slow_hub(build: Any, rule: dict[str, Any]) -> tuple[EventHubsSim, Any]:
    """A hub whose transfers are held back by ``rule``, with small batches (many per request).

    One record is sent first (the rule's first transfer): opening the connection, the link and the
    token in the SDK's pure Python can outlast the short timeout on a loaded machine by itself.
    """
    sim = EventHubsSim(partitions=1, max_message_size=8192, faults=[{"path": "/logferry", **rule}])
    await sim.start()
    sink = await build(amqp_sink(sim.credentials["connection_string"], delivery_timeout_secs=1.0))
    assert (await sink.send(sink.encode([{"id": "warm-up"}]))).action is Action.DELIVERED
    return sim, sink


async def ids(sim: EventHubsSim) -> list[Any]:
    """The ids the hub holds, the warm-up record left out."""
    return [i for e in await events(sim) if (i := orjson.loads(e["body"])["id"]) != "warm-up"]


async def test_the_timeout_bounds_each_batch_not_the_whole_request(build: Any) -> None:
    # Eight batches that settle after 0.2 s each: 1.6 s in all, more than the 1 s timeout.
    sim, sink = await slow_hub(build, {"status": None, "count": None, "delay_secs": 0.2})
    try:
        lines = sink.encode([{"id": i, "msg": "m" * 900} for i in range(64)])
        result = await sink.send(lines)
        assert result.action is Action.DELIVERED, result.reason
        assert sorted(await ids(sim)) == list(range(64))
    finally:
        await sim.stop()


async def test_a_batch_timing_out_after_others_were_stored_splits_the_request(build: Any) -> None:
    # The request's third transfer takes longer than the timeout; its first two were stored.
    sim, sink = await slow_hub(build, {"status": None, "count": 1, "after": 3, "delay_secs": 1.4})
    try:
        lines = sink.encode([{"id": i, "msg": "m" * 900} for i in range(64)])
        answers, rejected = await deliver(sink, lines)
        assert rejected == [] and answers[0] is Action.SPLIT and Action.SPLIT not in answers[1:], answers
        got = await ids(sim)
        # The batches stored before the timeout are sent once more, with the first half.
        assert sorted(set(got)) == list(range(64)) and len(got) <= 64 + 32
    finally:
        await sim.stop()


async def test_a_client_the_sdk_cannot_make_is_an_answer_not_an_exception() -> None:
    # The config refuses such a string at build; a sink made directly must still never raise.
    key = "c2VjcmV0LWtleS0xMjM="
    sink = AmqpSink(
        "dst",
        f"Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKey={key};EntityPath=h",
        "h",
        "Event Hubs ns1 hub h (AMQP)",
        ssl.create_default_context(),
        None,
        LineEncoder("none"),
        MessageShape("event", 1024),
        1.0,
    )
    result = await sink.send(sink.encode([{"id": 1}]))
    assert result.action is Action.RETRY and "cannot set up the Event Hubs client" in result.reason
    check = await sink.healthcheck()
    assert not check.ok and key not in check.message + result.reason
    await sink.close()
