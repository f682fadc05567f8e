"""Helpers shared by tests that run the real pipeline against the simulators."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import hypothesis
import orjson
import pytest
from aiohttp import web

from logferry.config.loader import parse_config
from logferry.connectors import load_builtin
from logferry.service import Service
from logferry.sim.entra import EntraSim
from logferry.sim.eventhubs import EventHubsSim
from logferry.sim.sentinel import SentinelSim

load_builtin()

# Hypothesis fails an example that takes over 200 ms; on a loaded CI machine a garbage collection or
# a scheduler pause does that to correct code. The properties are what the tests check, not speed.
hypothesis.settings.register_profile("logferry", deadline=None)
hypothesis.settings.load_profile("logferry")


async def start_logferry(cfg_path: Path, log: Path) -> asyncio.subprocess.Process:
    """``logferry run -c cfg_path`` as a child process (to be killed with SIGKILL), output to ``log``."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "logferry", "run", "-c", str(cfg_path),
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT, env=os.environ.copy(),
    )  # fmt: skip


def output_bytes(path: Path) -> int:
    """Bytes a file sink has written to ``path`` so far (current file and rotated ones)."""
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


async def kill_after_progress(cfg_path: Path, log: Path, progress: Callable[[], int], delay: float) -> None:
    """Start ``logferry run -c cfg_path`` and SIGKILL it ``delay`` seconds after ``progress()`` first grows.

    A kill timed from the start would land before the first write whenever start-up is slow (imports
    alone take over a second on a loaded CI machine); timing it from the first progress keeps it
    mid-run on any machine.
    """
    before = progress()
    proc = await start_logferry(cfg_path, log)
    try:
        await wait_for(lambda: proc.returncode is not None or progress() > before, timeout=60)
        assert proc.returncode is None, f"logferry exited with {proc.returncode}: {log.read_text()[-3000:]}"
        await asyncio.sleep(delay)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL


@asynccontextmanager
async def serve_app(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` on a free loopback port (plain HTTP) for the block; yields its base URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def secret_ref(name: str, value: str) -> str:
    """Put ``value`` in the environment and return the config reference to it."""
    os.environ[name] = value
    return "${env:" + name + "}"


@asynccontextmanager
async def running(config: dict[str, Any], base_dir: Path) -> AsyncIterator[Service]:
    config.setdefault("state", {"path": str(base_dir / "state.db")})
    config.setdefault("api", {"address": "127.0.0.1:0"})
    service = Service(parse_config(config, base_dir))
    await service.start()
    try:
        yield service
    finally:
        await service.stop(grace_secs=5.0)


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll ``predicate`` (sync or async) until true; fail the test with a clear message otherwise."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


def client_secret_auth(tenant_id: str, client_id: str, env: str, secret: str) -> dict[str, Any]:
    """An Entra ``auth`` block with the secret put in ``env`` and given by reference."""
    return {
        "type": "client_secret",
        "tenant_id": tenant_id,
        "client_id": client_id,
        "client_secret": secret_ref(env, secret),
    }


def sentinel_sink_config(entra: EntraSim, sentinel: SentinelSim, **overrides: Any) -> dict[str, Any]:
    """A ``sentinel`` sink entry for the simulators (``inputs`` left to the caller)."""
    return {
        "type": "sentinel",
        "endpoint": sentinel.url,
        "dcr_immutable_id": sentinel.options.dcr_id,
        "table": "meshStackEventLogs_CL",
        "authority_host": entra.url,
        "auth": client_secret_auth(
            entra.tenant_id, entra.client_id, "TEST_ENTRA_SECRET", entra.client_secret
        ),
        "tls": {"ca_file": sentinel.ca_file},
        **overrides,
    }


def read_ndjson(path: Path) -> list[dict[str, Any]]:
    """All records written by a file sink (current file and rotated ones)."""
    out: list[dict[str, Any]] = []
    for p in sorted(path.parent.glob(path.name + "*")):
        # The sink may be mid-write: only lines that already end in a newline are complete.
        complete = p.read_bytes().split(b"\n")[:-1]
        out.extend(orjson.loads(line) for line in complete if line)
    return out


@pytest.fixture
async def kafka_namespace() -> AsyncIterator[EventHubsSim]:
    """An Event Hubs namespace (two partitions) with its Kafka endpoint: TLS, SASL PLAIN, Tansu behind."""
    sim = EventHubsSim(partitions=2, kafka=True)
    await sim.start(tls=True)
    try:
        yield sim
    finally:
        await sim.stop()
