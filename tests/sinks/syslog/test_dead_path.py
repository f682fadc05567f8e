"""A collector whose network path dies silently: requests are retried, never reported delivered."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[3]


async def test_a_dead_path_is_a_retry_not_a_loss() -> None:
    proc = await asyncio.create_subprocess_exec(
        "unshare",
        "-n",
        sys.executable,
        "-m",
        "tests.sinks.syslog.dead_path_child",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]
    result = orjson.loads(out.decode().strip().splitlines()[-1])
    # Before the fix every request went into the kernel's send buffer and was "delivered".
    assert result == {"answers": ["RETRY", "RETRY"], "lost": []}
