"""OAuth2 client credentials against a real local token endpoint: statuses, errors, caching."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from logferry.auth.oauth2 import ClientCredentials, vendor_error_message
from logferry.config.secrets import Secret
from logferry.core.errors import AuthError
from logferry.net.http import HttpClient
from tests.conftest import serve_app

SECRET = "s3cr3t-value"


class TokenEndpoint:
    def __init__(self) -> None:
        self.status = 201
        self.body: Any = {"access_token": "tok-1", "expires_in": 1799, "token_type": "bearer"}
        self.forms: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.forms.append(dict(await request.post()))  # type: ignore[arg-type]
        return web.json_response(self.body, status=self.status)


@pytest.fixture
async def endpoint() -> AsyncIterator[TokenEndpoint]:
    ep = TokenEndpoint()
    app = web.Application()
    app.router.add_post("/oauth2/token", ep.handle)
    async with serve_app(app) as base:
        ep.url = f"{base}/oauth2/token"
        yield ep


def provider(session: aiohttp.ClientSession, url: str, **kw: Any) -> ClientCredentials:
    return ClientCredentials(
        HttpClient(session), url, "client-1", Secret(SECRET, "${env:X}"), vendor="Falcon", **kw
    )


async def test_201_is_success_and_the_token_is_cached(endpoint: TokenEndpoint) -> None:
    async with aiohttp.ClientSession() as s:
        tokens = provider(s, endpoint.url, extra={"member_cid": "child"})
        assert await tokens.token() == "tok-1"
        assert await tokens.token() == "tok-1"
    assert tokens.fetches == 1
    assert endpoint.forms == [
        {
            "grant_type": "client_credentials",
            "client_id": "client-1",
            "client_secret": SECRET,
            "member_cid": "child",
        }
    ]


async def test_a_refusal_says_what_the_vendor_said_and_never_the_secret(endpoint: TokenEndpoint) -> None:
    endpoint.status = 401
    endpoint.body = {"meta": {}, "errors": [{"code": 401, "message": "access denied, invalid credentials"}]}
    async with aiohttp.ClientSession() as s:
        with pytest.raises(AuthError) as exc:
            await provider(s, endpoint.url).token()
    assert "access denied, invalid credentials" in str(exc.value) and "client-1" in str(exc.value)
    assert SECRET not in str(exc.value) and SECRET not in repr(provider)


async def test_a_200_without_a_token_is_an_auth_error(endpoint: TokenEndpoint) -> None:
    endpoint.status = 200
    endpoint.body = {"token_type": "Bearer"}
    async with aiohttp.ClientSession() as s:
        with pytest.raises(AuthError, match="no access_token"):
            await provider(s, endpoint.url).token()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error":"invalid_client","error_description":"bad secret"}', "bad secret"),
        (b'{"fail":[{"code":"err_xdk_client_unauthorized","message":"Unauthorized"}]}', "Unauthorized"),
        (b'{"fail":[{"errors":[{"code":"err_x","message":"binding expired"}]}]}', "binding expired"),
        (b'{"errors":[{"error_code":401,"description":"Unauthorized"}]}', "Unauthorized"),
        (b"<html>gateway</html>", "<html>gateway</html>"),
    ],
)
def test_vendor_error_message_reads_each_vendors_shape(body: bytes, message: str) -> None:
    assert vendor_error_message(body) == message
