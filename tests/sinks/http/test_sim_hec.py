"""The Splunk HEC simulator answers as HEC does (codes, channels, acks, restart) and /ingest takes JSON."""

from __future__ import annotations

import dataclasses
import gzip
import uuid
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
import pytest

from logferry.sim.hec import DEFAULT_TOKEN, RESTRICTED_TOKEN, HecSim
from tests.conftest import wait_for
from tests.sinks.http.conftest import StartHec, harness, stored

AUTH = {"Authorization": f"Splunk {DEFAULT_TOKEN}"}


async def call(
    sim: HecSim, path: str, body: bytes = b"", headers: Mapping[str, str] = AUTH, method: str = "POST"
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"{sim.url}{path}", data=body, headers=dict(headers), ssl=False) as r,
    ):
        return r.status, orjson.loads(await r.read())


async def test_tokens_are_checked_with_hec_codes(start_hec: StartHec) -> None:
    sim = await start_hec()
    body = b'{"event": "x"}'
    assert await call(sim, "/services/collector/event", body, {}) == (
        401,
        {"text": "Token is required", "code": 2},
    )
    bearer = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    assert await call(sim, "/services/collector/event", body, bearer) == (
        401,
        {"text": "Invalid authorization", "code": 3},
    )
    wrong = {"Authorization": "Splunk 11111111-2222-3333-4444-555555555555"}
    assert await call(sim, "/services/collector/event", body, wrong) == (
        403,
        {"text": "Invalid token", "code": 4},
    )
    status, answer = await call(sim, f"/services/collector/event?token={DEFAULT_TOKEN}", body)
    assert (status, answer["code"]) == (400, 16)
    assert await stored(sim) == []


async def test_concatenated_and_gzipped_events_are_stored_with_the_default_index(start_hec: StartHec) -> None:
    sim = await start_hec()
    body = b'{"event": {"a": 1}, "time": 1700000000.5}{"event": "two", "index": "other"}  {"event": 3}'
    assert await call(sim, "/services/collector/event", body) == (200, {"text": "Success", "code": 0})
    headers = {**AUTH, "Content-Encoding": "gzip"}
    assert (await call(sim, "/services/collector", gzip.compress(b'{"event": "z"}\n'), headers))[0] == 200
    events = await stored(sim)
    assert [e["event"] for e in events] == [{"a": 1}, "two", 3, "z"]
    assert [e["index"] for e in events] == ["main", "other", "main", "main"]
    assert sim.stats()["gzip_requests"] == 1


@pytest.mark.parametrize(
    ("body", "code", "event", "kept"),
    [
        (b"", 5, None, []),
        (b'{"event": "a"}{"event": ', 6, 1, ["a"]),
        (b'{"event": "a"}\n{"time": 1}\n{"event": "c"}', 12, 1, ["a"]),
        (b'{"event": "a"}{"event": "b"}{"event": "  "}{"event": "d"}', 13, 2, ["a", "b"]),
        (b'{"event": "a", "fields": {"nested": {"x": 1}}}', 15, 0, []),
        (b'{"event": "a", "time": "yesterday"}', 15, 0, []),
        (b'{"event": {"sim_reject": 1}}', 6, 0, []),
    ],
)
async def test_a_bad_event_gets_its_code_and_number_and_only_the_events_before_it_are_kept(
    start_hec: StartHec, body: bytes, code: int, event: int | None, kept: list[str]
) -> None:
    # invalid-event-number counts from 0; splunkd indexes the events before it, none after (moby/moby#35862).
    sim = await start_hec(tls=False)
    status, answer = await call(sim, "/services/collector/event", body)
    assert (status, answer["code"], answer.get("invalid-event-number")) == (400, code, event)
    assert [e["event"] for e in await stored(sim)] == kept


async def test_a_token_writes_only_to_its_indexes(start_hec: StartHec) -> None:
    sim = await start_hec(tls=False)
    restricted = {"Authorization": f"Splunk {RESTRICTED_TOKEN}"}
    status, answer = await call(
        sim, "/services/collector/event", b'{"event": 1}{"event": 2, "index": "x"}', restricted
    )
    assert (status, answer) == (400, {"text": "Incorrect index", "code": 7, "invalid-event-number": 1})
    assert (await call(sim, "/services/collector/event", b'{"event": 3}', restricted))[0] == 200
    assert [(e["event"], e["index"]) for e in await stored(sim)] == [(1, "main"), (3, "main")]


async def test_acks_need_a_channel_turn_true_after_the_delay_and_are_forgotten(start_hec: StartHec) -> None:
    sim = await start_hec(tls=False, ack=True, ack_delay_secs=1.0)
    body = b'{"event": "e"}'
    assert (await call(sim, "/services/collector/event", body))[1]["code"] == 10
    assert (await call(sim, "/services/collector/event", body, {**AUTH, "X-Splunk-Request-Channel": "nope"}))[
        1
    ]["code"] == 11
    channel = {**AUTH, "X-Splunk-Request-Channel": str(uuid.uuid4())}
    first = await call(sim, "/services/collector/event", body, channel)
    second = await call(
        sim, f"/services/collector/event?channel={channel['X-Splunk-Request-Channel']}", body, AUTH
    )
    assert (first[1]["ackId"], second[1]["ackId"]) == (0, 1)
    query = orjson.dumps({"acks": [0, 1, 7]})
    assert await call(sim, "/services/collector/ack", query, channel) == (
        200,
        {"acks": {"0": False, "1": False, "7": False}},
    )
    assert await stored(sim) == []

    async def both_acked() -> bool:
        _, answer = await call(sim, "/services/collector/ack", orjson.dumps({"acks": [0]}), channel)
        return bool(answer["acks"]["0"])

    await wait_for(both_acked, timeout=5)
    assert len(await stored(sim)) == 2
    # Reported once, then forgotten, as Splunk does.
    assert (await call(sim, "/services/collector/ack", query, channel))[1]["acks"] == {
        "0": False,
        "1": True,
        "7": False,
    }
    assert (await call(sim, "/services/collector/ack", query, channel))[1]["acks"]["1"] is False


async def test_a_restart_loses_unacknowledged_events(start_hec: StartHec) -> None:
    sim = await start_hec(tls=False, ack=True, ack_delay_secs=30)
    channel = {**AUTH, "X-Splunk-Request-Channel": str(uuid.uuid4())}
    ack_id = (await call(sim, "/services/collector/event", b'{"event": 1}{"event": 2}', channel))[1]["ackId"]
    assert await harness(sim, "POST", "/sim/restart") == {"events_lost": 2}
    sim.options = dataclasses.replace(sim.options, ack_delay_secs=0.0)
    assert (await call(sim, "/services/collector/ack", orjson.dumps({"acks": [ack_id]}), channel))[1] == {
        "acks": {str(ack_id): False}
    }
    assert await stored(sim) == []


async def test_ack_queries_on_a_token_without_ack_are_code_14(start_hec: StartHec) -> None:
    sim = await start_hec(tls=False)
    channel = {**AUTH, "X-Splunk-Request-Channel": str(uuid.uuid4())}
    assert await call(sim, "/services/collector/ack", b'{"acks": [0]}', channel) == (
        400,
        {"text": "ACK is disabled", "code": 14},
    )


async def test_raw_endpoint_takes_lines_on_a_channel(start_hec: StartHec) -> None:
    sim = await start_hec(tls=False)
    assert (await call(sim, "/services/collector/raw", b"a\nb\n"))[1]["code"] == 10
    channel = {**AUTH, "X-Splunk-Request-Channel": str(uuid.uuid4())}
    assert (await call(sim, "/services/collector/raw?sourcetype=st", b"a\n\nb\n", channel))[0] == 200
    assert [(e["event"], e["sourcetype"]) for e in await stored(sim)] == [("a", "st"), ("b", "st")]


async def test_health_ignores_the_token_an_empty_request_checks_it_and_outages_are_503(
    start_hec: StartHec,
) -> None:
    sim = await start_hec(tls=False)
    healthy = (200, {"text": "HEC is healthy", "code": 17})
    # splunkd does not check the token on /health (vectordotdev/vector#12098)...
    assert await call(sim, "/services/collector/health", method="GET") == healthy
    bad = {"Authorization": "Splunk nope"}
    assert await call(sim, "/services/collector/health", headers=bad, method="GET") == healthy
    # ...so a client checks it with an empty event request.
    assert await call(sim, "/services/collector/event") == (400, {"text": "No data", "code": 5})
    assert (await call(sim, "/services/collector/event", headers=bad))[0] == 403
    await harness(sim, "POST", "/sim/outage", {"seconds": 60, "retry_after": 2})
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"{sim.url}/services/collector/event", data=b'{"event":1}', headers=AUTH) as r,
    ):
        assert (r.status, r.headers["Retry-After"], await r.json()) == (
            503,
            "2",
            {"text": "Server is busy", "code": 9},
        )


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Basic bG9nZmVycnk6aW5nZXN0LXBhc3N3b3JkLTE="},
        {"Authorization": "Bearer ingest-bearer-token-1"},
        {"X-Api-Key": "ingest-api-key-1"},
    ],
)
async def test_ingest_takes_arrays_and_ndjson_with_any_configured_credential(
    start_hec: StartHec, headers: dict[str, str]
) -> None:
    sim = await start_hec(tls=False)
    assert await call(sim, "/ingest", b'[{"a": 1}, {"a": 2}]', headers) == (200, {"accepted": 2})
    ndjson = {**headers, "Content-Type": "application/x-ndjson"}
    assert await call(sim, "/ingest", b'{"a": 3}\n{"a": 4}\n', ndjson) == (200, {"accepted": 2})
    assert [e["event"]["a"] for e in await stored(sim, "ingest")] == [1, 2, 3, 4]


async def test_ingest_refuses_wrong_credentials_and_rejected_records(start_hec: StartHec) -> None:
    sim = await start_hec(tls=False)
    assert (await call(sim, "/ingest", b"[]", {"Authorization": "Bearer wrong"}))[0] == 401
    bearer = {"Authorization": "Bearer ingest-bearer-token-1"}
    assert (await call(sim, "/ingest", b'[{"a": 1}, {"sim_reject": true}]', bearer))[0] == 400
    assert (await call(sim, "/ingest", b"[{", bearer))[0] == 400
    assert await stored(sim) == []


async def test_a_body_over_the_limit_is_413(start_hec: StartHec) -> None:
    sim = await start_hec(tls=False, max_content_bytes=100)
    status, answer = await call(sim, "/services/collector/event", b'{"event": "%s"}' % (b"x" * 200))
    assert (status, answer) == (413, {"text": "Content too large"})
    assert await stored(sim) == []
