"""The Duo simulator over real sockets: signature checks as Duo does them, paging, delay, limits, errors."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import signal
import ssl
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

import aiohttp

from logferry.sim.duo import PATHS, DuoSim
from logferry.sim.duo_logs import LogType
from logferry.sources.duo.signing import canon_params, canonical_string, hmac_hex
from tests.sim.conftest import Starter, announcement
from tests.sim.helpers import ssl_for, stats

HOUR_MS = 3600 * 1000


def now_ms() -> int:
    return int(time.time() * 1000)


async def signed_get(
    http: aiohttp.ClientSession,
    sim: DuoSim,
    path: str,
    params: list[tuple[str, str]],
    scheme: str = "v5",
    skey: str | None = None,
    date_header: str = "Date",
) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    """A request signed the way duo_client builds it: the query with urlencode (``+`` for spaces)."""
    host = sim.credentials["host"]
    date = formatdate()
    headers = {date_header: date}
    canonical = canonical_string(
        "v5" if scheme == "v5" else "v2-sha512", date, "GET", host, path, canon_params(params), b"",
        {k: v for k, v in headers.items() if k.lower().startswith("x-duo-")},
    )  # fmt: skip
    key = (skey or sim.skey).encode()
    digest = hashlib.sha1 if scheme == "v2-sha1" else hashlib.sha512
    sig = hmac.new(key, canonical.encode(), digest).hexdigest()
    headers["Authorization"] = "Basic " + base64.b64encode(f"{sim.ikey}:{sig}".encode()).decode()
    url = f"{sim.url}{path}" + (f"?{urlencode(params)}" if params else "")
    async with http.get(url, headers=headers, ssl=ssl_for(sim)) as resp:
        return resp.status, await resp.json(), resp.headers


def window(hours: float = 3) -> list[tuple[str, str]]:
    end = now_ms() - 120 * 1000
    return [("mintime", str(end - int(hours * HOUR_MS))), ("maxtime", str(end))]


def unlimited(**options: Any) -> DuoSim:
    return DuoSim(backlog_events=250, live_rate=0, requests_per_minute=0, **options)


async def test_v5_v2_sha512_and_v2_sha1_signatures_are_all_accepted(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(unlimited())
    for scheme in ("v5", "v2-sha512", "v2-sha1"):
        status, body, _ = await signed_get(http, sim, PATHS["administrator"], [("mintime", "0")], scheme)
        assert status == 200, (scheme, body)
        assert body["stat"] == "OK" and len(body["response"]) == 250


async def test_bad_signature_is_401_40103_and_counted(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(unlimited())
    status, body, _ = await signed_get(
        http, sim, PATHS["administrator"], [("mintime", "0")], skey="wrong" * 8
    )
    assert (status, body) == (401, {"code": 40103, "message": "Invalid signature in request credentials",
                                     "stat": "FAIL"})  # fmt: skip
    assert (await stats(http, sim))["bad_signatures"] == 1


async def test_query_is_decoded_and_recanonicalised_and_x_duo_date_wins(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(unlimited())
    # urlencode sends "ts%3Aasc" and a space as "+"; the signature covers %3A and %20.
    params = [*window(), ("sort", "ts:asc"), ("users", "First Last")]
    status, body, _ = await signed_get(http, sim, PATHS["authentication"], params, date_header="X-Duo-Date")
    assert status == 200, body


async def test_authentication_pages_follow_the_two_item_next_offset(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(unlimited())
    seen: list[str] = []
    offset: list[str] | None = None
    pages = 0
    while True:
        params = [*window(2), ("limit", "100"), ("sort", "ts:asc")]
        if offset is not None:
            params.append(("next_offset", ",".join(offset)))
        status, body, _ = await signed_get(http, sim, PATHS["authentication"], params)
        assert status == 200, body
        pages += 1
        seen += [r["txid"] for r in body["response"]["authlogs"]]
        assert body["response"]["metadata"]["total_objects"] == 250
        offset = body["response"]["metadata"]["next_offset"]
        if offset is None:
            break
        assert isinstance(offset, list) and len(offset) == 2
    assert pages == 3
    assert seen == [r["txid"] for r in sim.expected("authentication")]


async def test_descending_order_pages_backwards(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    sim: DuoSim = await start_sim(unlimited())
    params = [*window(2), ("limit", "200"), ("sort", "ts:desc")]
    _, first, _ = await signed_get(http, sim, PATHS["authentication"], params)
    offset = first["response"]["metadata"]["next_offset"]
    # duo_client passes a list parameter as repeated keys; the server takes that form too.
    _, second, _ = await signed_get(
        http, sim, PATHS["authentication"], [*params, ("next_offset", offset[0]), ("next_offset", offset[1])]
    )
    got = [r["txid"] for r in first["response"]["authlogs"] + second["response"]["authlogs"]]
    assert got == [r["txid"] for r in reversed(sim.expected("authentication"))]


async def test_telephony_activity_and_trust_monitor_page_with_string_offsets(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(unlimited())
    cases: list[tuple[LogType, str, str, str]] = [
        ("telephony", "items", "next_offset", "telephony_id"),
        ("activity", "items", "next_offset", "activity_id"),
        ("trust_monitor", "events", "offset", "sekey"),
    ]
    for log_type, key, param, id_field in cases:
        seen: list[str] = []
        offset: str | None = None
        while True:
            params = [*window(2), ("limit", "100")]
            if log_type != "trust_monitor":
                params.append(("sort", "ts:asc"))
            if offset is not None:
                params.append((param, offset))
            status, body, _ = await signed_get(http, sim, PATHS[log_type], params)
            assert status == 200, body
            seen += [r[id_field] for r in body["response"][key]]
            offset = body["response"]["metadata"]["next_offset"]
            if offset is None:
                break
            assert isinstance(offset, str) and "," in offset
        assert seen == [r[id_field] for r in sim.expected(log_type)], log_type


async def test_windows_ending_within_two_minutes_are_empty(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(DuoSim(backlog_events=0, live_rate=50, requests_per_minute=0))
    params = [("mintime", str(now_ms() - HOUR_MS)), ("maxtime", str(now_ms()))]
    status, body, _ = await signed_get(http, sim, PATHS["telephony"], params)
    assert status == 200
    assert body["response"]["items"] == [] and body["response"]["metadata"]["next_offset"] is None


async def test_administrator_log_takes_seconds_and_caps_each_answer(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(unlimited(v1_page_cap=100))
    _, body, _ = await signed_get(http, sim, PATHS["administrator"], [("mintime", "0")])
    records = body["response"]
    assert len(records) == 100
    assert [r["timestamp"] for r in records] == sorted(r["timestamp"] for r in records)
    assert records == sim.expected("administrator")[:100]
    last = records[-1]["timestamp"]
    _, rest, _ = await signed_get(http, sim, PATHS["administrator"], [("mintime", str(last))])
    assert all(r["timestamp"] >= last for r in rest["response"])


async def test_rate_limit_is_per_endpoint_and_answers_42901_without_retry_after(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(DuoSim(backlog_events=10, live_rate=0, requests_per_minute=2))
    path = PATHS["telephony"]
    answers = [await signed_get(http, sim, path, window()) for _ in range(3)]
    assert [a[0] for a in answers] == [200, 200, 429]
    assert answers[2][1] == {"code": 42901, "message": "Too Many Requests", "stat": "FAIL"}
    assert "Retry-After" not in answers[2][2]
    status, _, _ = await signed_get(http, sim, PATHS["activity"], window())
    assert status == 200, "another endpoint has its own budget"
    st = await stats(http, sim)
    assert st["rate_limited"] == {path: 1}
    assert st["endpoint_requests"][path] == 3


async def test_bad_parameters_get_duo_error_envelopes(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(unlimited())
    end = now_ms() - HOUR_MS
    cases = [
        [("mintime", str(end)), ("maxtime", str(end))],
        [("mintime", str(end // 1000)), ("maxtime", str(end))],
        [("mintime", str(end - 1)), ("maxtime", str(end)), ("limit", "1001")],
    ]
    for params in cases:
        status, body, _ = await signed_get(http, sim, PATHS["authentication"], params)
        assert status == 400 and body["stat"] == "FAIL" and isinstance(body["code"], int), params
    long = [("mintime", str(end - 180 * 24 * HOUR_MS)), ("maxtime", str(end))]
    status, body, _ = await signed_get(http, sim, PATHS["trust_monitor"], long)
    assert status == 400 and "180 days" in body["message_detail"]


async def test_malformed_every_drops_the_id_of_every_nth_event(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim: DuoSim = await start_sim(unlimited(malformed_every=50))
    _, body, _ = await signed_get(http, sim, PATHS["authentication"], [*window(2), ("limit", "1000")])
    records = body["response"]["authlogs"]
    assert sum("txid" not in r for r in records) == sim.malformed_count("authentication") == 5
    assert len(sim.expected("authentication")) == 245


async def test_same_seed_same_events_and_tls_works(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    a: DuoSim = await start_sim(unlimited(), tls=True)
    b = unlimited()
    assert a.url.startswith("https://") and a.ca_file
    assert a.ikey == b.ikey and a.skey == b.skey
    assert [r["txid"] for r in a.expected("authentication")] == [
        r["txid"] for r in b.expected("authentication")
    ]
    status, body, _ = await signed_get(http, a, PATHS["administrator"], [("mintime", "0")])
    assert status == 200 and len(body["response"]) == 250


def test_hmac_hex_matches_the_stdlib() -> None:
    assert hmac_hex("k", "c", "v2-sha1") == hmac.new(b"k", b"c", hashlib.sha1).hexdigest()


async def test_standalone_over_tls_announces_keys_and_keeps_producing_in_live_mode(launch: Any) -> None:
    proc = launch("duo", True, "--backlog-events", "3", "--live-rate", "20", "--requests-per-minute", "0")
    announced = await asyncio.to_thread(announcement, proc)
    assert announced["url"].startswith("https://") and announced["ca_file"]
    assert set(announced["credentials"]) == {"ikey", "skey", "host"}
    async with aiohttp.ClientSession() as http:
        ctx = ssl.create_default_context(cafile=announced["ca_file"])
        first = await _events(http, announced["url"], ctx)
        await asyncio.sleep(0.3)
        assert await _events(http, announced["url"], ctx) > first >= 15
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 10) == 0


async def _events(http: aiohttp.ClientSession, url: str, ctx: ssl.SSLContext) -> int:
    async with http.get(f"{url}/sim/stats", ssl=ctx) as resp:
        generated: int = (await resp.json())["generated"]
        return generated
