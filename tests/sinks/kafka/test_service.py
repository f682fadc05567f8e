"""The sink inside the running service: records from a source go through the outbox and the delivery
loop to the topic, keyed by the source's name (the pipeline encodes with ``encode_from``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from logferry.sim.peers import free_port
from tests.conftest import running, wait_for
from tests.sinks.kafka.conftest import SinkBroker, kafka_sink_config


async def test_syslog_lines_arrive_in_the_topic_keyed_by_source(
    broker: SinkBroker, topic: str, tmp_path: Path
) -> None:
    port = free_port()
    config = {
        "sources": {"firewall": {"type": "syslog", "protocol": "tcp", "listen": f"127.0.0.1:{port}"}},
        "sinks": {
            "hub": {
                **kafka_sink_config(broker.bootstrap, topic, partition_key="source"),
                "inputs": ["firewall"],
            }
        },
    }
    async with running(config, tmp_path):
        connection: list[asyncio.StreamWriter] = []

        async def listening() -> bool:
            try:
                connection.append((await asyncio.open_connection("127.0.0.1", port))[1])
            except ConnectionRefusedError:
                return False
            return True

        await wait_for(listening, timeout=10)
        writer = connection[0]
        for i in range(20):
            writer.write(f"<134>1 2026-11-22T10:00:00Z fw1 app - - - event {i}\n".encode())
        await writer.drain()
        writer.close()
        await writer.wait_closed()

        async def arrived() -> bool:
            return len(await asyncio.to_thread(broker.read, topic, 2)) >= 20

        await wait_for(arrived, timeout=15, interval=0.2)
    got = await asyncio.to_thread(broker.read, topic, 2)
    assert len(got) == 20
    assert {m.key for m in got} == {b"firewall"}
    assert len({m.partition for m in got}) == 1
    assert sorted(orjson.loads(m.value)["message"] for m in got) == sorted(f"event {i}" for i in range(20))
