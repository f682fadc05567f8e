"""The Data Collector API simulator (``logferry sim log_analytics --tls``) in its own process.

Rows are only counted (``--store-rows false``): storing them typed would make the simulator, not
the sink, the slow side. The workspace key the simulator generates reaches the sink through the
environment, as a reference, the way a user's config holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from simproc import SimProcess

from peers import Peer

LOG_TYPE = "BenchAudit"
KEY_ENV = "LOGFERRY_BENCH_LA_KEY"


@contextlib.asynccontextmanager
async def peer(tmp: Path) -> AsyncIterator[Peer]:
    sim = await asyncio.to_thread(SimProcess, "log_analytics", ["--store-rows", "false"])
    try:
        os.environ[KEY_ENV] = sim.credentials["shared_key"]

        async def arrived() -> int:
            stats = await asyncio.to_thread(sim.raw_stats)
            return int(stats["rows_accepted"].get(f"{LOG_TYPE}_CL", 0))

        config = {
            "type": "log_analytics",
            "workspace_id": sim.credentials["workspace_id"],
            "shared_key": "${env:" + KEY_ENV + "}",
            "log_type": LOG_TYPE,
            "endpoint": sim.url,
            "tls": {"ca_file": sim.ca_file},
        }
        yield Peer(config, arrived)
    finally:
        await asyncio.to_thread(sim.close)
