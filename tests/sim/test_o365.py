"""The Office 365 Management Activity API simulator answers as the spec says (office365.md Part A)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from yarl import URL

from logferry.sim.o365 import O365Sim
from logferry.sim.o365_content import BlobRef

from .helpers import stats

RESOURCE = "https://manage.office.com"


@pytest.fixture
async def sim() -> AsyncIterator[O365Sim]:
    async with O365Sim(tenants=2, backlog_secs=3 * 3600, blob_interval_secs=300, list_page_size=10) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def token(sim: O365Sim, tenant: int = 0, resource: str = RESOURCE) -> dict[str, str]:
    assert sim.entra is not None
    return {"Authorization": f"Bearer {sim.entra.issue_token(resource, tenant_id=sim.tenant_ids[tenant])}"}


def feed(sim: O365Sim, tenant: int = 0) -> str:
    return f"{sim.url}/api/v1.0/{sim.tenant_ids[tenant]}/activity/feed"


def ago(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S")


async def call(
    http: aiohttp.ClientSession, method: str, url: str, headers: dict[str, str], **params: str
) -> tuple[int, Any, Any]:
    async with http.request(method, url, headers=headers, params=params) as r:
        body = await r.json(content_type=None) if r.content_length != 0 else None
        return r.status, body, r.headers


async def start(http: aiohttp.ClientSession, sim: O365Sim, ct: str, tenant: int = 0) -> tuple[int, Any]:
    status, body, _ = await call(
        http, "POST", f"{feed(sim, tenant)}/subscriptions/start", token(sim, tenant), contentType=ct,
        PublisherIdentifier=sim.tenant_ids[0],
    )  # fmt: skip
    return status, body


async def test_subscription_start_then_already_enabled_then_listed(
    http: aiohttp.ClientSession, sim: O365Sim
) -> None:
    assert await start(http, sim, "Audit.Exchange") == (
        200,
        {"contentType": "Audit.Exchange", "status": "enabled", "webhook": None},
    )
    status, body = await start(http, sim, "Audit.Exchange")
    assert (status, body["error"]["code"]) == (400, "AF20024")
    status, subs, _ = await call(http, "GET", f"{feed(sim)}/subscriptions/list", token(sim))
    assert subs == [{"contentType": "Audit.Exchange", "status": "enabled", "webhook": None}]
    status, body = await start(http, sim, "Audit.Nothing")
    assert (status, body["error"]["code"]) == (400, "AF20020")


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"startTime": ago(30)}, "AF20030"),  # only one of the two
        ({"startTime": ago(30), "endTime": ago(1)}, "AF20030"),  # more than 24 h apart
        ({"startTime": ago(8 * 24), "endTime": ago(8 * 24 - 1)}, "AF20030"),  # older than 7 days
        ({"startTime": ago(1), "endTime": ago(2)}, "AF20055"),  # start after end
        ({"startTime": "yesterday", "endTime": ago(1)}, "AF20002"),
        ({"startTime": ago(2), "endTime": ago(1), "nextPage": "garbage"}, "AF20031"),
    ],
)
async def test_content_listing_enforces_the_window_rules(
    http: aiohttp.ClientSession, sim: O365Sim, params: dict[str, str], code: str
) -> None:
    await start(http, sim, "Audit.General")
    status, body, _ = await call(
        http, "GET", f"{feed(sim)}/subscriptions/content", token(sim), contentType="Audit.General", **params
    )
    assert (status, body["error"]["code"]) == (400, code)


async def test_listing_without_subscription_is_af20022(http: aiohttp.ClientSession, sim: O365Sim) -> None:
    status, body, _ = await call(
        http, "GET", f"{feed(sim)}/subscriptions/content", token(sim), contentType="DLP.All"
    )
    assert (status, body["error"]["code"]) == (400, "AF20022")


async def test_pages_chain_by_next_page_uri_and_blobs_hold_records(
    http: aiohttp.ClientSession, sim: O365Sim
) -> None:
    await start(http, sim, "Audit.SharePoint")
    url: str | None = f"{feed(sim)}/subscriptions/content"
    params = {"contentType": "Audit.SharePoint", "startTime": ago(3), "endTime": ago(0)}
    items: list[dict[str, Any]] = []
    pages = 0
    while url is not None:
        status, body, headers = await call(http, "GET", url, token(sim), **params)
        assert status == 200
        items += body
        pages += 1
        url, params = headers.get("NextPageUri"), {}
    assert pages >= 3 and len(items) >= 30
    assert len({i["contentId"] for i in items}) == len(items)
    first = items[0]
    assert set(first) == {"contentType", "contentId", "contentUri", "contentCreated", "contentExpiration"}
    status, records, _ = await call(http, "GET", first["contentUri"], token(sim), PublisherIdentifier="p")
    assert status == 200 and records
    rec = records[0]
    assert {"CreationTime", "Id", "Operation", "OrganizationId", "RecordType", "Workload"} <= set(rec)
    assert rec["OrganizationId"] == sim.tenant_ids[0]
    assert not rec["CreationTime"].endswith("Z"), "CreationTime carries no time zone suffix"


async def test_blob_errors_forged_foreign_and_unborn(http: aiohttp.ClientSession, sim: O365Sim) -> None:
    await start(http, sim, "Audit.Exchange")
    _, items, _ = await call(
        http, "GET", f"{feed(sim)}/subscriptions/content", token(sim),
        contentType="Audit.Exchange", startTime=ago(2), endTime=ago(0),
    )  # fmt: skip
    uri = URL(items[0]["contentUri"])
    forged = str(uri.with_name(uri.name[:-1] + ("0" if uri.name[-1] != "0" else "1")))
    status, body, _ = await call(http, "GET", forged, token(sim))
    assert (status, body["error"]["code"]) == (400, "AF20052")
    # Another tenant's token for this tenant's URL.
    status, body, _ = await call(http, "GET", str(uri), token(sim, tenant=1))
    assert (status, body["error"]["code"]) == (401, "AF20010")
    ref = sim.content.parse_content_id(uri.name)
    assert ref is not None
    unborn = sim.content.content_id(BlobRef(ref.tenant, ref.content_type, ref.k + 10_000))
    status, body, _ = await call(http, "GET", f"{feed(sim)}/audit/{unborn}", token(sim))
    assert (status, body["error"]["code"]) == (404, "AF20050")


async def test_expired_blob_is_af20051(http: aiohttp.ClientSession) -> None:
    async with O365Sim(backlog_secs=3600, blob_interval_secs=300, expired_ratio=1.0) as sim:
        await start(http, sim, "Audit.Exchange")
        _, items, _ = await call(
            http, "GET", f"{feed(sim)}/subscriptions/content", token(sim),
            contentType="Audit.Exchange", startTime=ago(1), endTime=ago(0),
        )  # fmt: skip
        assert items and all(
            i["contentExpiration"] < i["contentCreated"].replace("T", "U") for i in items[:0]
        )
        status, body, _ = await call(http, "GET", items[0]["contentUri"], token(sim))
        assert (status, body["error"]["code"]) == (400, "AF20051")


async def test_wrong_audience_is_refused(http: aiohttp.ClientSession, sim: O365Sim) -> None:
    status, body, _ = await call(
        http, "GET", f"{feed(sim)}/subscriptions/list", token(sim, resource="https://graph.microsoft.com")
    )
    assert status == 401 and "denied" in body["Message"]


async def test_throttling_is_403_af429_per_publisher_and_shared_without_one(
    http: aiohttp.ClientSession,
) -> None:
    async with O365Sim(requests_per_minute=3, shared_requests_per_minute=2, throttle_window_secs=60) as sim:
        url = f"{feed(sim)}/subscriptions/list"
        codes = [(await call(http, "GET", url, token(sim), PublisherIdentifier="a"))[0] for _ in range(4)]
        assert codes == [200, 200, 200, 403]
        # Another publisher has its own budget; no publisher shares a small pool.
        assert (await call(http, "GET", url, token(sim), PublisherIdentifier="b"))[0] == 200
        shared = [(await call(http, "GET", url, token(sim)))[0] for _ in range(3)]
        assert shared == [200, 200, 403]
        _status, body, _ = await call(http, "GET", url, token(sim))
        assert body["error"]["code"] == "AF429" and "PublisherId=" in body["error"]["message"]
        st = await stats(http, sim)
        assert st["throttled"] == 3 and st["requests_without_publisher"] == 4
