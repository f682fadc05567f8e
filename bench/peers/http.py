"""Generic HTTP peer: the ``/ingest`` endpoint of ``logferry sim splunk_hec`` in its own process, over TLS.

The sink sends NDJSON, gzip, with a bearer token; the simulator parses every record and counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from simproc import SimProcess

from peers import Peer

TOKEN = "bench-ingest-token-1"
TOKEN_ENV = "BENCH_HTTP_TOKEN"


@contextlib.asynccontextmanager
async def peer(tmp: Path) -> AsyncIterator[Peer]:
    sim = await asyncio.to_thread(
        SimProcess,
        "splunk_hec",
        ["--ingest-bearer", TOKEN, "--store-events", "false"],
        stderr_path=str(tmp / "http.err"),
    )
    os.environ[TOKEN_ENV] = TOKEN

    async def arrived() -> int:
        stats = await asyncio.to_thread(sim.raw_stats)
        return int(stats["events_by_index"].get("ingest", 0))

    try:
        yield Peer(
            {
                "type": "http",
                "url": sim.credentials["ingest_url"],
                "format": "ndjson",
                "auth": {"type": "bearer", "token": "${env:" + TOKEN_ENV + "}"},
                "tls": {"ca_file": sim.ca_file},
            },
            arrived,
        )
    finally:
        await asyncio.to_thread(sim.close)
