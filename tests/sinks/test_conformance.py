"""The built-in sinks pass the shared sink conformance suite."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from logferry.sim.entra import EntraSim
from logferry.sim.sentinel import SentinelSim
from tests.conformance.sink import SinkCase, SinkConformance
from tests.conftest import read_ndjson, sentinel_sink_config


def mesh_records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "kind": "meshEventLog",
            "metadata": {
                "uuid": f"00000000-0000-4000-8000-{i:012d}",
                "createdAt": "2026-11-21T10:00:00.123456Z",
            },
            "spec": {
                "title": "Workspace Created",
                "eventType": "Created",
                "description": "line one\nline two",
                "workspaceRef": {"name": "ws", "kind": "meshWorkspace"},
                "content": {"Workspace": "ws", "n": i},
                "author": {"authorType": "User", "identifier": "u"},
            },
        }
        for i in range(n)
    ]


class TestFileSinkConformance(SinkConformance):
    # A local file has no outage a test could stage (root ignores permissions); a full or failing
    # disk is covered in test_file.py.
    test_outage_is_retried_and_recovery_delivers_everything = None  # type: ignore[assignment]

    @pytest.fixture
    async def case(self, tmp_path: Path) -> SinkCase:
        path = tmp_path / "out.ndjson"

        async def arrived() -> int:
            return len(read_ndjson(path)) if path.exists() else 0

        return SinkCase({"type": "file", "path": str(path)}, mesh_records(2500), arrived)


class TestSentinelSinkConformance(SinkConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SinkCase]:
        entra = EntraSim()
        await entra.start(tls=True)
        sentinel = SentinelSim(entra=entra)
        await sentinel.start(tls=True)

        async def arrived() -> int:
            url = f"{sentinel.url}/sim/tables/meshStackEventLogs_CL/rows"
            async with aiohttp.ClientSession() as s, s.get(url, ssl=False) as r:
                return len(await r.json())

        async def outage(on: bool) -> None:
            async with aiohttp.ClientSession() as s:
                method = s.post if on else s.delete
                async with method(f"{sentinel.url}/sim/outage", json={"seconds": 600}, ssl=False) as r:
                    assert r.status < 300

        config = sentinel_sink_config(entra, sentinel)
        try:
            yield SinkCase(
                config,
                mesh_records(2500),
                arrived,
                outage=functools.partial(outage, True),
                recover=functools.partial(outage, False),
            )
        finally:
            await sentinel.stop()
            await entra.stop()
