"""Logstash peer: ``logferry sim beats`` (a Lumberjack v2 server like Logstash's beats input) in its own
process, over TLS, counting events without keeping them.

The sink runs with Filebeat's defaults: windows of 2048 events, zlib level 3 compressed frames.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from simproc import SimProcess

from peers import Peer


@contextlib.asynccontextmanager
async def peer(tmp: Path) -> AsyncIterator[Peer]:
    sim = await asyncio.to_thread(
        SimProcess, "beats", ["--store-events", "false"], stderr_path=str(tmp / "beats.err")
    )

    async def arrived() -> int:
        stats = await asyncio.to_thread(sim.raw_stats)
        return int(stats["events_received"])

    try:
        yield Peer(
            {"type": "logstash", "hosts": sim.credentials["hosts"], "tls": {"ca_file": sim.ca_file}},
            arrived,
        )
    finally:
        await asyncio.to_thread(sim.close)
