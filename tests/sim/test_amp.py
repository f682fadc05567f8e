"""The Cisco Secure Endpoint simulator answers like the vendor's API v1 (specs/cisco_secure_endpoint.md)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from typing import Any

import aiohttp
import pytest
import requests
from multidict import CIMultiDict

from logferry.sim.amp import AmpSim
from logferry.sim.amp_events import format_date

from .conftest import Starter, announcement
from .helpers import stats

THREAT_DETECTED = 1090519054
CLOUD_IOC = 1107296274
UNAUTHORIZED = {
    "version": "v1.0.0",
    "data": {},
    "errors": [
        {"error_code": 401, "description": "Unauthorized", "details": ["Unknown API key or Client ID"]}
    ],
}


@pytest.fixture
async def amp(start_sim: Starter) -> AmpSim:
    sim: AmpSim = await start_sim(AmpSim(backlog_events=230, live_rate=0, latency_secs=0))
    return sim


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def get(
    http: aiohttp.ClientSession, sim: AmpSim, url: str, params: Any = None
) -> tuple[int, CIMultiDict[str], Any]:
    target = url if url.startswith("http") else f"{sim.url}{url}"
    async with http.get(target, params=params, headers=basic(sim.client_id, sim.api_key)) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.json()


async def all_events(http: aiohttp.ClientSession, sim: AmpSim, params: Any) -> list[dict[str, Any]]:
    status, _, body = await get(http, sim, "/v1/events", params)
    records = list(body["data"])
    while "next" in body["metadata"]["links"]:
        status, _, body = await get(http, sim, body["metadata"]["links"]["next"])
        assert status == 200
        records += body["data"]
    return records


async def test_wrong_or_missing_credentials_get_the_vendor_401_body(
    http: aiohttp.ClientSession, amp: AmpSim
) -> None:
    async with http.get(f"{amp.url}/v1/events", headers=basic(amp.client_id, "wrong")) as resp:
        assert resp.status == 401
        assert await resp.json() == UNAUTHORIZED
    async with http.get(f"{amp.url}/v1/version") as resp:
        assert resp.status == 401
        assert await resp.json() == UNAUTHORIZED


async def test_version_is_the_connectivity_check(http: aiohttp.ClientSession, amp: AmpSim) -> None:
    status, _, body = await get(http, amp, "/v1/version")
    assert status == 200
    assert body == {"version": "v1.2.0", "metadata": {"links": {"self": f"{amp.url}/v1/version"}}, "data": {}}


async def test_events_page_newest_first_through_full_next_links(
    http: aiohttp.ClientSession, amp: AmpSim
) -> None:
    status, _, first = await get(http, amp, "/v1/events", {"limit": "100"})
    assert status == 200
    meta = first["metadata"]
    assert meta["results"] == {"total": 230, "current_item_count": 100, "index": 0, "items_per_page": 100}
    assert meta["links"]["next"] == f"{amp.url}/v1/events?limit=100&offset=100"
    assert "prev" not in meta["links"]
    records = await all_events(http, amp, {"limit": "100"})
    keys = [(r["timestamp"], r["timestamp_nanoseconds"]) for r in records]
    assert keys == sorted(keys, reverse=True)
    assert {r["id"] for r in records} == amp.expected_ids()
    assert len(records) == 230


async def test_last_page_has_prev_but_no_next(http: aiohttp.ClientSession, amp: AmpSim) -> None:
    _, _, body = await get(http, amp, "/v1/events", {"limit": "100", "offset": "200"})
    assert body["metadata"]["results"]["current_item_count"] == 30
    assert body["metadata"]["results"]["index"] == 200
    assert body["metadata"]["links"]["prev"] == f"{amp.url}/v1/events?limit=100&offset=100"
    assert "next" not in body["metadata"]["links"]


async def test_records_carry_the_documented_fields(http: aiohttp.ClientSession, amp: AmpSim) -> None:
    records = await all_events(http, amp, {"limit": "500"})
    for r in records:
        assert isinstance(r["id"], int) and r["id"] > 2**62
        assert r["date"] == format_date(r["timestamp"])
        assert {"event_type", "event_type_id", "connector_guid", "group_guids", "computer"} <= set(r)
        assert r["computer"]["links"]["trajectory"].startswith(f"{amp.url}/v1/computers/")
        if r["event_type"] == "Cloud IOC":
            assert set(r["cloud_ioc"]) == {"description", "short_description"}
        if r["event_type"] == "Threat Detected":
            assert set(r["file"]["identity"]) == {"sha256", "sha1", "md5"} and "detection" in r
    assert len({r["event_type"] for r in records}) >= 5


async def test_start_date_is_inclusive_to_the_second(http: aiohttp.ClientSession, amp: AmpSim) -> None:
    records = await all_events(http, amp, {"limit": "500"})
    pivot = records[50]
    since = await all_events(http, amp, {"start_date": pivot["date"], "limit": "500"})
    assert pivot["id"] in {r["id"] for r in since}
    assert all(r["timestamp"] >= pivot["timestamp"] for r in since)
    assert {r["id"] for r in since} == {r["id"] for r in records if r["timestamp"] >= pivot["timestamp"]}


async def test_start_date_plus_offset_survives_the_next_link(
    http: aiohttp.ClientSession, amp: AmpSim
) -> None:
    start = format_date(int(time.time()) - 3 * 3600)
    _, _, body = await get(http, amp, "/v1/events", {"start_date": start, "limit": "10"})
    nxt = body["metadata"]["links"]["next"]
    assert "start_date=" in nxt and "%2B00%3A00" in nxt.replace(":", "%3A")
    _, _, page2 = await get(http, amp, nxt)
    assert all(r["timestamp"] >= int(time.time()) - 3 * 3600 - 1 for r in page2["data"])


async def test_event_type_filter_is_or_within_and_across_criteria(
    http: aiohttp.ClientSession, amp: AmpSim
) -> None:
    both = await all_events(
        http, amp, [("event_type[]", str(THREAT_DETECTED)), ("event_type[]", str(CLOUD_IOC))]
    )
    assert {r["event_type_id"] for r in both} == {THREAT_DETECTED, CLOUD_IOC}
    assert {r["id"] for r in both} == amp.expected_ids(event_types=frozenset({THREAT_DETECTED, CLOUD_IOC}))
    group = both[0]["group_guids"][0]
    narrowed = await all_events(
        http,
        amp,
        [("event_type[]", str(THREAT_DETECTED)), ("group_guid[]", group), ("event_type[]", str(CLOUD_IOC))],
    )
    assert narrowed and all(r["group_guids"] == [group] for r in narrowed)
    assert {r["id"] for r in narrowed} == {r["id"] for r in both if r["group_guids"] == [group]}


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"end_date": "2026-01-01T00:00:00+00:00"}, "Unknown parameter: end_date"),
        ({"event_type[]": "threat"}, "event_type: 'threat' is not a numeric event type id"),
        ({"limit": "-1"}, "limit: must be a non-negative integer"),
        ({"start_date": "yesterday"}, "start_date: invalid ISO 8601 date"),
    ],
    ids=["unknown-param", "non-numeric-type", "negative-limit", "bad-date"],
)
async def test_bad_parameters_get_a_400_naming_them(
    http: aiohttp.ClientSession, amp: AmpSim, params: dict[str, str], detail: str
) -> None:
    status, headers, body = await get(http, amp, "/v1/events", params)
    assert status == 400
    assert body["errors"][0]["error_code"] == 400
    assert detail in body["errors"][0]["details"][0]
    assert "x-ratelimit-remaining" in headers


async def test_event_types_lists_the_numeric_ids(http: aiohttp.ClientSession, amp: AmpSim) -> None:
    status, _, body = await get(http, amp, "/v1/event_types")
    assert status == 200
    assert {t["id"]: t["name"] for t in body["data"]}[THREAT_DETECTED] == "Threat Detected"


async def test_quota_headers_count_down_then_429_until_the_window_resets(
    http: aiohttp.ClientSession, start_sim: Starter
) -> None:
    sim = await start_sim(
        AmpSim(backlog_events=5, live_rate=0, quota_per_hour=3, quota_window_secs=1.5, latency_secs=0)
    )
    remaining = []
    for _ in range(3):
        status, headers, _ = await get(http, sim, "/v1/events")
        assert status == 200
        assert headers["x-ratelimit-limit"] == "3"
        remaining.append(headers["x-ratelimit-remaining"])
        assert 0 <= int(headers["x-ratelimit-reset"]) <= 2
        dt.datetime.fromisoformat(headers["x-ratelimit-resetdate"].replace("Z", "+00:00"))
    assert remaining == ["2", "1", "0"]
    status, headers, body = await get(http, sim, "/v1/events")
    assert status == 429 and headers["x-ratelimit-remaining"] == "0"
    assert body["errors"][0]["error_code"] == 429
    await asyncio.sleep(float(headers["x-ratelimit-reset"]) + 0.05)
    status, headers, _ = await get(http, sim, "/v1/events")
    assert status == 200 and headers["x-ratelimit-remaining"] == "2"
    assert (await stats(http, sim))["rate_limited"] == 1


async def test_documented_header_spelling_on_request(http: aiohttp.ClientSession, start_sim: Starter) -> None:
    sim = await start_sim(AmpSim(backlog_events=1, live_rate=0, header_style="both", latency_secs=0))
    _, headers, _ = await get(http, sim, "/v1/version")
    assert headers["X-Rate-Limit-Remaining"] == headers["x-ratelimit-remaining"]
    only = await start_sim(AmpSim(backlog_events=1, live_rate=0, header_style="x-rate-limit", latency_secs=0))
    _, headers, _ = await get(http, only, "/v1/version")
    names = {k.lower() for k in headers}
    assert "x-rate-limit-reset" in names and "x-ratelimit-reset" not in names


async def test_inserts_between_pages_shift_offsets_so_pages_repeat_records(
    http: aiohttp.ClientSession, start_sim: Starter
) -> None:
    sim = await start_sim(AmpSim(backlog_events=100, live_rate=0, insert_per_request=3, latency_secs=0))
    _, _, first = await get(http, sim, "/v1/events", {"limit": "20"})
    _, _, second = await get(http, sim, first["metadata"]["links"]["next"])
    # Three newer events arrived: page 2 starts with the last three records of page 1.
    assert [r["id"] for r in second["data"][:3]] == [r["id"] for r in first["data"][-3:]]
    assert second["metadata"]["results"]["total"] == first["metadata"]["results"]["total"] + 3


async def test_live_mode_adds_events_until_paused(http: aiohttp.ClientSession, start_sim: Starter) -> None:
    sim = await start_sim(AmpSim(backlog_events=0, live_rate=50, latency_secs=0))
    await asyncio.sleep(0.3)
    async with http.post(f"{sim.url}/sim/control", json={"live": False}) as resp:
        made = (await resp.json())["generated"]
    assert made >= 5
    await asyncio.sleep(0.1)
    assert sim.generated() == made
    assert len(await all_events(http, sim, {"limit": "500"})) == made


async def test_ciscos_pagination_sample_works_unchanged(amp: AmpSim) -> None:
    """Cisco's amp-03-pagination loop (requests, session auth, follow links.next) against the simulator."""

    def paginate() -> list[int]:
        session = requests.session()
        session.auth = (amp.client_id, amp.api_key)
        response_json = session.get(f"{amp.url}/v1/events?limit=50").json()
        ids = [e["id"] for e in response_json["data"]]
        while "next" in response_json["metadata"]["links"]:
            next_url = response_json["metadata"]["links"]["next"]
            response_json = session.get(next_url).json()
            ids += [e["id"] for e in response_json["data"]]
        return ids

    ids = await asyncio.to_thread(paginate)
    assert len(ids) == len(set(ids)) == 230
    assert set(ids) == amp.expected_ids()


def test_logferry_sim_amp_prints_the_credentials(launch: Any) -> None:
    proc = launch("amp", False, "--backlog-events", "3", "--live-rate", "0")
    announced = announcement(proc)
    assert set(announced["credentials"]) == {"client_id", "api_key"}
    session = requests.session()
    session.auth = (announced["credentials"]["client_id"], announced["credentials"]["api_key"])
    assert len(session.get(f"{announced['url']}/v1/events", timeout=10).json()["data"]) == 3
