"""Seed 001 without the Azure Function: Mimecast audit events through the real pipeline into
MimecastAudit_CL over the Data Collector API, with the columns the Function's records made."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from logferry.sim.log_analytics import LogAnalyticsSim
from logferry.sim.mimecast import MimecastSim
from tests.conftest import running, wait_for
from tests.sinks.log_analytics.conftest import la_entry, stored_rows
from tests.sources.test_mimecast import mc_source


@pytest.mark.usefixtures("la_config")  # puts the workspace key in the environment
async def test_mimecast_audit_lands_in_mimecastaudit_cl_with_event_time(
    sim: LogAnalyticsSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = la_entry(sim, log_type="MimecastAudit", time_generated_field="time_generated", inputs=["mc"])
    async with MimecastSim(audit_events=40) as mimecast:
        config = {"sources": {"mc": mc_source(mimecast)}, "sinks": {"la": sink}}
        with caplog.at_level(logging.WARNING):
            async with running(config, tmp_path):

                async def all_arrived() -> bool:
                    return len(await stored_rows(sim, "MimecastAudit_CL")) >= 40

                await wait_for(all_arrived, timeout=20)
            want = mimecast.audit_ids()
    rows = await stored_rows(sim, "MimecastAudit_CL")
    assert sorted(r["id_s"] for r in rows) == sorted(want)
    row = rows[0]
    assert {"auditType_s", "user_s", "eventInfo_s", "mimecastEventId_s", "time_generated_t"} <= set(row)
    assert row["TimeGenerated"][:19] == row["time_generated_t"][:19]  # event time, not ingestion time
    retired = [r for r in caplog.records if "retired" in r.getMessage()]
    assert len(retired) == 1 and "sink la" in retired[0].getMessage()
