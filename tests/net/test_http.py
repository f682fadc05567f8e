"""The shared HTTP client against a real local server: throttling, pass-through statuses, refusals."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from logferry.core.errors import AuthError, RateLimited
from logferry.net.http import HttpClient, HttpResponse, same_origin
from tests.conftest import serve_app

Answers = list[tuple[int, dict[str, str], Any]]


class Token:
    async def token(self) -> str:
        return "t0k3n"

    def invalidate(self, token: str) -> None:
        return None


@pytest.fixture
async def server() -> AsyncIterator[Callable[[Answers], Any]]:
    """``url = await serve(answers)``: answers requests in order, then 200 {} for ever."""
    async with contextlib.AsyncExitStack() as servers:

        async def serve(answers: Answers) -> str:
            async def handle(request: web.Request) -> web.Response:
                status, headers, body = answers.pop(0) if answers else (200, {}, {})
                return web.json_response(body, status=status, headers=headers)

            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            return await servers.enter_async_context(serve_app(app))

        yield serve


def client(session: aiohttp.ClientSession, slept: list[float], **kw: Any) -> HttpClient:
    async def sleep(secs: float) -> None:
        slept.append(secs)

    return HttpClient(session, sleep=sleep, **kw)


async def test_giving_up_on_429_keeps_the_vendors_retry_after(server: Any) -> None:
    url = await server([(429, {"Retry-After": "7"}, {})] * 3)
    slept: list[float] = []
    async with aiohttp.ClientSession() as s:
        with pytest.raises(RateLimited) as exc:
            await client(s, slept, max_attempts=3).request("GET", url)
    assert exc.value.retry_after == 7.0
    assert all(d >= 7.0 for d in slept)


def af429(resp: HttpResponse) -> bool:
    return resp.status == 403 and b"AF429" in resp.body


async def test_a_vendor_throttling_answer_is_retried_like_429(server: Any) -> None:
    url = await server([(403, {}, {"error": {"code": "AF429"}}), (200, {}, {"ok": True})])
    slept: list[float] = []
    async with aiohttp.ClientSession() as s:
        resp = await client(s, slept, throttled=af429).request("GET", url)
    assert resp.json() == {"ok": True} and len(slept) == 1


async def test_other_403s_are_auth_errors_and_passthrough_statuses_are_returned(server: Any) -> None:
    url = await server([(403, {}, {"error": {"code": "AF10001"}}), (400, {}, {"error": {"code": "AF20051"}})])
    async with aiohttp.ClientSession() as s:
        http = client(s, [], throttled=af429)
        with pytest.raises(AuthError):
            await http.request("GET", url)
        resp = await http.request("GET", url, passthrough=(400,))
    assert resp.status == 400 and resp.json()["error"]["code"] == "AF20051"


async def test_a_bearer_token_never_goes_over_plain_http_to_a_remote_host() -> None:
    async with aiohttp.ClientSession() as s:
        with pytest.raises(AuthError, match="plain http"):
            await client(s, [], auth=Token()).request("GET", "http://manage.example.com/api")


@pytest.mark.parametrize(
    ("link", "same"),
    [
        ("https://manage.office.com/api/v1.0/x/activity/feed/audit/1", True),
        ("https://manage.office.com:443/next", True),
        ("https://evil.example.com/api", False),
        ("http://manage.office.com/api", False),
        ("/relative/only", False),
    ],
)
def test_same_origin(link: str, same: bool) -> None:
    assert same_origin(link, "https://manage.office.com") is same
