"""Event Hubs peer over the Kafka endpoint: ``logferry sim event_hubs --kafka`` in its own process,
TLS and SASL PLAIN ``$ConnectionString`` in front of Tansu, as the sink meets Azure's endpoint.

What arrived is counted by a consumer in a child process that logs in the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from simproc import SimProcess

from peers import Peer
from peers.kafka import count_topic

PARTITIONS = 4
_ENV = "BENCH_EVENT_HUBS_KAFKA_CONNECTION_STRING"


@contextlib.asynccontextmanager
async def peer(tmp: Path) -> AsyncIterator[Peer]:
    sim = await asyncio.to_thread(
        SimProcess,
        "event_hubs",
        ["--partitions", str(PARTITIONS), "--store-bodies", "false", "--kafka", "true"],
        stderr_path=str(tmp / "eh.err"),
    )
    conn = sim.credentials["kafka_connection_string"]
    os.environ[_ENV] = conn
    login = {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "$ConnectionString",
        "sasl.password": conn,
        "ssl.ca.location": sim.ca_file,
    }

    async def arrived() -> int:
        return await count_topic(
            sim.credentials["kafka_bootstrap"], sim.credentials["eventhub_name"], PARTITIONS, login
        )

    try:
        yield Peer(
            {
                "type": "event_hubs",
                "connection_string": "${env:" + _ENV + "}",
                "tls": {"ca_file": sim.ca_file},
            },
            arrived,
        )
    finally:
        await asyncio.to_thread(sim.close)
