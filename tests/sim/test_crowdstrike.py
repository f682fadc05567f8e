"""The CrowdStrike Falcon simulator answers as the spec says (crowdstrike.md §2, §3, §9)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from logferry.sim.crowdstrike import CrowdStrikeSim

APP = "logferryTest1"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def bearer(sim: CrowdStrikeSim, http: aiohttp.ClientSession) -> dict[str, str]:
    async with http.post(f"{sim.url}/oauth2/token", data=sim.credentials) as r:
        assert r.status == 201
        body = await r.json()
    return {"Authorization": f"Bearer {body['access_token']}"}


async def discover(sim: CrowdStrikeSim, http: aiohttp.ClientSession, app: str = APP) -> list[dict[str, Any]]:
    async with http.get(
        f"{sim.url}/sensors/entities/datafeed/v2",
        params={"appId": app, "format": "json"},
        headers=await bearer(sim, http),
    ) as r:
        assert r.status == 200
        resources: list[dict[str, Any]] = (await r.json())["resources"]
        return resources


async def read_events(resp: aiohttp.ClientResponse, n: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < n:
        line = await asyncio.wait_for(resp.content.readline(), timeout=5)
        assert line, "stream ended early"
        if line.strip():
            events.append(orjson.loads(line))
    return events


def feed_headers(resource: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Token {resource['sessionToken']['token']}", "Accept": "application/json"}


async def test_token_is_201_with_a_30_minute_lifetime_and_401_names_the_problem(
    http: aiohttp.ClientSession,
) -> None:
    async with CrowdStrikeSim() as sim:
        async with http.post(f"{sim.url}/oauth2/token", data=sim.credentials) as r:
            assert r.status == 201
            body = await r.json()
            assert body["token_type"] == "bearer" and body["expires_in"] == 1799
            assert r.headers["X-Ratelimit-Limit"] == "6000"
        wrong = {**sim.credentials, "client_secret": "nope"}
        async with http.post(f"{sim.url}/oauth2/token", data=wrong) as r:
            assert r.status == 401
            assert (await r.json())["errors"] == [{"code": 401, "message": "access denied, invalid client"}]
        async with http.post(f"{sim.url}/oauth2/token", data={**sim.credentials, "member_cid": "x"}) as r:
            assert r.status == 403


async def test_discover_returns_one_resource_per_partition(http: aiohttp.ClientSession) -> None:
    async with CrowdStrikeSim(partitions=3, refresh_interval_secs=1800) as sim:
        resources = await discover(sim, http)
        assert len(resources) == 3
        for p, res in enumerate(resources):
            assert res["dataFeedURL"] == f"{sim.url}/sensors/entities/datafeed/v1/{p}?appId={APP}"
            assert res["refreshActiveSessionURL"].endswith(
                f"/datafeed-actions/v1/{p}?action_name=refresh_active_stream_session&appId={APP}"
            )
            assert res["refreshActiveSessionInterval"] == 1800
            assert res["sessionToken"]["expiration"].endswith("Z")
        async with http.get(
            f"{sim.url}/sensors/entities/datafeed/v2",
            params={"appId": "bad-id!"},
            headers=await bearer(sim, http),
        ) as r:
            assert r.status == 400
        async with http.get(f"{sim.url}/sensors/entities/datafeed/v2", params={"appId": APP}) as r:
            assert r.status == 401


async def test_stream_honours_offset_inclusively_by_default_and_exclusively_by_option(
    http: aiohttp.ClientSession,
) -> None:
    for inclusive, first in ((True, 51), (False, 52)):
        async with CrowdStrikeSim(
            partitions=1, backlog_events=100, first_offset=1, offset_inclusive=inclusive
        ) as sim:
            res = (await discover(sim, http))[0]
            async with http.get(res["dataFeedURL"] + "&offset=51", headers=feed_headers(res)) as r:
                assert r.status == 200 and r.headers["Transfer-Encoding"] == "chunked"
                events = await read_events(r, 3)
            assert [e["metadata"]["offset"] for e in events] == [first, first + 1, first + 2]
            assert set(events[0]) == {"metadata", "event"}
            assert isinstance(events[0]["metadata"]["eventCreationTime"], int)


async def test_stream_refuses_a_wrong_token_and_a_second_consumer_of_the_same_app_id(
    http: aiohttp.ClientSession,
) -> None:
    async with CrowdStrikeSim(partitions=1) as sim:
        res = (await discover(sim, http))[0]
        async with http.get(res["dataFeedURL"], headers={"Authorization": "Token wrong"}) as r:
            assert r.status == 401
        async with http.get(res["dataFeedURL"], headers=feed_headers(res)) as first:
            await read_events(first, 1)
            async with http.get(res["dataFeedURL"], headers=feed_headers(res)) as second:
                assert second.status == 409
        assert sim.refused_streams == 1


async def test_refresh_needs_an_active_consumer_and_extends_the_session(http: aiohttp.ClientSession) -> None:
    async with CrowdStrikeSim(partitions=1, refresh_interval_secs=1, keepalive_secs=0.2) as sim:
        res = (await discover(sim, http))[0]
        headers = await bearer(sim, http)
        async with http.post(res["refreshActiveSessionURL"], headers=headers) as r:
            assert r.status == 404
            assert (await r.json())["errors"][0]["message"] == "no active stream session found"
        async with http.get(res["dataFeedURL"], headers=feed_headers(res)) as stream:
            await read_events(stream, 10)
            for _ in range(2):
                await asyncio.sleep(0.6)
                async with http.post(res["refreshActiveSessionURL"], headers=headers) as r:
                    assert r.status == 200
            assert sim.sessions_expired == 0
            await stream.read()  # without refreshes the session ends the stream (EOF)
        assert sim.sessions_expired == 1
        assert len(sim.refresh_log) == 2


async def test_drop_after_events_ends_the_stream_and_the_harness_drops_on_demand(
    http: aiohttp.ClientSession,
) -> None:
    async with CrowdStrikeSim(partitions=2, backlog_events=100, drop_after_events=30) as sim:
        res = await discover(sim, http)
        async with http.get(res[0]["dataFeedURL"], headers=feed_headers(res[0])) as r:
            lines = [ln for ln in (await r.read()).split(b"\n") if ln.strip()]
        assert len(lines) == 30
    async with CrowdStrikeSim(partitions=1, backlog_events=0, keepalive_secs=0.1) as sim:
        res = await discover(sim, http)
        async with http.get(res[0]["dataFeedURL"], headers=feed_headers(res[0])) as r:
            assert await asyncio.wait_for(r.content.readline(), 2) == b"\n"  # keepalive on an idle stream
            async with http.post(f"{sim.url}/sim/drop", json={"partition": 0, "mode": "reset"}) as d:
                assert (await d.json())["dropped"] == 1
            with pytest.raises(aiohttp.ClientPayloadError):
                await asyncio.wait_for(r.read(), 2)


async def test_malformed_lines_event_type_filter_and_empty_discover(http: aiohttp.ClientSession) -> None:
    async with CrowdStrikeSim(
        partitions=1, backlog_events=20, malformed_every=5, drop_after_events=20, empty_discover_every=2
    ) as sim:
        res = (await discover(sim, http))[0]
        async with http.get(res["dataFeedURL"], headers=feed_headers(res)) as r:
            lines = [ln for ln in (await r.read()).split(b"\n") if ln.strip()]
        bad = [ln for ln in lines if not ln.startswith(b'{"metadata":{')]
        assert len(lines) == 24 and len(bad) == 4
        async with http.get(
            f"{sim.url}/sensors/entities/datafeed/v2", params={"appId": APP}, headers=await bearer(sim, http)
        ) as r:
            assert r.status == 200 and await r.read() == b""
        res = (await discover(sim, http))[0]
        async with http.get(
            res["dataFeedURL"] + "&eventType=DetectionSummaryEvent", headers=feed_headers(res)
        ) as r:
            events = [
                orjson.loads(ln) for ln in (await r.read()).split(b"\n") if ln.startswith(b'{"metadata":{')
            ]
        assert events and {e["metadata"]["eventType"] for e in events} == {"DetectionSummaryEvent"}


async def test_api_budget_answers_429_without_retry_after(http: aiohttp.ClientSession) -> None:
    async with CrowdStrikeSim(requests_per_minute=3) as sim:
        statuses = []
        for _ in range(4):
            async with http.post(f"{sim.url}/oauth2/token", data=sim.credentials) as r:
                statuses.append(r.status)
                last = r.headers
        assert statuses == [201, 201, 201, 429]
        assert last["X-Ratelimit-Remaining"] == "0" and "Retry-After" not in last


async def test_live_mode_streams_new_events_over_tls(http: aiohttp.ClientSession) -> None:
    sim = CrowdStrikeSim(partitions=1, backlog_events=5, live_rate=50.0)
    await sim.start(tls=True)
    try:
        assert sim.url.startswith("https://") and sim.ca_file
        ctx = ssl.create_default_context(cafile=sim.ca_file)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as tls_http:
            res = (await discover(sim, tls_http))[0]
            async with tls_http.get(res["dataFeedURL"], headers=feed_headers(res)) as r:
                events = await read_events(r, 25)
        assert [e["metadata"]["offset"] for e in events] == list(range(1, 26))
    finally:
        await sim.stop()


async def test_alerts_api_pages_with_after_in_updated_timestamp_order(http: aiohttp.ClientSession) -> None:
    async with CrowdStrikeSim(alerts=25) as sim:
        headers = await bearer(sim, http)
        url = f"{sim.url}/alerts/combined/alerts/v1"
        since = sim.alert_log.alert(10)["updated_timestamp"]
        seen: list[dict[str, Any]] = []
        body: dict[str, Any] = {
            "limit": 4,
            "sort": "updated_timestamp|asc",
            "filter": f"updated_timestamp:>='{since}'",
        }
        while True:
            async with http.post(url, json=body, headers=headers) as r:
                assert r.status == 200
                page = await r.json()
            seen.extend(page["resources"])
            after = page["meta"]["pagination"].get("after")
            if not after:
                break
            body["after"] = after
        # Alerts come in pairs sharing a timestamp: ">=" starts at the pair of alert 10.
        assert [a["id"] for a in seen] == [f"ind:{i:012d}" for i in range(10, 25)]
        stamps = [a["updated_timestamp"] for a in seen]
        assert stamps == sorted(stamps) and len(stamps[0].split(".")[1]) == 10  # nanoseconds and Z
        strict = {"limit": 100, "filter": f"updated_timestamp:>'{since}'"}
        async with http.post(url, json=strict, headers=headers) as r:
            assert (await r.json())["resources"][0]["id"] == "ind:000000000012"
        async with http.post(url, json={"limit": 0}, headers=headers) as r:
            assert r.status == 400
