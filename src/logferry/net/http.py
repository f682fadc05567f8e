"""The one HTTP client sources and sinks share: limits, auth, retries and accounting.

Order per attempt (azure-core's lesson): rate limit → auth → send, inside the retry loop, so
every attempt gets a fresh slot and valid credentials (a fresh token, or a fresh signature:
signing schemes put a date and a nonce in each request). Query parameters and JSON bodies are
encoded before auth runs, so a signer sees the exact bytes that are sent. A 401 (or a vendor's
own "credentials refused" status) renews the credentials and retries once; 429 honours
``Retry-After`` or the vendor's reset header and spends the limiter's budget; 5xx and
connection errors back off with full jitter. What remains after ``max_attempts`` is raised as
a typed error.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import aiohttp
import orjson
from yarl import URL

from logferry.core.errors import AuthError, RateLimited, VendorAPIError
from logferry.net.ratelimit import RateLimiter
from logferry.net.retry import Backoff, parse_retry_after
from logferry.net.tls import TLSSettings
from logferry.observe.events import HttpResponseReceived, RateLimitWaited
from logferry.observe.metrics import Metrics

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "HttpClient",
    "HttpResponse",
    "RateLimitHeaders",
    "RequestAuth",
    "TokenProvider",
    "is_loopback",
    "make_session",
    "same_origin",
]

USER_AGENT = "logferry/0.1"
RETRYABLE = frozenset({408, 500, 502, 503, 504})


@runtime_checkable
class TokenProvider(Protocol):
    async def token(self) -> str: ...

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the server refused it) so the next call fetches a new one."""
        ...


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class RequestAuth(Protocol):
    """Credentials applied to each attempt: a bearer token, Basic, or a vendor's signature."""

    #: Statuses besides 401 that mean "these credentials were refused" (Mimecast HMAC: 418).
    renew_statuses: frozenset[int]

    async def apply(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> object:
        """Set this attempt's credential headers; ``url`` carries the encoded query and ``body``
        the exact bytes sent. Returns a handle given back to :meth:`renew`."""
        ...

    async def renew(self, handle: object, response: HttpResponse) -> bool:
        """The server refused the credentials applied as ``handle``: drop or renew them.
        ``True`` retries the request once; ``False`` fails it as an auth error."""
        ...


class BearerAuth:
    """``Authorization: Bearer`` from a token provider; a refused token is dropped and re-fetched."""

    renew_statuses: frozenset[int] = frozenset()

    def __init__(self, tokens: TokenProvider) -> None:
        self.tokens = tokens
        self._token: str | None = None

    async def prepare(self) -> None:
        """Fetch the token before the request queues for a rate-limit slot: the token request
        may share that limiter (meshStack's login does), and must not wait behind itself."""
        self._token = await self.tokens.token()

    async def apply(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> object:
        if self._token is None:
            await self.prepare()
        # Requests in flight together share the newest token; each one's renew names its own.
        token = self._token
        headers["Authorization"] = f"Bearer {token}"
        return token

    async def renew(self, handle: object, response: HttpResponse) -> bool:
        # Tokens can expire or be revoked before their stated lifetime.
        self.tokens.invalidate(str(handle))
        return True


class BasicAuth:
    """HTTP Basic with a fixed user and password (Cisco Secure Endpoint's client id and API key)."""

    renew_statuses: frozenset[int] = frozenset()

    def __init__(self, user: str, password: str) -> None:
        self._header = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    async def apply(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> object:
        headers["Authorization"] = self._header
        return None

    async def renew(self, handle: object, response: HttpResponse) -> bool:
        return False  # nothing to renew: the key itself is wrong or revoked

    def __repr__(self) -> str:
        return "BasicAuth(***)"


@dataclass(frozen=True)
class RateLimitHeaders:
    """Where a vendor says how much quota is left and when it refills.

    Header lookup is case-insensitive; several names cover vendors whose documentation and
    servers disagree on the spelling (Cisco Secure Endpoint: ``X-Rate-Limit-*`` in the docs,
    ``x-ratelimit-*`` on the wire). When ``remaining`` reaches 0, every request on the
    limiter's key waits for the reset instead of spending a call on a certain 429.
    """

    remaining: tuple[str, ...] = ("X-RateLimit-Remaining", "X-Rate-Limit-Remaining")
    reset: tuple[str, ...] = ("X-RateLimit-Reset", "X-Rate-Limit-Reset")
    #: The reset header's unit: 1.0 for seconds, 0.001 for Mimecast's milliseconds.
    reset_unit_secs: float = 1.0

    def _number(self, headers: Mapping[str, str], names: tuple[str, ...]) -> float | None:
        for name in names:
            value = headers.get(name)
            if value is None:
                continue
            try:
                return float(value)
            except ValueError:
                return None
        return None

    def reset_secs(self, headers: Mapping[str, str]) -> float | None:
        value = self._number(headers, self.reset)
        return None if value is None else max(0.0, value * self.reset_unit_secs)

    def exhausted(self, headers: Mapping[str, str]) -> bool:
        remaining = self._number(headers, self.remaining)
        return remaining is not None and remaining <= 0


def is_loopback(url: str | URL) -> bool:
    host = URL(url).host or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(link: str, base: str) -> bool:
    """Whether ``link`` is on ``base``'s scheme, host and port.

    Vendors hand back absolute URLs (next pages, content blobs); following one elsewhere would
    send the bearer token to that host, so callers follow only links on the API's own origin.
    """
    a, b = URL(link, encoded=True), URL(base)
    if not a.is_absolute() or not a.host:
        return False
    # .port fills in the scheme's default, so ":443" and no port compare equal.
    return (a.scheme, a.host.lower(), a.port) == (b.scheme, (b.host or "").lower(), b.port)


def make_session(tls: TLSSettings, limit: int = 100) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=tls.context(), limit=limit)
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        json_serialize=lambda o: orjson.dumps(o).decode(),
    )


def _short(body: bytes, limit: int = 300) -> str:
    return body[:limit].decode("utf-8", "replace").replace("\n", " ")


class HttpClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        auth: RequestAuth | TokenProvider | None = None,
        limiter: RateLimiter | None = None,
        timeout_secs: float = 30.0,
        max_attempts: int = 5,
        backoff_max_secs: float = 60.0,
        component: str = "http",
        metrics: Metrics | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        throttled: Callable[[HttpResponse], bool] | None = None,
        rate_headers: RateLimitHeaders | None = None,
    ) -> None:
        """``auth`` is a :class:`RequestAuth` or a token provider (sent as a bearer token).
        ``throttled`` recognises a vendor's own throttling answer besides 429 (Office 365
        answers ``403`` with error code ``AF429``), so it gets the same wait-and-retry.
        ``rate_headers`` reads the vendor's quota headers (see :class:`RateLimitHeaders`)."""
        self.session = session
        self.auth: RequestAuth | None = BearerAuth(auth) if isinstance(auth, TokenProvider) else auth
        self.limiter = limiter
        self.timeout = aiohttp.ClientTimeout(total=timeout_secs)
        self.max_attempts = max_attempts
        self.backoff_max_secs = backoff_max_secs
        self.component = component
        self.metrics = metrics
        self._sleep = sleep
        self._throttled = throttled
        self._rate_headers = rate_headers

    async def request(
        self,
        method: str,
        url: str | URL,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        passthrough: Collection[int] = (),
    ) -> HttpResponse:
        """Send with retries; ``passthrough`` statuses are returned for the caller to interpret
        (a vendor error code in the body that means "skip this item", not "fail"). Give a
        ``yarl.URL(link, encoded=True)`` to send a pre-signed link byte for byte (a plain string
        is normalised: ``%7E`` becomes ``~``, which a signature over the raw query would not match)."""
        if self.auth is not None and URL(url).scheme != "https" and not is_loopback(url):
            raise AuthError(f"refusing to send credentials over plain http to {URL(url).host}; use https")
        target = url if isinstance(url, URL) else URL(url)
        if params:
            target = target.extend_query(params)
        hdrs_base = dict(headers or {})
        if json is not None:
            data = orjson.dumps(json)
            hdrs_base.setdefault("Content-Type", "application/json")
        body = data if isinstance(data, bytes) else b""
        backoff = Backoff(max_secs=self.backoff_max_secs)
        renewed = False
        last = ""
        throttled_after: float | None = None
        for _attempt in range(self.max_attempts):
            hdrs = dict(hdrs_base)
            handle: object = None
            if isinstance(self.auth, BearerAuth):
                await self.auth.prepare()
            t0 = time.monotonic()
            try:
                if self.limiter is not None:
                    async with self.limiter.slot():
                        self._waited(time.monotonic() - t0)
                        # Signed inside the slot: a signature's date must not age while queued.
                        handle = await self._apply_auth(method, target, hdrs, body)
                        t0 = time.monotonic()
                        resp = await self._send(method, target, hdrs, data)
                else:
                    handle = await self._apply_auth(method, target, hdrs, body)
                    resp = await self._send(method, target, hdrs, data)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._observe(None, t0)
                last = f"{type(exc).__name__}: {exc}"
                await self._sleep(backoff.next_delay())
                continue
            self._observe(resp.status, t0)
            hints = self._rate_headers
            reset = hints.reset_secs(resp.headers) if hints else None
            if hints and reset is not None and self.limiter is not None and hints.exhausted(resp.headers):
                self.limiter.hold(reset)
            throttled = resp.status == 429 or (self._throttled is not None and self._throttled(resp))
            if (200 <= resp.status < 400 or resp.status in passthrough) and not throttled:
                return resp  # redirects are the caller's to follow: credentials must not leak
            if self.auth is not None and (resp.status == 401 or resp.status in self.auth.renew_statuses):
                if not renewed and await self.auth.renew(handle, resp):
                    renewed = True
                    continue
                raise AuthError(f"HTTP {resp.status} from {target.path}: {_short(resp.body)}")
            if throttled:
                after = parse_retry_after(resp.headers.get("Retry-After"))
                if after is None:
                    after = reset
                delay = backoff.next_delay(after)
                throttled_after = after
                if self.limiter is not None:
                    # Every request on this key waits, not just this one: until the time the vendor
                    # named, or (AF429 names none) by a backoff step that grows while throttling lasts.
                    if after is not None:
                        self.limiter.hold(after)
                    else:
                        self.limiter.penalize(delay)
                last = (
                    f"HTTP 429 (retry after {after}s)"
                    if resp.status == 429
                    else f"throttled: {_short(resp.body)}"
                )
                self._waited(delay)
                await self._sleep(delay)
                continue
            if resp.status == 401 or resp.status == 403:
                raise AuthError(f"HTTP {resp.status} from {target.path}: {_short(resp.body)}")
            if resp.status in RETRYABLE:
                last = f"HTTP {resp.status}: {_short(resp.body)}"
                after = parse_retry_after(resp.headers.get("Retry-After"))
                await self._sleep(backoff.next_delay(after))
                continue
            raise VendorAPIError(f"HTTP {resp.status} from {target.path}: {_short(resp.body)}", resp.status)
        if last.startswith(("HTTP 429", "throttled")):
            # The vendor's last word on when to come back; the caller's backoff honours it.
            raise RateLimited(f"still throttled after {self.max_attempts} attempts: {last}", throttled_after)
        raise VendorAPIError(f"gave up after {self.max_attempts} attempts: {last}")

    async def _apply_auth(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> object:
        return None if self.auth is None else await self.auth.apply(method, url, headers, body)

    def _observe(self, status: int | None, t0: float) -> None:
        if self.metrics is not None:
            HttpResponseReceived(self.component, status, time.monotonic() - t0).emit(self.metrics)

    def _waited(self, seconds: float) -> None:
        if self.metrics is not None and seconds > 0.001:
            RateLimitWaited(self.component, seconds).emit(self.metrics)

    async def _send(self, method: str, url: URL, headers: Mapping[str, str], data: Any) -> HttpResponse:
        async with self.session.request(
            method,
            url,
            headers=headers,
            data=data,
            timeout=self.timeout,
            allow_redirects=False,
        ) as r:
            body = await r.read()
            return HttpResponse(r.status, r.headers, body)
