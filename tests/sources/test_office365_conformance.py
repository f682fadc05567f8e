"""The Office 365 source passes the shared source conformance suite."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conformance.source import SourceCase, SourceConformance
from tests.conftest import secret_ref
from tests.sources.test_office365 import HOUR, o365_sim, o365_source

CONTENT = ("Audit.Exchange", "Audit.SharePoint")


def record_id(record: dict[str, Any]) -> str:
    return str(record["Id"])


class TestOffice365Conformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        async with o365_sim(
            backlog_secs=2 * HOUR, blob_interval_secs=60, records_per_blob=3, live=False, latency_secs=0.01
        ) as sim:
            since = time.time() - HOUR
            total = set().union(
                *(sim.expected_ids(sim.tenant_ids[0], ct, since, time.time()) for ct in CONTENT)
            )
            config = o365_source(sim, initial_lookback_secs=HOUR, content_types=list(CONTENT), concurrency=2)
            wrong = {**config["auth"], "client_secret": secret_ref("CONFORMANCE_O365_WRONG", "wrong-secret")}
            yield SourceCase(
                config=config,
                total=len(total),
                event_id=record_id,
                wrong_credentials={"auth": wrong},
                check_failure="refused the token",
            )
