"""The meshStack source passes the shared source conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from logferry.sim.meshstack import MeshStackSim
from tests.conformance.source import SourceCase, SourceConformance
from tests.conftest import secret_ref

TOTAL = 3000


def uuid_of(record: dict[str, Any]) -> str:
    return str(record["metadata"]["uuid"])


class TestMeshStackConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        async with MeshStackSim(backlog_events=TOTAL, live_rate=0, latency_secs=0.02) as sim:
            yield SourceCase(
                config={
                    "type": "meshstack",
                    "api_url": sim.url,
                    "client_id": sim.credentials["client_id"],
                    "client_secret": secret_ref("CONFORMANCE_MESH_SECRET", sim.credentials["client_secret"]),
                    "initial_lookback_secs": 2 * 3600,
                    "window_secs": 900,
                    "lag_secs": 0,
                    "interval_secs": 1,
                    "page_size": 50,
                },
                total=TOTAL,
                event_id=uuid_of,
                wrong_credentials={"client_secret": secret_ref("CONFORMANCE_MESH_WRONG", "wrong-secret")},
                check_failure="login failed",
            )
