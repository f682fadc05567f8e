"""Splunk HEC peer: ``logferry sim splunk_hec`` in its own process, over TLS, with indexer acknowledgement.

The sink runs as recommended for production (``ack: true``, gzip, a time field and an index); the
simulator acknowledges at once and only counts events, so what is measured is logferry's side:
envelopes, gzip, TLS and the ack round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from simproc import SimProcess

from peers import Peer

TOKEN_ENV = "BENCH_SPLUNK_HEC_TOKEN"


@contextlib.asynccontextmanager
async def peer(tmp: Path) -> AsyncIterator[Peer]:
    sim = await asyncio.to_thread(
        SimProcess, "splunk_hec", ["--ack", "--store-events", "false"], stderr_path=str(tmp / "hec.err")
    )
    os.environ[TOKEN_ENV] = sim.credentials["token"]

    async def arrived() -> int:
        stats = await asyncio.to_thread(sim.raw_stats)
        return int(stats["events_by_index"].get("security", 0))

    try:
        yield Peer(
            {
                "type": "splunk_hec",
                "url": sim.url,
                "token": "${env:" + TOKEN_ENV + "}",
                "index": "security",
                "sourcetype": "meshstack:event",
                "time_field": "metadata.createdAt",
                "ack": True,
                "tls": {"ca_file": sim.ca_file},
            },
            arrived,
        )
    finally:
        await asyncio.to_thread(sim.close)
