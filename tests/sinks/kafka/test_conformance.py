"""The ``kafka`` sink (against Tansu) and the ``event_hubs`` sink over AMQP and over the Kafka endpoint
(against the Event Hubs simulator) pass the shared sink conformance suite, outage and recovery included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from logferry.sim.eventhubs import EventHubsSim
from tests.conformance.sink import SinkCase, SinkConformance
from tests.sinks.kafka.conftest import SinkBroker, kafka_sink_config, read_topic
from tests.sinks.test_conformance import mesh_records


class TestKafkaSinkConformance(SinkConformance):
    @pytest.fixture
    async def case(self, broker: SinkBroker, topic: str) -> AsyncIterator[SinkCase]:
        # Tansu's memory storage starts empty after a restart: count what arrived before it.
        before_restart = 0

        async def arrived() -> int:
            return before_restart + await asyncio.to_thread(broker.count, topic, 2)

        async def outage() -> None:
            nonlocal before_restart
            before_restart += await asyncio.to_thread(broker.count, topic, 2)
            await asyncio.to_thread(broker.stop)

        async def recover() -> None:
            await asyncio.to_thread(broker.start)
            await asyncio.to_thread(broker.create_topic, topic, 2)

        # A short timeout: the send during the outage waits for it.
        config = kafka_sink_config(broker.bootstrap, topic, partition_key="tenant", delivery_timeout_secs=1)
        try:
            yield SinkCase(config, mesh_records(2500), arrived, outage, recover)
        finally:
            broker.ensure_running()


class TestEventHubsAmqpSinkConformance(SinkConformance):
    @pytest.fixture
    async def case(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SinkCase]:
        sim = EventHubsSim(partitions=2, store_bodies=False)
        await sim.start()
        monkeypatch.setenv("EH_SINK_CONFORMANCE_CS", sim.credentials["connection_string"])

        async def arrived() -> int:
            return sim.generated()

        config = {
            "type": "event_hubs",
            "protocol": "amqp",
            "connection_string": "${env:EH_SINK_CONFORMANCE_CS}",
            "delivery_timeout_secs": 3,
        }
        try:
            yield SinkCase(config, mesh_records(2500), arrived, sim.stop, sim.start)
        finally:
            await sim.stop()


class TestEventHubsKafkaSinkConformance(SinkConformance):
    @pytest.fixture
    async def case(self, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SinkCase]:
        sim = EventHubsSim(partitions=2, store_bodies=False, kafka=True)
        await sim.start(tls=True)
        assert sim.kafka is not None and sim.ca_file is not None
        login = sim.kafka.client_props("127.0.0.1", sim.ca_file)
        monkeypatch.setenv("EH_KAFKA_SINK_CONFORMANCE_CS", sim.credentials["kafka_connection_string"])

        async def arrived() -> int:
            got = await asyncio.to_thread(
                read_topic, sim.credentials["kafka_bootstrap"], sim.options.hub, 2, 10.0, login
            )
            return len(got)

        # The namespace's outage: new connections refused, open ones cut at their next bytes.
        async def outage() -> None:
            sim.faults.start_outage(asyncio.get_running_loop().time(), 3600)

        async def recover() -> None:
            sim.faults.end_outage()

        config = {
            "type": "event_hubs",
            "connection_string": "${env:EH_KAFKA_SINK_CONFORMANCE_CS}",
            "tls": {"ca_file": sim.ca_file},
            "delivery_timeout_secs": 2,
        }
        try:
            yield SinkCase(config, mesh_records(2500), arrived, outage, recover)
        finally:
            await sim.stop()
