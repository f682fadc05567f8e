"""Message trace source against the Graph simulator (Graph and RWS), through the real pipeline."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.sim.graph import GraphSim
from tests.conformance.source import SourceCase, SourceConformance
from tests.conftest import read_ndjson, running, secret_ref, wait_for

from .graph_helpers import file_pipeline, graph_source, serving, wrong_secret

DAY = 86400


def trace_sim(**options: Any) -> GraphSim:
    """Message trace rows only, visible at once, no new mail unless a test asks."""
    defaults: dict[str, Any] = {"backlog_alerts": 0, "alert_rate": 0, "update_rate": 0, "message_rate": 0,
                                "trace_delay_secs": 0, "latency_secs": 0.001}  # fmt: skip
    return GraphSim(**{**defaults, **options})


def graph_keys(out: Path) -> list[str]:
    if not out.exists():
        return []
    return [f"{r['receivedDateTime']}|{r['id']}|{r['recipientAddress']}" for r in read_ndjson(out)]


def rws_keys(out: Path) -> list[str]:
    if not out.exists():
        return []
    return [f"{r['Received']}|{r['MessageTraceId']}|{r['RecipientAddress']}" for r in read_ndjson(out)]


async def test_graph_pages_every_row_and_keeps_each_recipient_of_a_message(tmp_path: Path) -> None:
    async with serving(trace_sim(backlog_messages=300)) as sim:
        total = len(sim.visible_trace_rows())
        out = tmp_path / "out.ndjson"
        async with running(file_pipeline(graph_source(sim, "message_trace", page_size=50), out), tmp_path):
            await wait_for(lambda: len(graph_keys(out)) >= total)
        keys = graph_keys(out)
        assert len(keys) == len(set(keys)) == total
        # Rows of one message share its id: a dedupe on id alone would have dropped these.
        per_message = Counter(r["id"] for r in read_ndjson(out))
        assert max(per_message.values()) > 1
        assert sum(1 for e in sim.log if e[1] == "trace" and e[2] == 200) >= total // 50


async def test_graph_windows_stay_within_ten_days_and_ninety_days_back(tmp_path: Path) -> None:
    # 100 days of lookback and 10-day windows over mail spread across 20 days: the source clamps
    # the start to the API's 90 days and never asks for more than 10 days at once.
    async with serving(trace_sim(backlog_messages=200, messages_backlog_secs=20 * DAY)) as sim:
        total = len(sim.visible_trace_rows())
        out = tmp_path / "out.ndjson"
        cfg = graph_source(sim, "message_trace", initial_lookback_secs=100 * DAY, window_secs=10 * DAY)
        async with running(file_pipeline(cfg, out), tmp_path):
            await wait_for(lambda: len(graph_keys(out)) >= total)
        assert len(set(graph_keys(out))) == total
        assert "400" not in sim.requests
        assert sum(1 for e in sim.log if e[1] == "trace") >= 9


def test_validate_refuses_a_graph_window_over_ten_days(tmp_path: Path) -> None:
    source = {
        "type": "message_trace",
        "auth": {"type": "client_secret", "tenant_id": "t", "client_id": "c",
                 "client_secret": secret_ref("TEST_TRACE_VALIDATE", "s")},
    }  # fmt: skip
    with pytest.raises(ConfigError) as exc:
        parse_config(file_pipeline({**source, "window_secs": 10 * DAY + 1}, tmp_path / "o"), tmp_path)
    assert "window_secs 864001 exceeds 864000" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        parse_config(file_pipeline({**source, "api": "rws", "page_size": 100}, tmp_path / "o"), tmp_path)
    assert "page_size does not apply to api rws" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        parse_config(file_pipeline({**source, "page_size": 5001}, tmp_path / "o"), tmp_path)
    assert "sources.src.page_size" in str(exc.value) and "5000" in str(exc.value)


async def test_rws_follows_its_relative_next_link_over_more_than_2000_rows(tmp_path: Path) -> None:
    async with serving(trace_sim(backlog_messages=2000)) as sim:
        total = len(sim.visible_trace_rows())
        assert total > 2000
        out = tmp_path / "out.ndjson"
        async with running(file_pipeline(graph_source(sim, "message_trace", api="rws"), out), tmp_path):
            await wait_for(lambda: len(rws_keys(out)) >= total)
        keys = rws_keys(out)
        assert len(keys) == len(set(keys)) == total
        assert all("Z" not in r["Received"] for r in read_ndjson(out)[:50])
        assert sum(1 for e in sim.log if e[1] == "rws" and e[2] == 200) >= 2


async def test_rws_window_past_the_skiptoken_ceiling_is_split_and_read_in_halves(tmp_path: Path) -> None:
    # The service fails with 500 once $skiptoken reaches its ceiling (999999 rows; 299 here).
    async with serving(trace_sim(backlog_messages=400, rws_page_size=100, rws_max_skiptoken=299)) as sim:
        total = len(sim.visible_trace_rows())
        assert total > 300
        out = tmp_path / "out.ndjson"
        async with running(
            file_pipeline(graph_source(sim, "message_trace", api="rws"), out), tmp_path
        ) as svc:
            await wait_for(lambda: len(set(rws_keys(out))) >= total)
            assert await svc.store.dead_letters() == []
        assert len(rws_keys(out)) == total
        assert sim.requests["500"] >= 1


async def test_rws_row_without_a_trace_id_is_dead_lettered_and_the_rest_delivered(tmp_path: Path) -> None:
    bad_page = {"value": [{"Received": "2026-11-21T10:00:00.1234567", "RecipientAddress": "a@contoso.com"}]}
    fault = [{"path": "/ecp/*", "status": 200, "count": 1, "body": bad_page}]
    async with serving(trace_sim(backlog_messages=50, faults=fault)) as sim:
        total = len(sim.visible_trace_rows())
        out = tmp_path / "out.ndjson"
        cfg = graph_source(sim, "message_trace", api="rws", window_secs=3600)
        async with running(file_pipeline(cfg, out), tmp_path) as svc:
            await wait_for(lambda: len(rws_keys(out)) >= total)
            letters = await svc.store.dead_letters()
        assert "record lacks one of Received, MessageTraceId, RecipientAddress" in letters[0].reason


class TestMessageTraceConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        async with serving(trace_sim(backlog_messages=400, latency_secs=0.01)) as sim:
            yield SourceCase(
                config=graph_source(sim, "message_trace", page_size=20),
                total=len(sim.visible_trace_rows()),
                event_id=lambda r: f"{r['receivedDateTime']}|{r['id']}|{r['recipientAddress']}",
                wrong_credentials=wrong_secret(sim),
                check_failure="sign-in to Entra ID failed",
            )


class TestMessageTraceRwsConformance(SourceConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SourceCase]:
        async with serving(trace_sim(backlog_messages=400, rws_page_size=20, latency_secs=0.01)) as sim:
            yield SourceCase(
                config=graph_source(sim, "message_trace", api="rws"),
                total=len(sim.visible_trace_rows()),
                event_id=lambda r: f"{r['Received']}|{r['MessageTraceId']}|{r['RecipientAddress']}",
                wrong_credentials=wrong_secret(sim),
                check_failure="sign-in to Entra ID failed",
            )
