"""Per-attempt credentials and vendor quota headers in the shared HTTP client, over real sockets."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from logferry.core.errors import AuthError, RateLimited
from logferry.net.http import BasicAuth, HttpClient, HttpResponse, RateLimitHeaders
from logferry.net.ratelimit import RateLimiter
from tests.conftest import serve_app

Answer = tuple[int, dict[str, str]]


class Server:
    """Answers in order (then 200), recording each request as the server saw it."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((request.method, request.raw_path, dict(request.headers), body))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return web.json_response({"n": len(self.seen)}, status=status, headers=headers)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    async with serve_app(app) as srv.url:
        yield srv


class Signer:
    """Signs method, path with query and body, with a fresh nonce each attempt (as HMAC schemes do)."""

    renew_statuses = frozenset({418})

    def __init__(self, renew_answer: bool = True) -> None:
        self.nonces = itertools.count()
        self.renewed: list[object] = []
        self.renew_answer = renew_answer

    @staticmethod
    def digest(method: str, path_qs: str, nonce: str, body: bytes) -> str:
        return hashlib.sha256(f"{method}\n{path_qs}\n{nonce}\n".encode() + body).hexdigest()

    async def apply(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> object:
        nonce = str(next(self.nonces))
        headers["X-Nonce"] = nonce
        headers["X-Sig"] = self.digest(method, url.raw_path_qs, nonce, body)
        return nonce

    async def renew(self, handle: object, response: HttpResponse) -> bool:
        self.renewed.append((handle, response.status))
        return self.renew_answer


def client(session: aiohttp.ClientSession, slept: list[float], **kw: Any) -> HttpClient:
    async def sleep(secs: float) -> None:
        slept.append(secs)

    return HttpClient(session, sleep=sleep, **kw)


def assert_signed_as_sent(seen: tuple[str, str, dict[str, str], bytes]) -> None:
    method, path_qs, headers, body = seen
    assert headers["X-Sig"] == Signer.digest(method, path_qs, headers["X-Nonce"], body)


async def test_a_signer_sees_the_exact_query_and_body_that_are_sent(server: Server) -> None:
    params = [("event_type[]", "1090519054"), ("event_type[]", "553648143"), ("q", "a b&c=d/é")]
    async with aiohttp.ClientSession() as s:
        await client(s, [], auth=Signer()).request(
            "POST", f"{server.url}/api/x?offset=0", params=params, json={"b": 1, "a": [True, None]}
        )
    (seen,) = server.seen
    assert_signed_as_sent(seen)
    assert seen[2]["Content-Type"] == "application/json" and seen[3] == b'{"b":1,"a":[true,null]}'
    assert URL(seen[1]).query.getall("event_type[]") == ["1090519054", "553648143"]
    assert URL(seen[1]).query["q"] == "a b&c=d/é" and URL(seen[1]).query["offset"] == "0"


async def test_every_attempt_is_signed_afresh(server: Server) -> None:
    server.answers = [(503, {}), (503, {})]
    async with aiohttp.ClientSession() as s:
        await client(s, [], auth=Signer()).request("GET", f"{server.url}/p", params={"k": "v"})
    assert [h["X-Nonce"] for _, _, h, _ in server.seen] == ["0", "1", "2"]
    for seen in server.seen:
        assert_signed_as_sent(seen)


async def test_a_vendor_refusal_status_renews_the_credentials_once(server: Server) -> None:
    server.answers = [(418, {})]
    signer = Signer()
    async with aiohttp.ClientSession() as s:
        resp = await client(s, [], auth=signer).request("GET", f"{server.url}/p")
    assert resp.status == 200 and signer.renewed == [("0", 418)]

    server.answers = [(418, {}), (418, {})]
    signer = Signer()
    async with aiohttp.ClientSession() as s:
        with pytest.raises(AuthError, match="HTTP 418"):
            await client(s, [], auth=signer).request("GET", f"{server.url}/p")
    assert len(signer.renewed) == 1


async def test_a_refusal_the_auth_cannot_renew_fails_at_once(server: Server) -> None:
    server.answers = [(401, {})]
    signer = Signer(renew_answer=False)
    async with aiohttp.ClientSession() as s:
        with pytest.raises(AuthError, match="HTTP 401"):
            await client(s, [], auth=signer).request("GET", f"{server.url}/p")
    assert len(server.seen) == 1 and signer.renewed == [("0", 401)]


async def test_basic_auth_is_sent_and_a_refused_key_is_not_retried(server: Server) -> None:
    server.answers = [(401, {})]
    auth = BasicAuth("client-id", "api-key")
    async with aiohttp.ClientSession() as s:
        with pytest.raises(AuthError):
            await client(s, [], auth=auth).request("GET", f"{server.url}/v1/events")
    assert len(server.seen) == 1
    assert server.seen[0][2]["Authorization"] == "Basic Y2xpZW50LWlkOmFwaS1rZXk="
    assert "api-key" not in repr(auth)


async def test_429_waits_for_the_reset_header_in_the_vendors_unit(server: Server) -> None:
    server.answers = [(429, {"X-RateLimit-Reset": "1500", "X-RateLimit-Remaining": "0"})]
    slept: list[float] = []
    async with aiohttp.ClientSession() as s:
        http = client(s, slept, rate_headers=RateLimitHeaders(reset_unit_secs=0.001))
        resp = await http.request("GET", f"{server.url}/api/audit/get-audit-events")
    assert resp.status == 200 and len(slept) == 1 and 1.5 <= slept[0] <= 2.5


async def test_giving_up_reports_the_reset_as_retry_after(server: Server) -> None:
    server.answers = [(429, {"x-rate-limit-reset": "875"})] * 2
    async with aiohttp.ClientSession() as s:
        with pytest.raises(RateLimited) as exc:
            await client(s, [], rate_headers=RateLimitHeaders(), max_attempts=2).request("GET", server.url)
    assert exc.value.retry_after == 875.0


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.slept.append(secs)
        self.now += secs


@pytest.mark.parametrize("spelling", ["x-ratelimit", "X-Rate-Limit"])
async def test_an_exhausted_quota_holds_every_request_until_the_reset(server: Server, spelling: str) -> None:
    exhausted = {f"{spelling}-remaining": "0", f"{spelling}-reset": "30"}
    server.answers = [(200, exhausted)]
    clock = VirtualClock()
    limiter = RateLimiter(100.0, burst=10, clock=clock, sleep=clock.sleep)
    async with aiohttp.ClientSession() as s:
        http = client(s, [], limiter=limiter, rate_headers=RateLimitHeaders())
        await http.request("GET", server.url)
        assert clock.slept == []
        await http.request("GET", server.url)
        await http.request("GET", server.url)
        await http.request("GET", server.url)
    # The next request waits for the refill; the ones after it are not held again.
    assert clock.slept == [pytest.approx(30.0)]


async def test_quota_headers_with_quota_left_cost_nothing(server: Server) -> None:
    server.answers = [(200, {"X-RateLimit-Remaining": "2796", "X-RateLimit-Reset": "875"})] * 3
    clock = VirtualClock()
    limiter = RateLimiter(None, clock=clock, sleep=clock.sleep)
    async with aiohttp.ClientSession() as s:
        http = client(s, [], limiter=limiter, rate_headers=RateLimitHeaders())
        for _ in range(3):
            await http.request("GET", server.url)
    assert clock.slept == []


def test_header_reader_ignores_garbage() -> None:
    hints = RateLimitHeaders()
    assert hints.reset_secs({"X-RateLimit-Reset": "soon"}) is None
    assert not hints.exhausted({"X-RateLimit-Remaining": "n/a"})
    assert hints.reset_secs({}) is None
