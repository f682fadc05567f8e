"""The Mimecast source passes the shared source conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from logferry.sim.mimecast import MimecastSim
from tests.conformance.source import SourceCase, SourceConformance
from tests.conftest import secret_ref
from tests.sources.test_mimecast import mc_source, siem

TYPES = ("receipt", "delivery")


def vendor_id(record: dict[str, Any]) -> str:
    return str(record.get("id") or record.get("processingId"))


class TestMimecastConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        async with MimecastSim(
            audit_events=600,
            batch_files=12,
            records_per_file=10,
            batch_types=",".join(TYPES),
            latency_secs=0.02,
        ) as sim:
            total = len(sim.audit_ids()) + sum(len(sim.batch_ids(t)) for t in TYPES)
            config = mc_source(sim, siem=siem(*TYPES, page_size=2))
            config["audit"]["page_size"] = 50
            wrong = {**config["auth"], "client_secret": secret_ref("CONFORMANCE_MC_WRONG", "wrong-secret")}
            yield SourceCase(
                config=config,
                total=total,
                event_id=vendor_id,
                wrong_credentials={"auth": wrong},
                check_failure="authentication failed",
            )
