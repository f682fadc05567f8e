"""Simulators and configs shared by the end-to-end tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from logferry.sim.entra import EntraSim
from logferry.sim.meshstack import MeshStackSim
from logferry.sim.sentinel import SentinelSim
from tests.conftest import secret_ref, sentinel_sink_config

TABLE = "meshStackEventLogs_CL"


@dataclass
class Sims:
    entra: EntraSim
    sentinel: SentinelSim
    mesh: MeshStackSim

    def config(self, data: Path, *, sentinel: dict[str, Any] | None = None, **source: Any) -> dict[str, Any]:
        """meshStack → Sentinel (+ a file sink 'archive'), secrets by reference."""
        return {
            "state": {"path": str(data / "state.db")},
            "api": {"address": "127.0.0.1:0"},
            "log": {"level": "info", "format": "json"},
            "sources": {
                "mesh": {
                    "type": "meshstack",
                    "api_url": self.mesh.url,
                    "client_id": self.mesh.credentials["client_id"],
                    "client_secret": secret_ref("E2E_MESH_SECRET", self.mesh.credentials["client_secret"]),
                    "initial_lookback_secs": 3 * 3600,
                    "window_secs": 1800,
                    "lag_secs": 0,
                    "interval_secs": 1,
                    "page_size": 500,
                    "tls": {"ca_file": self.mesh.ca_file},
                    **source,
                }
            },
            "sinks": {
                "sentinel": sentinel_sink_config(
                    self.entra, self.sentinel, inputs=["mesh"], max_backoff_secs=2, **(sentinel or {})
                ),
                "archive": {
                    "type": "file",
                    "inputs": ["mesh"],
                    "path": str(data / "archive.ndjson"),
                    "rotate_max_bytes": 0,
                },
            },
        }

    async def rows(self) -> list[dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{self.sentinel.url}/sim/tables/{TABLE}/rows", ssl=False) as r,
        ):
            rows: list[dict[str, Any]] = await r.json()
            return rows

    async def post(self, sim: MeshStackSim | SentinelSim, path: str, body: Any) -> None:
        async with aiohttp.ClientSession() as s, s.post(f"{sim.url}{path}", json=body, ssl=False) as r:
            assert r.status < 300, await r.text()


@pytest.fixture
async def sims(request: pytest.FixtureRequest) -> AsyncIterator[Sims]:
    """Entra + Sentinel + meshStack simulators over TLS; mesh options via ``@pytest.mark.mesh(...)``."""
    marker = request.node.get_closest_marker("mesh")
    mesh_opts: dict[str, Any] = {"backlog_events": 2000, "live_rate": 0.0}
    if marker is not None:
        mesh_opts.update(marker.kwargs)
    entra = EntraSim()
    await entra.start(tls=True)
    sentinel = SentinelSim(entra=entra)
    await sentinel.start(tls=True)
    mesh = MeshStackSim(**mesh_opts)
    await mesh.start(tls=True)
    try:
        yield Sims(entra, sentinel, mesh)
    finally:
        await mesh.stop()
        await sentinel.stop()
        await entra.stop()
