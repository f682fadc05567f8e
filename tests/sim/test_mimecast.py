"""The Mimecast simulator answers like the vendor: auth of both generations, paging, files, limits."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gzip
import io
import uuid
import zipfile
from typing import Any

import aiohttp
import orjson
import pytest

from logferry.sim.mimecast import AUDIT_PATH, BATCH_PATH, LEGACY_PATH, MimecastSim
from logferry.sim.mimecast_auth import sign

#: Inputs from mimecast.md §2 (the documented date layout and path); the signature was computed
#: independently with ``openssl dgst -sha1 -mac HMAC -macopt hexkey:… -binary | base64``.
VECTOR = {
    "secret_key_b64": base64.b64encode(b"logferry-test-secret-key-0123456789").decode(),
    "date": "Tue, 24 Nov 2015 12:50:11 UTC",
    "request_id": "8a1f5e0c-3b2d-4c6e-9f7a-1b2c3d4e5f60",
    "path": "/api/audit/get-audit-events",
    "app_key": "2f9b5c1e-7d4a-4e8b-a1c3-5d6e7f8a9b0c",
}
VECTOR_SIGNATURE = "ZHOQogozG/A5xyJt9/asc/P43nE="
_NOW = dt.datetime.now(dt.UTC)
#: A window covering every simulated event, inside the API's 60-day lookback.
RECENT = ((_NOW - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S+0000"), "2100-01-01T00:00:00+0000")
RECENT_Z = ((_NOW - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"), "2100-01-01T00:00:00-0700")


def test_signature_matches_the_independent_vector() -> None:
    assert sign(**VECTOR) == VECTOR_SIGNATURE


def hmac_headers(
    sim: MimecastSim, path: str, *, req_id: str | None = None, key: str | None = None
) -> dict[str, str]:
    c = sim.credentials
    date = "Sun, 22 Nov 2026 04:00:00 UTC"
    rid = req_id or str(uuid.uuid4())
    sig = sign(key or c["secret_key"], date, rid, path, c["app_key"])
    return {
        "x-mc-date": date,
        "x-mc-req-id": rid,
        "x-mc-app-id": c["app_id"],
        "Authorization": f"MC {c['access_key']}:{sig}",
    }


async def token(s: aiohttp.ClientSession, sim: MimecastSim) -> str:
    c = sim.credentials
    form = {
        "grant_type": "client_credentials",
        "client_id": c["client_id"],
        "client_secret": c["client_secret"],
    }
    async with s.post(f"{sim.url}/oauth/token", data=form) as r:
        assert r.status == 200
        body = await r.json()
        assert body["expires_in"] == 1799 and body["token_type"] == "Bearer"
        return str(body["access_token"])


def audit_body(start: str, end: str, size: int = 100, token: str | None = None) -> dict[str, Any]:
    pagination: dict[str, Any] = {"pageSize": size}
    if token:
        pagination["pageToken"] = token
    return {"meta": {"pagination": pagination}, "data": [{"startDateTime": start, "endDateTime": end}]}


async def test_hmac_signed_requests_pass_and_wrong_or_replayed_ones_get_401() -> None:
    async with MimecastSim(audit_events=10) as sim, aiohttp.ClientSession() as s:
        body = audit_body(*RECENT)
        headers = hmac_headers(sim, AUDIT_PATH)
        async with s.post(sim.url + AUDIT_PATH, json=body, headers=headers) as r:
            assert r.status == 200
            assert len((await r.json())["data"]) == 10
        async with s.post(sim.url + AUDIT_PATH, json=body, headers=headers) as r:
            assert r.status == 401
            assert (await r.json())["fail"][0]["errors"][0]["code"] == "err_xdk_request_id_reused"
        wrong = hmac_headers(sim, AUDIT_PATH, key=base64.b64encode(b"another key").decode())
        async with s.post(sim.url + AUDIT_PATH, json=body, headers=wrong) as r:
            assert r.status == 401
            assert (await r.json())["fail"][0]["errors"][0]["code"] == "err_xdk_signature_invalid"
        # The signature covers the path: a signature for another path is refused.
        async with s.post(sim.url + AUDIT_PATH, json=body, headers=hmac_headers(sim, LEGACY_PATH)) as r:
            assert r.status == 401


async def test_expired_binding_answers_418_until_basic_cloud_login() -> None:
    async with MimecastSim(audit_events=1) as sim, aiohttp.ClientSession() as s:
        c = sim.credentials
        sim.hmac.expire_binding()
        body = audit_body(*RECENT)
        async with s.post(sim.url + AUDIT_PATH, json=body, headers=hmac_headers(sim, AUDIT_PATH)) as r:
            assert r.status == 418
        basic = base64.b64encode(f"{c['email']}:{c['password']}".encode()).decode()
        login = {"data": [{"userName": c["email"], "accessKey": c["access_key"]}]}
        bad = base64.b64encode(f"{c['email']}:wrong".encode()).decode()
        async with s.post(
            f"{sim.url}/api/login/login",
            json=login,
            headers={"Authorization": f"Basic-Cloud {bad}", "x-mc-app-id": c["app_id"]},
        ) as r:
            assert r.status == 401
        async with s.post(
            f"{sim.url}/api/login/login",
            json=login,
            headers={"Authorization": f"Basic-Cloud {basic}", "x-mc-app-id": c["app_id"]},
        ) as r:
            assert r.status == 200
        async with s.post(sim.url + AUDIT_PATH, json=body, headers=hmac_headers(sim, AUDIT_PATH)) as r:
            assert r.status == 200


async def test_bearer_401_has_the_api2_fail_shape() -> None:
    async with MimecastSim() as sim, aiohttp.ClientSession() as s:
        body = audit_body(*RECENT)
        async with s.post(sim.url + AUDIT_PATH, json=body, headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
            assert (await r.json())["fail"][0]["code"] == "err_xdk_client_unauthorized"


async def test_audit_pages_follow_page_token_alone_or_with_the_query() -> None:
    async with MimecastSim(audit_events=250) as sim, aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {await token(s, sim)}"}
        seen: list[str] = []
        body: dict[str, Any] = audit_body(RECENT_Z[0], RECENT_Z[1], size=100)
        while True:
            async with s.post(sim.url + AUDIT_PATH, json=body, headers=auth) as r:
                doc = await r.json()
            seen += [e["id"] for e in doc["data"]]
            nxt = doc["meta"]["pagination"].get("next")
            if not nxt:
                break
            body = {"meta": {"pagination": {"pageSize": 100, "pageToken": nxt}}}  # gravwell's form
        assert len(seen) == 250 and set(seen) == sim.audit_ids()


async def test_fail_array_with_http_200() -> None:
    async with MimecastSim(audit_fail_code="err_audit_unavailable") as sim, aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {await token(s, sim)}"}
        body = audit_body(*RECENT)
        async with s.post(sim.url + AUDIT_PATH, json=body, headers=auth) as r:
            assert r.status == 200
            fail = (await r.json())["fail"]
        assert fail[0]["errors"][0]["code"] == "err_audit_unavailable"


async def test_batch_listing_pages_files_and_presigned_urls_refuse_credentials_and_expire() -> None:
    async with MimecastSim(
        batch_files=5, records_per_file=4, batch_types="receipt", file_url_ttl_secs=1.5
    ) as sim:
        async with aiohttp.ClientSession() as s:
            auth = {"Authorization": f"Bearer {await token(s, sim)}"}
            params = {"type": "receipt", "pageSize": "3", "dateRangeStartsAt": "2020-01-01"}
            async with s.get(sim.url + BATCH_PATH, params=params, headers=auth) as r:
                first = await r.json()
            assert len(first["value"]) == 3 and first["isCaughtUp"] is False
            async with s.get(
                sim.url + BATCH_PATH, params={"nextPage": first["@nextPage"], "pageSize": "3"}, headers=auth
            ) as r:
                second = await r.json()
            assert len(second["value"]) == 2 and second["isCaughtUp"] is True
            url = first["value"][0]["url"]
            async with s.get(url, headers=auth) as r:
                assert r.status == 400  # a pre-signed URL takes no second credential
            async with s.get(url) as r:
                assert r.status == 200
                lines = gzip.decompress(await r.read()).splitlines()
            assert [orjson.loads(x)["type"] for x in lines] == ["receipt"] * 4
            await asyncio.sleep(1.6)
            async with s.get(url) as r:
                assert r.status == 403
                assert b"Request has expired" in await r.read()
        assert sim.stats()["downloads_with_credentials"] == 1


async def test_corrupt_every_breaks_files_both_ways() -> None:
    async with MimecastSim(batch_files=4, batch_types="av", corrupt_every=2) as sim:
        good, broken_1, broken_3 = (sim._file_body("av", i) for i in (0, 1, 3))
        assert len(gzip.decompress(good).splitlines()) == 20
        with pytest.raises((EOFError, OSError)):
            gzip.decompress(broken_1 if len(broken_1) < len(good) else broken_3)
        bad_line = gzip.decompress(broken_3 if len(broken_1) < len(good) else broken_1)
        assert b'{ "type" : "MTA", "data" : ' in bad_line
        assert len(sim.batch_ids("av")) == 40


async def test_legacy_siem_logs_zip_and_token_header_then_json_when_done() -> None:
    sim = MimecastSim(legacy_files=5, legacy_files_per_zip=3, legacy_corrupt_every=5)
    async with sim, aiohttp.ClientSession() as s:
        item: dict[str, Any] = {"type": "MTA", "compress": True, "fileFormat": "key_value"}
        async with s.post(
            sim.url + LEGACY_PATH, json={"data": [item]}, headers=hmac_headers(sim, LEGACY_PATH)
        ) as r:
            assert r.headers["Content-Type"] == "application/octet-stream"
            first = zipfile.ZipFile(io.BytesIO(await r.read()))
            token1 = r.headers["mc-siem-token"]
        assert len(first.namelist()) == 3
        assert first.read(first.namelist()[0]).startswith(b"datetime=")
        item["token"] = token1
        async with s.post(
            sim.url + LEGACY_PATH, json={"data": [item]}, headers=hmac_headers(sim, LEGACY_PATH)
        ) as r:
            second = zipfile.ZipFile(io.BytesIO(await r.read()))
            item["token"] = r.headers["mc-siem-token"]
        assert second.read(second.namelist()[-1]) == b'{ "type" : "MTA", "data" : '
        async with s.post(
            sim.url + LEGACY_PATH, json={"data": [item]}, headers=hmac_headers(sim, LEGACY_PATH)
        ) as r:
            assert "mc-siem-token" not in r.headers
            assert (await r.json())["fail"] == []
        # API 2.0 tokens do not open the API 1.0 endpoint.
        async with s.post(
            sim.url + LEGACY_PATH,
            json={"data": [item]},
            headers={"Authorization": f"Bearer {await token(s, sim)}"},
        ) as r:
            assert r.status == 401


async def test_rate_limit_headers_in_milliseconds_and_429_over_quota() -> None:
    async with MimecastSim(rate_limit=2, rate_window_secs=5) as sim, aiohttp.ClientSession() as s:
        auth = {"Authorization": f"Bearer {await token(s, sim)}"}
        body = audit_body(*RECENT)
        statuses = []
        for _ in range(3):
            async with s.post(sim.url + AUDIT_PATH, json=body, headers=auth) as r:
                statuses.append(
                    (r.status, r.headers["X-RateLimit-Remaining"], int(r.headers["X-RateLimit-Reset"]))
                )
        assert [(st, rem) for st, rem, _ in statuses] == [(200, "1"), (200, "0"), (429, "0")]
        assert 1000 < statuses[2][2] <= 5000  # milliseconds
        # The quota is per user: HMAC calls of the same user are refused too.
        async with s.post(sim.url + AUDIT_PATH, json=body, headers=hmac_headers(sim, AUDIT_PATH)) as r:
            assert r.status == 429
