"""The log_analytics sink passes the shared sink conformance suite against the simulator."""

from __future__ import annotations

from typing import Any

import pytest

from logferry.sim.log_analytics import LogAnalyticsSim
from tests.conformance.sink import SinkCase, SinkConformance
from tests.sinks.log_analytics.conftest import stored_rows


def audit_records(n: int) -> list[dict[str, Any]]:
    """Mimecast-audit-like records, with the names and text the encoder has to make valid."""
    return [
        {
            "id": f"00000000-0000-4000-8000-{i:012d}",
            "auditType": "Logon Authentication Failed",
            "user.email": f"jürgen{i}@example.com",
            "eventTime": "2026-11-21T10:00:00+0000",
            "eventInfo": "line one\nline two, € and 😀",
            "category": "authentication_logs",
            "details": {"ip": "192.0.2.1", "n": i},
        }
        for i in range(n)
    ]


class TestLogAnalyticsSinkConformance(SinkConformance):
    @pytest.fixture
    def case(self, sim: LogAnalyticsSim, la_config: dict[str, Any]) -> SinkCase:
        port = int(sim.url.rsplit(":", 1)[1])

        async def arrived() -> int:
            return len(await stored_rows(sim))

        async def outage() -> None:
            await sim.stop()

        async def recover() -> None:
            await sim.start(port=port, tls=True)  # the rows file keeps what arrived before

        # Small requests, so 2,500 records take several and the outage test sends more than one.
        config = {**la_config, "batch": {"max_bytes": 200_000}}
        return SinkCase(config, audit_records(2500), arrived, outage, recover)
