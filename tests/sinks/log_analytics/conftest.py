"""A started Data Collector API simulator and a sink config entry pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.observe.metrics import Metrics
from logferry.sim.log_analytics import LogAnalyticsSim
from logferry.sinks.log_analytics import LogAnalyticsSink  # also registers the type

KEY_ENV = "LA_TEST_SHARED_KEY"


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[LogAnalyticsSim]:
    # Rows in a file, so a stopped and restarted simulator (an outage) still holds them.
    server = LogAnalyticsSim(db_path=str(tmp_path / "workspace.db"))
    await server.start(tls=True)
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def la_config(sim: LogAnalyticsSim, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The sink's entry without ``inputs``; the key is in the environment and given by reference."""
    monkeypatch.setenv(KEY_ENV, sim.shared_key)
    return la_entry(sim)


def la_entry(sim: LogAnalyticsSim, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "log_analytics",
        "workspace_id": sim.options.workspace_id,
        "shared_key": "${env:" + KEY_ENV + "}",
        "log_type": "MeshAudit",
        "endpoint": sim.url,
        "tls": {"ca_file": sim.ca_file},
        **overrides,
    }


async def stored_rows(sim: LogAnalyticsSim, table: str = "MeshAudit_CL") -> list[dict[str, Any]]:
    """What the simulated workspace holds, read back over its harness route."""
    url = f"{sim.url}/sim/tables/{table}/rows"
    async with aiohttp.ClientSession() as s, s.get(url, ssl=False) as r:
        rows: list[dict[str, Any]] = await r.json()
        return rows


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def make_sink(
    tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[LogAnalyticsSink]]]:
    """Builds and starts a sink from a config entry the way the service does; closes them after the test."""
    monkeypatch.setenv("LA_TEST_UNUSED", "unused")
    ctx = BuildContext(data_dir=tmp_path, metrics=metrics)
    sinks: list[LogAnalyticsSink] = []

    async def make(entry: dict[str, Any], *, start: bool = True) -> LogAnalyticsSink:
        config = {
            "sources": {
                "src": {
                    "type": "meshstack",
                    "api_url": "https://mesh.example.com",
                    "client_id": "k",
                    "client_secret": "${env:LA_TEST_UNUSED}",
                }
            },
            "sinks": {"dst": {**entry, "inputs": ["src"]}},
        }
        sink = parse_config(config, tmp_path).sinks["dst"].build("dst", ctx)
        assert isinstance(sink, LogAnalyticsSink)
        if start:
            await sink.start()
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.close()
    await ctx.close()
