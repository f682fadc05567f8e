"""Mimecast API 1.0 request signing and binding refresh, as a :class:`RequestAuth`.

Facts (shared/specs/mimecast.md §2): every request carries ``x-mc-date`` (RFC 1123 with a literal
``UTC``), a fresh ``x-mc-req-id``, ``x-mc-app-id`` and ``Authorization: MC accessKey:signature``
with ``signature = base64(HMAC-SHA1(base64decode(secretKey), "date:reqid:path:appKey"))``. The
HttpClient calls :meth:`MimecastHmac.apply` per attempt, so a retry never reuses a request id.
HTTP 418 means the binding expired: ``POST /api/login/login`` with ``Basic-Cloud
base64(email:password)`` re-binds the same access key, then the request is retried once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
import uuid
from collections.abc import Callable

from yarl import URL

from logferry.auth.oauth2 import vendor_error_message
from logferry.config.secrets import Secret
from logferry.core.errors import AuthError
from logferry.net.http import HttpClient, HttpResponse

__all__ = ["BINDING_STATUS", "LOGIN_PATH", "MimecastHmac", "rfc1123_utc", "signature"]

LOGIN_PATH = "/api/login/login"
#: Mimecast's "binding expired" answer.
BINDING_STATUS = 418
#: The API version header Sentinel's refresh request sends.
LOGIN_API_VERSION = "2014.6.1"


def rfc1123_utc(epoch: float) -> str:
    """``Tue, 24 Nov 2015 12:50:11 UTC``: Mimecast's documented layout (literal ``UTC``)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(epoch))


def signature(secret_key: bytes, date: str, request_id: str, path: str, app_key: str) -> str:
    digest = hmac.new(secret_key, f"{date}:{request_id}:{path}:{app_key}".encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class MimecastHmac:
    """Signs each attempt; renews an expired binding when email and password are configured."""

    renew_statuses: frozenset[int] = frozenset({BINDING_STATUS})

    def __init__(
        self,
        *,
        base_url: str,
        app_id: str,
        app_key: Secret,
        access_key: Secret,
        secret_key: Secret,
        login_http: HttpClient,
        email: str | None = None,
        password: Secret | None = None,
        clock: Callable[[], float] = time.time,
        request_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self._key = base64.b64decode(secret_key.reveal())  # checked when the config was validated
        self._base = base_url
        self._app_id = app_id
        self._app_key = app_key
        self._access_key = access_key
        self._login_http = login_http
        self._email = email
        self._password = password
        self._clock = clock
        self._request_id = request_id
        self.renewals = 0
        # Lanes share the binding: concurrent 418s must cause one login, not one per lane.
        self._lock = asyncio.Lock()

    async def apply(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> object:
        date = rfc1123_utc(self._clock())
        req_id = self._request_id()
        sig = signature(self._key, date, req_id, url.path, self._app_key.reveal())
        headers["x-mc-date"] = date
        headers["x-mc-req-id"] = req_id
        headers["x-mc-app-id"] = self._app_id
        headers["Authorization"] = f"MC {self._access_key.reveal()}:{sig}"
        headers.setdefault("Content-Type", "application/json")
        return self.renewals

    async def renew(self, handle: object, response: HttpResponse) -> bool:
        if response.status != BINDING_STATUS:
            return False  # a 401 is a wrong key or signature: a login would not fix it
        if self._email is None or self._password is None:
            raise AuthError(
                "Mimecast says the access key's binding has expired (HTTP 418) and no email/password is "
                "configured to refresh it: set auth.email and auth.password, or create new keys"
            )
        async with self._lock:
            if handle != self.renewals:
                return True  # another request re-bound the key after this one was signed
            await self._login(self._email, self._password)
            self.renewals += 1
            return True

    async def _login(self, email: str, password: Secret) -> None:
        basic = base64.b64encode(f"{email}:{password.reveal()}".encode()).decode()
        resp = await self._login_http.request(
            "POST",
            self._base + LOGIN_PATH,
            headers={
                "Authorization": f"Basic-Cloud {basic}",
                "x-mc-app-id": self._app_id,
                "x-mc-api-version": LOGIN_API_VERSION,
            },
            json={"data": [{"userName": email, "accessKey": self._access_key.reveal()}]},
            passthrough=(400, 401, 403),
        )
        failed = resp.status != 200 or _has_fail(resp)
        if failed:
            raise AuthError(
                f"Mimecast binding refresh for {email} failed (HTTP {resp.status}): "
                f"{vendor_error_message(resp.body)}; check auth.email and auth.password"
            )

    def __repr__(self) -> str:
        return f"MimecastHmac(app_id={self._app_id!r})"


def _has_fail(resp: HttpResponse) -> bool:
    try:
        doc = resp.json()
    except ValueError:
        return True
    return isinstance(doc, dict) and bool(doc.get("fail"))
