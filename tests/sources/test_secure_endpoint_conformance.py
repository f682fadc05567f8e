"""The Cisco Secure Endpoint source passes the shared source conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from logferry.sim.amp import AmpSim
from tests.conformance.source import SourceCase, SourceConformance
from tests.conftest import secret_ref
from tests.sources.test_secure_endpoint import amp_source


def record_id(record: dict[str, Any]) -> str:
    return str(record["id"])


class TestSecureEndpointConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        # Pages of 50 with some latency, so the restart test stops the first run mid-pass.
        async with AmpSim(backlog_events=2500, live_rate=0, latency_secs=0.01) as sim:
            yield SourceCase(
                config=amp_source(sim, page_size=50),
                total=len(sim.expected_ids()),
                event_id=record_id,
                wrong_credentials={"api_key": secret_ref("CONFORMANCE_AMP_WRONG", "wrong-key")},
                check_failure="Unknown API key or Client ID",
            )
