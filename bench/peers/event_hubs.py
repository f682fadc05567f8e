"""Event Hubs peer (AMQP): ``logferry sim event_hubs`` in its own process, counting events without
keeping them. AMQP over TLS, as with Azure; the simulator's port is reached through ``amqp_endpoint``."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from simproc import SimProcess

from peers import Peer

_ENV = "BENCH_EVENT_HUBS_CONNECTION_STRING"


@contextlib.asynccontextmanager
async def peer(tmp: Path) -> AsyncIterator[Peer]:
    sim = await asyncio.to_thread(
        SimProcess,
        "event_hubs",
        ["--partitions", "4", "--store-bodies", "false"],
        stderr_path=str(tmp / "eh.err"),
    )
    os.environ[_ENV] = sim.credentials["connection_string"]

    async def arrived() -> int:
        stats = await asyncio.to_thread(sim.raw_stats)
        return sum(int(n) for n in stats["partitions"].values())

    try:
        yield Peer(
            {
                "type": "event_hubs",
                "protocol": "amqp",
                "connection_string": "${env:" + _ENV + "}",
                "amqp_endpoint": sim.credentials["custom_endpoint_address"],
                "tls": {"ca_file": sim.ca_file},
            },
            arrived,
        )
    finally:
        await asyncio.to_thread(sim.close)
