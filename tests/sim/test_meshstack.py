from __future__ import annotations

import asyncio
import base64
import re
import time
from typing import Any

import aiohttp
import pytest
import requests

from logferry.sim.meshstack import MEDIA_TYPE, MeshStackSim

from .conftest import Starter
from .helpers import mesh_list, mesh_token, stats

LIST = "/api/meshobjects/mesheventlogs"
TOKEN_URL_PATH = "/auth/realms/meshfed/protocol/openid-connect/token"
CREATED_AT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


@pytest.fixture
async def mesh(start_sim: Starter) -> MeshStackSim:
    sim: MeshStackSim = await start_sim(MeshStackSim(backlog_events=120, live_rate=0, latency_secs=0))
    return sim


def _form(sim: MeshStackSim, **overrides: str) -> dict[str, str]:
    creds = sim.credentials
    form = {
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
        "grant_type": "client_credentials",
    }
    return {**form, **overrides}


async def _all_pages(
    http: aiohttp.ClientSession, sim: MeshStackSim, token: str, size: int, **params: Any
) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    page = 0
    while True:
        status, body = await mesh_list(http, sim, token, page=page, size=size, **params)
        assert status == 200
        records += body.get("_embedded", {}).get("meshEventLogs", [])
        if body["page"]["totalPages"] <= page + 1:
            return records
        page += 1


# --- login -------------------------------------------------------------------------------------


async def test_json_login_returns_token(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    creds = mesh.credentials
    body = {"clientId": creds["client_id"], "clientSecret": creds["client_secret"]}
    async with http.post(f"{mesh.url}/api/login", json=body) as resp:
        assert resp.status == 200
        token = await resp.json()
    assert set(token) == {
        "access_token", "expires_in", "refresh_expires_in", "token_type", "not-before-policy", "scope",
    }  # fmt: skip
    assert token["expires_in"] == 300
    assert token["refresh_expires_in"] == 0
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "profile email"


async def test_json_login_with_bad_secret_is_401(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    body = {"clientId": mesh.credentials["client_id"], "clientSecret": "wrong"}
    async with http.post(f"{mesh.url}/api/login", json=body) as resp:
        assert resp.status == 401
        assert (await resp.json())["status"] == 401


async def test_form_login_redirects_307_to_keycloak_token_url(
    http: aiohttp.ClientSession, mesh: MeshStackSim
) -> None:
    async with http.post(f"{mesh.url}/api/login", data=_form(mesh), allow_redirects=False) as resp:
        assert resp.status == 307
        location = resp.headers["Location"]
    assert location == f"{mesh.url}{TOKEN_URL_PATH}"
    async with http.post(location, data=_form(mesh)) as resp:
        assert resp.status == 200
        assert (await resp.json())["token_type"] == "Bearer"


async def test_form_login_token_when_client_follows_307_with_body(
    http: aiohttp.ClientSession, mesh: MeshStackSim
) -> None:
    async with http.post(f"{mesh.url}/api/login", data=_form(mesh)) as resp:
        assert resp.status == 200
        assert resp.history[0].status == 307
    # requests keeps method and body on 307 as well (meshstack.md §1.1 leaves this to a test).
    reply = await asyncio.to_thread(requests.post, f"{mesh.url}/api/login", data=_form(mesh), timeout=10)
    assert reply.status_code == 200
    assert "access_token" in reply.json()


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_secret": "wrong"}, 401, "unauthorized_client"),
    ],
    ids=["wrong_grant_type", "bad_secret"],
)
async def test_keycloak_token_url_refuses(
    http: aiohttp.ClientSession, mesh: MeshStackSim, form: dict[str, str], status: int, error: str
) -> None:
    async with http.post(f"{mesh.url}{TOKEN_URL_PATH}", data=_form(mesh, **form)) as resp:
        assert resp.status == status
        assert (await resp.json())["error"] == error


async def test_form_login_with_wrong_grant_type_is_400(
    http: aiohttp.ClientSession, mesh: MeshStackSim
) -> None:
    async with http.post(f"{mesh.url}/api/login", data=_form(mesh, grant_type="password")) as resp:
        assert resp.status == 400


# --- auth and media type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "accept", [None, "application/json", "application/hal+json"], ids=["none", "json", "hal"]
)
async def test_list_without_versioned_media_type_is_406(
    http: aiohttp.ClientSession, mesh: MeshStackSim, accept: str | None
) -> None:
    headers = {"Authorization": f"Bearer {await mesh_token(http, mesh)}"}
    if accept:
        headers["Accept"] = accept
    async with http.get(f"{mesh.url}{LIST}", headers=headers, skip_auto_headers=["Accept"]) as resp:
        assert resp.status == 406


async def test_list_without_credentials_is_401(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    async with http.get(f"{mesh.url}{LIST}", headers={"Accept": MEDIA_TYPE}) as resp:
        assert resp.status == 401


async def test_list_accepts_basic_auth_api_user(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    creds = mesh.credentials
    basic = base64.b64encode(f"{creds['api_user']}:{creds['api_password']}".encode()).decode()
    headers = {"Accept": MEDIA_TYPE, "Authorization": f"Basic {basic}"}
    async with http.get(f"{mesh.url}{LIST}", headers=headers) as resp:
        assert resp.status == 200
        assert resp.content_type == MEDIA_TYPE


async def test_expired_token_is_401(http: aiohttp.ClientSession, start_sim: Starter) -> None:
    sim = await start_sim(MeshStackSim(backlog_events=5, live_rate=0, token_lifetime_secs=1, latency_secs=0))
    token = await mesh_token(http, sim)
    assert (await mesh_list(http, sim, token))[0] == 200
    await asyncio.sleep(1.05)
    status, body = await mesh_list(http, sim, token)
    assert status == 401
    assert body["message"] == "token expired"


# --- paging and windows --------------------------------------------------------------------------


async def test_pages_cover_every_event_once_in_order(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    token = await mesh_token(http, mesh)
    status, first = await mesh_list(http, mesh, token, size=50)
    assert status == 200
    assert first["page"] == {"size": 50, "totalElements": 120, "totalPages": 3, "number": 0}
    records = await _all_pages(http, mesh, token, size=50)
    keys = [(r["metadata"]["createdAt"], r["metadata"]["uuid"]) for r in records]
    assert len(set(keys)) == 120
    assert keys == sorted(keys)


async def test_links_only_when_more_than_one_page(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    token = await mesh_token(http, mesh)
    _, middle = await mesh_list(http, mesh, token, size=50, page=1, **{"from": "2000-01-01T00:00:00Z"})
    assert list(middle["_links"]) == ["first", "prev", "self", "next", "last"]
    assert middle["_links"]["next"]["href"] == (
        f"{mesh.url}{LIST}?from=2000-01-01T00:00:00Z&page=2&size=50&sort=id,asc"
    )
    _, last = await mesh_list(http, mesh, token, size=50, page=2)
    assert "next" not in last["_links"]
    _, single = await mesh_list(http, mesh, token, size=500)
    assert "_links" not in single
    assert single["page"]["totalPages"] == 1


async def test_size_above_1000_is_lowered(http: aiohttp.ClientSession, start_sim: Starter) -> None:
    sim = await start_sim(MeshStackSim(backlog_events=1500, live_rate=0, latency_secs=0))
    token = await mesh_token(http, sim)
    status, body = await mesh_list(http, sim, token, size=5000)
    assert status == 200
    assert body["page"] == {"size": 1000, "totalElements": 1500, "totalPages": 2, "number": 0}
    assert len(body["_embedded"]["meshEventLogs"]) == 1000
    assert "size=1000" in body["_links"]["next"]["href"]


async def test_default_page_size_is_50(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    _, body = await mesh_list(http, mesh, await mesh_token(http, mesh))
    assert body["page"]["size"] == 50
    assert len(body["_embedded"]["meshEventLogs"]) == 50


async def test_empty_result_omits_embedded(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    token = await mesh_token(http, mesh)
    status, body = await mesh_list(http, mesh, token, **{"from": "2099-01-01T00:00:00Z"})
    assert status == 200
    assert body == {"page": {"size": 50, "totalElements": 0, "totalPages": 0, "number": 0}}


async def test_from_is_inclusive_and_until_exclusive(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    token = await mesh_token(http, mesh)
    everything = await _all_pages(http, mesh, token, size=1000)
    target = everything[60]["metadata"]
    created = target["createdAt"]  # e.g. 2026-01-01T10:00:00.123456Z

    _, from_it = await mesh_list(http, mesh, token, size=1000, **{"from": created})
    assert from_it["_embedded"]["meshEventLogs"][0]["metadata"]["uuid"] == target["uuid"]
    _, until_it = await mesh_list(http, mesh, token, size=1000, until=created)
    assert target["uuid"] not in {r["metadata"]["uuid"] for r in until_it["_embedded"]["meshEventLogs"]}
    assert until_it["page"]["totalElements"] + from_it["page"]["totalElements"] == 120

    # Whole-second bounds, as the Sentinel poller sends them (yyyy-MM-ddTHH:mm:ssZ).
    second = created[:19] + "Z"
    _, window = await mesh_list(http, mesh, token, size=1000, **{"from": second, "until": second})
    assert window["page"]["totalElements"] == 0
    assert "_embedded" not in window


async def test_invalid_timestamp_is_400(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    status, _ = await mesh_list(http, mesh, await mesh_token(http, mesh), **{"from": "yesterday"})
    assert status == 400


# --- records -------------------------------------------------------------------------------------


async def test_records_have_the_vendor_shape(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    records = await _all_pages(http, mesh, await mesh_token(http, mesh), size=1000)
    event_types = set()
    for r in records:
        assert set(r) == {"kind", "apiVersion", "metadata", "spec", "_links"}
        assert r["kind"] == "meshEventLog"
        assert r["apiVersion"] == "v1-preview"
        assert CREATED_AT.match(r["metadata"]["createdAt"])
        spec = r["spec"]
        assert {"title", "eventType", "description", "workspaceRef", "content", "author"} <= set(spec)
        assert isinstance(spec["content"], dict)
        assert ("previousContent" in spec) == (spec["eventType"] == "Changed")
        assert spec["author"]["authorType"] in {"ApiKey", "ApiUser", "System", "Unknown", "User"}
        if spec["workspaceRef"] is not None:
            assert spec["workspaceRef"]["kind"] == "meshWorkspace"
        assert r["_links"]["self"]["href"] == f"{mesh.url}{LIST}/{r['metadata']['uuid']}"
        event_types.add(spec["eventType"])
    assert any(r["spec"]["workspaceRef"] is None for r in records)
    assert {"Created", "Changed", "Requested"} <= event_types


async def test_single_record_by_uuid(http: aiohttp.ClientSession, mesh: MeshStackSim) -> None:
    token = await mesh_token(http, mesh)
    _, page = await mesh_list(http, mesh, token, size=1)
    record = page["_embedded"]["meshEventLogs"][0]
    headers = {"Authorization": f"Bearer {token}", "Accept": MEDIA_TYPE}
    async with http.get(record["_links"]["self"]["href"], headers=headers) as resp:
        assert resp.status == 200
        assert await resp.json(content_type=None) == record
    async with http.get(f"{mesh.url}{LIST}/00000000-0000-4000-8000-000000000000", headers=headers) as resp:
        assert resp.status == 404


@pytest.mark.parametrize(
    ("params", "check"),
    [
        ({"eventType": "Changed"}, lambda s: s["eventType"] == "Changed" and "previousContent" in s),
        ({"title": "building block"}, lambda s: "Building Block" in s["title"]),
        (
            {"workspaceIdentifier": "likvid-bank"},
            lambda s: (s["workspaceRef"] or {}).get("name") == "likvid-bank",
        ),
        ({"authorType": "System"}, lambda s: s["author"]["authorType"] == "System"),
    ],
    ids=["eventType", "title_contains", "workspaceIdentifier", "authorType"],
)
async def test_filters_select_matching_events(
    http: aiohttp.ClientSession, mesh: MeshStackSim, params: dict[str, str], check: Any
) -> None:
    records = await _all_pages(http, mesh, await mesh_token(http, mesh), size=1000, **params)
    assert records
    assert all(check(r["spec"]) for r in records)
    assert len(records) < 120


async def test_same_seed_gives_same_events(http: aiohttp.ClientSession, start_sim: Starter) -> None:
    async def uuids(seed: int) -> list[str]:
        sim = await start_sim(MeshStackSim(seed=seed, backlog_events=60, live_rate=0, latency_secs=0))
        records = await _all_pages(http, sim, await mesh_token(http, sim), size=100)
        return [r["metadata"]["uuid"] for r in records]

    first, again, other = await uuids(7), await uuids(7), await uuids(8)
    assert first == again
    assert len(first) == 60
    assert set(first).isdisjoint(other)


# --- live generation -------------------------------------------------------------------------------


async def test_live_events_appear_as_time_passes_and_pause(
    http: aiohttp.ClientSession, start_sim: Starter
) -> None:
    started = time.monotonic()
    sim = await start_sim(MeshStackSim(backlog_events=0, live_rate=50, latency_secs=0))
    await asyncio.sleep(0.3)
    token = await mesh_token(http, sim)
    records = await _all_pages(http, sim, token, size=1000)
    now = time.time()
    # 50 a second for as long as it ran, however slow the machine made the requests.
    assert 5 <= len(records) <= 50 * (time.monotonic() - started) + 5
    created = [r["metadata"]["createdAt"] for r in records]
    assert created == sorted(created)
    assert max(created) <= time.strftime("%Y-%m-%dT%H:%M:%S.999999Z", time.gmtime(now))

    async with http.post(f"{sim.url}/sim/control", json={"live": False}) as resp:
        assert resp.status == 200
    paused = (await stats(http, sim))["generated"]
    await asyncio.sleep(0.1)
    assert (await stats(http, sim))["generated"] == paused
    async with http.post(f"{sim.url}/sim/control", json={"live": True}) as resp:
        assert resp.status == 200
    await asyncio.sleep(0.1)
    assert (await stats(http, sim))["generated"] > paused


# --- rate limits ---------------------------------------------------------------------------------


async def test_two_concurrent_requests_with_one_key_get_429(
    http: aiohttp.ClientSession, start_sim: Starter
) -> None:
    sim = await start_sim(MeshStackSim(backlog_events=10, live_rate=0, latency_secs=0.2))
    token = await mesh_token(http, sim)
    headers = {"Authorization": f"Bearer {token}", "Accept": MEDIA_TYPE}

    async def get() -> tuple[int, str | None]:
        async with http.get(f"{sim.url}{LIST}", headers=headers) as resp:
            return resp.status, resp.headers.get("Retry-After")

    results = sorted(await asyncio.gather(get(), get()), key=lambda r: r[0])
    assert results == [(200, None), (429, "1")]
    assert (await stats(http, sim))["rate_limited"] == 1


async def test_more_than_max_rps_per_key_gets_429(http: aiohttp.ClientSession, start_sim: Starter) -> None:
    sim = await start_sim(MeshStackSim(backlog_events=10, live_rate=0, latency_secs=0, max_rps_per_key=3))
    token = await mesh_token(http, sim)
    statuses = [(await mesh_list(http, sim, token))[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    assert (await stats(http, sim))["requests"] == {"200": 4, "429": 2}  # 3 lists + the login
