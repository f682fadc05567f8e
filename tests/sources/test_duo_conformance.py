"""The Duo source passes the shared source conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from logferry.sim.duo import DuoSim
from tests.conformance.source import SourceCase, SourceConformance
from tests.conftest import secret_ref
from tests.sources.test_duo import duo_source, event_id

PER_TYPE = 400


class TestDuoConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        # Client-side pacing (5 requests/s per endpoint, 50 per page) makes a run last long enough
        # for the restart test to stop it part-way.
        sim = DuoSim(backlog_events=PER_TYPE, live_rate=0, requests_per_minute=0, latency_secs=0.02)
        await sim.start(tls=True)
        try:
            yield SourceCase(
                config=duo_source(sim, page_size=50, requests_per_minute=300),
                total=5 * PER_TYPE,
                event_id=event_id,
                wrong_credentials={"skey": secret_ref("CONFORMANCE_DUO_WRONG", "w" * 40)},
                check_failure="signature (40103)",
            )
        finally:
            await sim.stop()
