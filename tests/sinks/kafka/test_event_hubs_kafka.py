"""The ``event_hubs`` sink over the Kafka endpoint, against the Event Hubs simulator's: TLS, SASL PLAIN
``$ConnectionString``, Tansu behind. The librdkafka settings logferry builds meet a login check."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import orjson
import pytest

from logferry.core.sink import Action
from logferry.sim.eventhubs import EventHubsSim
from tests.conftest import secret_ref
from tests.sinks.kafka.conftest import Arrived, read_topic


def kafka_sink(sim: EventHubsSim, conn: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": "event_hubs",
        "connection_string": secret_ref(
            "TEST_EH_KAFKA_CS", conn or sim.credentials["kafka_connection_string"]
        ),
        "tls": {"ca_file": sim.ca_file},
        "delivery_timeout_secs": 3,
        **extra,
    }


async def hub_contents(sim: EventHubsSim) -> list[Arrived]:
    assert sim.kafka is not None and sim.ca_file is not None
    login = sim.kafka.client_props("127.0.0.1", sim.ca_file)
    return await asyncio.to_thread(
        read_topic, sim.credentials["kafka_bootstrap"], sim.options.hub, 2, 10.0, login
    )


async def test_records_reach_the_hub_through_tls_and_the_connection_string_login(
    kafka_namespace: EventHubsSim, build: Any
) -> None:
    sink = await build(kafka_sink(kafka_namespace, partition_key="tenant", compression="gzip"))
    records = [{"id": i, "tenantId": f"tenant-{i % 3}"} for i in range(300)]
    result = await sink.send(sink.encode(records))
    assert result.action is Action.DELIVERED, result.reason
    assert (await sink.healthcheck()).ok
    got = await hub_contents(kafka_namespace)
    assert sorted(orjson.loads(m.value)["id"] for m in got) == list(range(300))
    partitions_of = {key: {m.partition for m in got if m.key == key} for key in {m.key for m in got}}
    assert set(partitions_of) == {b"tenant-0", b"tenant-1", b"tenant-2"}
    assert all(len(p) == 1 for p in partitions_of.values()), partitions_of
    assert kafka_namespace.kafka is not None and kafka_namespace.kafka.counters["auth_failures"] == 0


async def test_a_refused_key_is_retried_with_the_reason_and_never_shown(
    kafka_namespace: EventHubsSim, build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_key = base64.b64encode(b"w" * 32).decode()
    conn = kafka_namespace.credentials["kafka_connection_string"].replace(kafka_namespace.sas.key, wrong_key)
    caplog.set_level(logging.DEBUG)
    sink = await build(kafka_sink(kafka_namespace, conn, delivery_timeout_secs=1))
    result = await sink.send(sink.encode([{"id": 1}, {"id": 2}]))
    assert result.action is Action.RETRY
    check = await sink.healthcheck()
    assert not check.ok
    # The endpoint's own reason reaches the operator, the key never does.
    assert "SharedAccessKey is not valid" in result.reason + check.message, (result.reason, check.message)
    for text in (result.reason, check.message, caplog.text):
        assert wrong_key not in text and kafka_namespace.sas.key not in text
    assert kafka_namespace.kafka is not None and kafka_namespace.kafka.counters["auth_failures"] > 0
    assert await hub_contents(kafka_namespace) == []


async def test_a_sas_token_instead_of_the_connection_string_is_refused_as_event_hubs_does(
    kafka_namespace: EventHubsSim, build: Any
) -> None:
    conn = (
        kafka_namespace.credentials["kafka_connection_string"]
        + ";SharedAccessSignature=SharedAccessSignature sr=x"
    )
    sink = await build(kafka_sink(kafka_namespace, conn, delivery_timeout_secs=1))
    result = await sink.send(sink.encode([{"id": 1}]))
    assert result.action is Action.RETRY
    check = await sink.healthcheck()
    assert "SAS tokens are not supported" in result.reason + check.message, (result.reason, check.message)
