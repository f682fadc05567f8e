"""The CrowdStrike source passes the shared source conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from logferry.sim.crowdstrike import CrowdStrikeSim
from tests.conformance.source import SourceCase, SourceConformance
from tests.conftest import secret_ref
from tests.sources.test_crowdstrike import cs_source, expected


def record_id(record: dict[str, Any]) -> str:
    return f"{record['metadata']['eventType']}|{record['metadata']['offset']}"


class TestCrowdStrikeConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        # A paced stream, so the suite's first run stops part-way through the backlog.
        async with CrowdStrikeSim(partitions=2, backlog_events=300, stream_rate=400) as sim:
            yield SourceCase(
                config=cs_source(sim, batch_events=50),
                total=len(expected(sim)),
                event_id=record_id,
                wrong_credentials={"client_secret": secret_ref("CONFORMANCE_CS_WRONG", "wrong-secret")},
                check_failure="access denied, invalid client",
            )
