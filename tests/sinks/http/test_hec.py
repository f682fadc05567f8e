"""The Splunk HEC sink against the HEC simulator: conformance, acks, restarts, errors and encoding."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from logferry.core.delivery import DeliveryLoop
from logferry.core.errors import ConfigError
from logferry.core.sink import Action
from logferry.net.retry import Backoff
from logferry.observe.metrics import Metrics
from logferry.sim.hec import DEFAULT_TOKEN, RESTRICTED_TOKEN, HecSim
from logferry.sinks.http.hec_events import EventEncoder, epoch_secs
from tests.conformance.sink import SinkCase, SinkConformance
from tests.conftest import secret_ref, wait_for
from tests.sinks.http.conftest import StartHec, built_sink, harness, stored
from tests.sinks.test_conformance import mesh_records


def hec_entry(sim: HecSim, token: str = DEFAULT_TOKEN, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "splunk_hec",
        "url": sim.url,
        "token": secret_ref("HEC_TEST_TOKEN", token),
        **overrides,
    }
    if sim.ca_file is not None:
        entry["tls"] = {"ca_file": sim.ca_file}
    return entry


def outage_and_recovery(sim: HecSim) -> tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    async def outage() -> None:
        await harness(sim, "POST", "/sim/outage", {"seconds": 3600, "status": 503, "retry_after": 1})

    async def recover() -> None:
        await harness(sim, "DELETE", "/sim/outage")

    return outage, recover


class TestHecConformance(SinkConformance):
    @pytest.fixture
    async def case(self, start_hec: StartHec) -> SinkCase:
        sim = await start_hec(ack=True)
        entry = hec_entry(
            sim,
            index="security",
            sourcetype="meshstack:event",
            time_field="metadata.createdAt",
            id_field="logferry_id",
            ack=True,
            ack_poll_interval_secs=0.1,
            batch={"max_bytes": 300_000},
        )

        async def arrived() -> int:
            return len(await stored(sim, "security"))

        return SinkCase(entry, mesh_records(2500), arrived, *outage_and_recovery(sim))


class TestHecWithoutAckConformance(SinkConformance):
    @pytest.fixture
    async def case(self, start_hec: StartHec) -> SinkCase:
        sim = await start_hec(tls=False)

        async def arrived() -> int:
            return len(await stored(sim))

        return SinkCase(
            hec_entry(sim, compression="none"), mesh_records(500), arrived, *outage_and_recovery(sim)
        )


@pytest.fixture
async def sim(start_hec: StartHec) -> HecSim:
    return await start_hec(tls=False)


async def test_envelopes_carry_metadata_time_and_indexed_fields(sim: HecSim, tmp_path: Path) -> None:
    entry = hec_entry(
        sim,
        index="main",
        sourcetype="st",
        source="src",
        host="h1",
        time_field="when",
        fields={"tenant": "org.id", "tags": "tags", "nested": "org"},
        id_field="logferry_id",
    )
    records: list[dict[str, Any]] = [
        {"when": "2025-11-21T10:00:00.250Z", "org": {"id": "acme"}, "tags": ["a", "b"]},
        {"when": 1763719200123, "org": None},
        {"when": "garbage"},
    ]
    before = time.time()
    async with built_sink(entry, tmp_path) as sink:
        lines = sink.encode(records)
        again = sink.encode(records)
        assert (await sink.send(lines)).action is Action.DELIVERED
    events = await stored(sim)
    assert [e["event"] for e in events] == records
    assert {(e["index"], e["sourcetype"], e["source"], e["host"]) for e in events} == {
        ("main", "st", "src", "h1")
    }
    assert events[0]["time"] == 1763719200.25 and events[1]["time"] == 1763719200.123
    assert before - 0.01 <= events[2]["time"] <= time.time()
    assert events[0]["fields"]["tenant"] == "acme" and events[0]["fields"]["tags"] == ["a", "b"]
    assert orjson.loads(events[0]["fields"]["nested"]) == {"id": "acme"}
    assert "tenant" not in events[1]["fields"]
    ids = [e["fields"]["logferry_id"] for e in events]
    assert len(set(ids)) == 3 and [orjson.loads(x)["fields"]["logferry_id"] for x in again] == ids


@pytest.mark.parametrize(
    ("value", "secs"),
    [
        (1700000000, 1700000000.0),
        (1700000000.1234, 1700000000.123),
        (1700000000123, 1700000000.123),
        ("1700000000.5", 1700000000.5),
        ("2023-11-14T22:13:20Z", 1700000000.0),
        ("2023-11-14T23:13:20+01:00", 1700000000.0),
        ("2023-11-14T22:13:20", 1700000000.0),
        (99_999_999_999, 99_999_999_999.0),  # the largest value read as seconds (year 5138)
        (100_000_000_000, 100_000_000.0),  # the smallest read as milliseconds
        (1700000000123456, 1700000000.123),  # microseconds
        ("1700000000123456", 1700000000.123),
        (1700000000123456789, 1700000000.123),  # nanoseconds
        ("1700000000123456789", 1700000000.123),
        (1e20, None),  # beyond nanoseconds: not a time
        ("yesterday", None),
        (True, None),
        (-5, None),
        ({"t": 1}, None),
        (None, None),
    ],
)
def test_epoch_secs(value: Any, secs: float | None) -> None:
    assert epoch_secs(value) == secs


def test_lines_are_single_json_objects() -> None:
    encoder = EventEncoder(meta={"index": "main"})
    (line,) = encoder.encode([{"text": "a\nb", "d": {1, 2}}])
    assert b"\n" not in line
    assert orjson.loads(line)["event"]["text"] == "a\nb"


async def test_ack_waits_until_the_events_are_indexed_and_polls_are_counted_apart(
    start_hec: StartHec, tmp_path: Path
) -> None:
    sim = await start_hec(tls=False, ack=True, ack_delay_secs=0.3)
    metrics = Metrics()
    async with built_sink(hec_entry(sim, ack=True, ack_poll_interval_secs=0.05), tmp_path, metrics) as sink:
        t0 = time.monotonic()
        result = await sink.send(sink.encode([{"n": 1}, {"n": 2}]))
        took = time.monotonic() - t0
    assert result.action is Action.DELIVERED, result.reason
    assert took >= 0.3
    assert len(await stored(sim)) == 2
    requests = {
        (s.labels["component"], s.labels["status"]): s.value
        for m in metrics.http_requests.collect()
        for s in m.samples
        if s.name.endswith("_total")
    }
    # One data request; the polls are the ack component's, so request rates stay meaningful.
    assert requests[("dst", "200")] == 1 and requests[("dst:ack", "200")] >= 2


async def test_events_lost_in_a_restart_are_sent_again_after_the_ack_timeout(
    start_hec: StartHec, tmp_path: Path
) -> None:
    sim = await start_hec(tls=False, ack=True, ack_delay_secs=60)
    entry = hec_entry(sim, ack=True, ack_poll_interval_secs=0.05, ack_timeout_secs=0.6)
    async with built_sink(entry, tmp_path) as sink:
        lines = sink.encode([{"n": i} for i in range(5)])
        sending = asyncio.create_task(sink.send(lines))
        await wait_for(lambda: sim.stats()["acks_waiting"] == 1, timeout=5)
        assert await harness(sim, "POST", "/sim/restart") == {"events_lost": 5}
        lost = await sending
        assert lost.action is Action.RETRY and "no indexer acknowledgement for ackId 0" in lost.reason
        sim.options = dataclasses.replace(sim.options, ack_delay_secs=0.0)
        resent = await sink.send(lines)
    assert resent.action is Action.DELIVERED, resent.reason
    assert sorted(e["event"]["n"] for e in await stored(sim)) == [0, 1, 2, 3, 4]


async def test_a_token_without_ack_delivers_on_200_and_warns_once(
    sim: HecSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with built_sink(hec_entry(sim, ack=True), tmp_path) as sink:
        for n in range(2):
            assert (await sink.send(sink.encode([{"n": n}]))).action is Action.DELIVERED
    assert caplog.text.count("without an ackId") == 1
    assert len(await stored(sim)) == 2


async def test_server_busy_is_retried_after_its_retry_after(sim: HecSim, tmp_path: Path) -> None:
    await harness(
        sim, "POST", "/sim/faults", [{"path": "/services/collector/event", "status": 503, "retry_after": 3}]
    )
    async with built_sink(hec_entry(sim), tmp_path) as sink:
        lines = sink.encode([{"n": 1}])
        busy = await sink.send(lines)
        assert (busy.action, busy.after, busy.status) == (Action.RETRY, 3.0, 503)
        assert "HEC code 9: Server is busy" in busy.reason
        assert (await sink.send(lines)).action is Action.DELIVERED


@pytest.mark.parametrize("bad", [0, 2, 999])
async def test_the_event_hec_names_is_dead_lettered_and_only_those_after_it_resent(
    sim: HecSim, tmp_path: Path, bad: int
) -> None:
    # HEC indexes the events before invalid-event-number and none after it: halving the request
    # would index those before it again.
    records: list[dict[str, Any]] = [{"n": i} for i in range(1000)]
    records[bad] = {"n": bad, "sim_reject": True}
    async with built_sink(hec_entry(sim, compression="gzip"), tmp_path) as sink:
        loop = DeliveryLoop("dst", sink, None, Metrics(), 1.0, on_freed=None)  # type: ignore[arg-type]
        rejected = await loop._deliver(sink.encode(records), Backoff(initial_secs=0.01, max_secs=0.01))
    assert rejected is not None and [(r, b"sim_reject" in line) for r, line in rejected] == [
        (f"HTTP 400 HEC code 6: Invalid data format (event {bad} of the request, counting from 0)", True)
    ]
    copies = Counter(e["event"]["n"] for e in await stored(sim))
    assert sorted(copies) == [n for n in range(1000) if n != bad] and set(copies.values()) == {1}
    assert sim.stats()["requests"] == ({"400": 1, "200": 1} if bad < 999 else {"400": 1})


async def test_a_400_without_an_event_number_halves_the_request(sim: HecSim, tmp_path: Path) -> None:
    rule = {
        "path": "/services/collector/event",
        "status": 400,
        "body": {"text": "Invalid data format", "code": 6},
    }
    await harness(sim, "POST", "/sim/faults", [rule])
    async with built_sink(hec_entry(sim), tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": i} for i in range(4)]))
    assert (result.action, result.status, result.index) == (Action.SPLIT, 400, None)


@pytest.mark.parametrize("ack", [False, True])
async def test_a_200_that_is_not_from_hec_keeps_the_data(web_server: str, tmp_path: Path, ack: bool) -> None:
    # A web server, Splunk Web or a proxy page on the configured port also answers 200.
    entry = {"type": "splunk_hec", "url": web_server, "token": secret_ref("HEC_TEST_TOKEN", DEFAULT_TOKEN)}
    async with built_sink({**entry, "ack": ack}, tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 1}]))
        check = await sink.healthcheck()
    assert (result.action, result.status) == (Action.RETRY, 200)
    assert result.reason == f"answer is not from Splunk HEC: check url (HTTP 200 from {web_server})"
    assert not check.ok and check.message == result.reason


async def test_a_200_with_other_json_keeps_the_data(sim: HecSim, tmp_path: Path) -> None:
    rule = {"path": "/services/collector/event", "status": 200, "body": {"accepted": 1}}
    await harness(sim, "POST", "/sim/faults", [rule])
    async with built_sink(hec_entry(sim), tmp_path) as sink:
        lines = sink.encode([{"n": 1}])
        result = await sink.send(lines)
        assert result.action is Action.RETRY and "answer is not from Splunk HEC" in result.reason
        assert (await sink.send(lines)).action is Action.DELIVERED
    assert len(await stored(sim)) == 1


async def test_check_proves_the_token_and_the_queues(sim: HecSim, tmp_path: Path) -> None:
    async with built_sink(hec_entry(sim), tmp_path) as sink:
        check = await sink.healthcheck()
        assert check.ok and check.message == f"HEC at {sim.url} accepts the token and is healthy"
        await harness(sim, "POST", "/sim/outage", {"seconds": 60, "status": 503})
        busy = await sink.healthcheck()
    assert not busy.ok and "Server is busy" in busy.message
    assert await stored(sim) == []


async def test_an_index_the_token_may_not_use_keeps_the_data_and_says_why(
    sim: HecSim, tmp_path: Path
) -> None:
    async with built_sink(hec_entry(sim, RESTRICTED_TOKEN, index="security"), tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 1}, {"n": 2}]))
    assert (result.action, result.status) == (Action.RETRY, 400)
    assert "allow the token to write to index security" in result.reason


async def test_a_refused_token_is_retried_with_a_hint_and_never_shown(
    sim: HecSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "99999999-8888-4777-8666-555555555555"
    caplog.set_level(logging.DEBUG)
    async with built_sink(hec_entry(sim, wrong), tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 1}]))
        check = await sink.healthcheck()
    assert (result.action, result.status) == (Action.RETRY, 403)
    assert "check token" in result.reason and not check.ok and "check token" in check.message
    assert wrong not in result.reason + check.message + caplog.text


async def test_a_token_echoed_in_an_error_body_is_redacted(sim: HecSim, tmp_path: Path) -> None:
    echo = {"text": f"Invalid data format near Splunk {DEFAULT_TOKEN}", "code": 6}
    await harness(
        sim, "POST", "/sim/faults", [{"path": "/services/collector/event", "status": 400, "body": echo}]
    )
    async with built_sink(hec_entry(sim), tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 1}]))
    assert result.action is Action.REJECT and "Invalid data format" in result.reason
    assert DEFAULT_TOKEN not in result.reason


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        (
            {"url": "https://u:p4ss@splunk.example.com:8088"},
            "sinks.dst.url: url must not contain credentials",
        ),
        ({"url": "https://splunk.example.com:8088?x=1"}, "remove the ?query"),
        ({"id_field": "_id"}, "sinks.dst.id_field: id_field: '_id' is not a field name Splunk indexes"),
        ({"id_field": "a b"}, "sinks.dst.id_field"),
        ({"fields": {"x": "a"}, "id_field": "x"}, "'x' is also a key of fields"),
        (
            {"url": "https://splunk.example.com:8088/services/collector/event"},
            "use https://splunk.example.com:8088",
        ),
        ({"url": "http://splunk.example.com:8088"}, "sinks.dst.url: url must use https"),
        ({"token": "literal"}, "sinks.dst.token: a secret must not be written inline"),
        ({"index": "bad index"}, "sinks.dst.index"),
        ({"fields": {"_time": "x"}}, "not starting with _"),
        ({"fields": {"ok": "a..b"}}, "fields.ok"),
    ],
)
async def test_bad_config_names_the_field(
    sim: HecSim, tmp_path: Path, override: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        async with built_sink({**hec_entry(sim), **override}, tmp_path):
            pass
    assert any(problem in p for p in exc.value.problems), exc.value.problems


async def test_a_token_with_a_trailing_newline_is_refused_naming_the_field(
    sim: HecSim, tmp_path: Path
) -> None:
    entry = hec_entry(sim, DEFAULT_TOKEN + "\n")
    with pytest.raises(ConfigError) as exc:
        async with built_sink(entry, tmp_path):
            pass
    assert exc.value.problems == [
        "sinks.dst.token: token contains a control character (a trailing newline?): remove it from the value"
    ]
