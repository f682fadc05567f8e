"""meshStack event log API simulator (facts in specs/meshstack.md).

Serves ``POST /api/login`` (JSON → 200 token; form → 307 to a Keycloak-style token URL on the same
server), ``GET /api/meshobjects/mesheventlogs`` with the versioned HAL media type, zero-based
``page``/``size`` paging, ``from`` (inclusive) / ``until`` (exclusive) windows and filters, and the
single-record URL. Rate limits follow meshStack's advice of one request at a time per API key.

Usage::

    async with MeshStackSim(live_rate=0, backlog_events=500) as sim:
        creds = sim.credentials  # client_id, client_secret, api_user, api_password

Harness extras: ``POST /sim/control {"live": false}`` pauses live generation (the demo pauses before
counting); ``/sim/stats`` adds ``events_served``, ``tokens_issued`` and ``rate_limited``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from .meshstack_auth import KEYCLOAK_TOKEN_PATH, InvalidCredentials, MeshCredentials, MeshTokens
from .meshstack_events import EventLog, Filters
from .options import opt
from .ratelimit import KeyedLimiter, Rejected
from .registry import register
from .server import HTTPError, SimOptions, SimServer, decode_basic, json_response, read_json, retry_headers

__all__ = ["MEDIA_TYPE", "MeshStackOptions", "MeshStackSim"]

#: The versioned media type the event log endpoints require (meshstack.md §2.1).
MEDIA_TYPE = "application/vnd.meshcloud.api.mesheventlog.v1-preview.hal+json"
_LIST_PATH = "/api/meshobjects/mesheventlogs"
_DEFAULT_SIZE = 50
_MAX_SIZE = 1000
# Query parameters copied into the paging links; page/size/sort are set per link.
_LINK_PARAMS = (
    "from", "until", "title", "description", "authorType", "authorIdentifier", "eventType",
    "workspaceName", "workspaceIdentifier", "excludeTitle",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class MeshStackOptions(SimOptions):
    seed: int = opt(1, "seed for event data and credentials; same seed, same events")
    backlog_events: int = opt(2000, "events that already exist at start")
    backlog_secs: float = opt(3600.0, "the backlog is spread over this many seconds before start")
    live_rate: float = opt(2.0, "new events per second while running (0 = none)")
    token_lifetime_secs: int = opt(300, "access token lifetime (expires_in)")
    max_concurrent_per_key: int = opt(1, "concurrent API requests per key before 429 (0 = unlimited)")
    # meshStack documents only "one request at a time per key"; this cap is the simulator's own,
    # set above the client default (10/s) so network jitter never trips a well-behaved client.
    max_rps_per_key: int = opt(20, "API requests per second per key before 429 (0 = unlimited)")
    latency_secs: float = opt(0.005, "time each API request takes; makes overlapping requests observable")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("backlog_events", "backlog_secs", "live_rate", "token_lifetime_secs", "latency_secs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


@register("meshstack")
class MeshStackSim(SimServer[MeshStackOptions]):
    """The meshStack event log API."""

    options_type = MeshStackOptions

    def __init__(self, options: MeshStackOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        self.events = EventLog(o.seed, o.backlog_events, o.backlog_secs, o.live_rate, _now_us())
        self.keys = MeshCredentials.from_seed(o.seed)
        self.tokens = MeshTokens(o.token_lifetime_secs)
        self.limiter = KeyedLimiter(o.max_concurrent_per_key, o.max_rps_per_key)
        self.events_served = 0
        self.rate_limited = 0

    @property
    def credentials(self) -> dict[str, Any]:
        k = self.keys
        return {
            "client_id": k.client_id,
            "client_secret": k.client_secret,
            "api_user": k.api_user,
            "api_password": k.api_password,
        }

    def generated(self) -> int:
        self.events.advance(_now_us())
        return len(self.events)

    def extra_stats(self) -> dict[str, Any]:
        return {
            "events_served": self.events_served,
            "live": self.events.live,
            "tokens_issued": self.tokens.issued,
            "rate_limited": self.rate_limited,
        }

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        return _spring_error(status, message, "", retry_headers(retry_after))

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/login", self._login)
        app.router.add_post(KEYCLOAK_TOKEN_PATH, self._keycloak_token)
        app.router.add_get(_LIST_PATH, self._list)
        app.router.add_get(_LIST_PATH + "/{uuid}", self._single)
        app.router.add_post("/sim/control", self._control)

    # --- authentication ------------------------------------------------------------------------

    async def _login(self, request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            body = await read_json(request)
            if not isinstance(body, dict):
                raise HTTPError(_spring_error(400, "expected a JSON object", request.path))
            try:
                self.keys.check_key(body.get("clientId"), body.get("clientSecret"))
            except InvalidCredentials as exc:
                raise HTTPError(_spring_error(401, str(exc), request.path)) from None
            return json_response(self.tokens.issue(self.keys.client_id, _issuer(request)))
        if request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            if form.get("grant_type") != "client_credentials":
                raise HTTPError(_oauth_error(400, "unsupported_grant_type", "Unsupported grant_type"))
            if not form.get("client_id") or not form.get("client_secret"):
                raise HTTPError(
                    _oauth_error(400, "invalid_request", "client_id and client_secret are required")
                )
            # meshStack hands the form variant to its identity provider (meshstack.md §1.1, variant A);
            # 307 tells the client to repeat the same POST there.
            location = f"{_origin(request)}{KEYCLOAK_TOKEN_PATH}"
            return web.Response(status=307, headers={"Location": location})
        raise HTTPError(
            _spring_error(415, f"unsupported content type {request.content_type!r}", request.path)
        )

    async def _keycloak_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            raise HTTPError(_oauth_error(400, "unsupported_grant_type", "Unsupported grant_type"))
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = decode_basic(request.headers.get("Authorization", ""))
        if client_id is None and basic is not None:
            # Keycloak also takes the client credentials as HTTP Basic (client_secret_basic).
            client_id, client_secret = basic
        try:
            self.keys.check_key(client_id, client_secret)
        except InvalidCredentials:
            raise HTTPError(
                _oauth_error(401, "unauthorized_client", "Invalid client or Invalid client credentials")
            ) from None
        return json_response(self.tokens.issue(self.keys.client_id, _issuer(request)))

    def _authenticate(self, request: web.Request) -> str:
        """The rate-limit key of the caller, or a 401 that lets clients detect token expiry."""
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        try:
            if scheme.lower() == "bearer":
                return self.tokens.verify(value.strip())
            if scheme.lower() == "basic":
                return self.keys.check_basic(request.headers["Authorization"])
            raise InvalidCredentials("full authentication is required to access this resource")
        except InvalidCredentials as exc:
            challenge = (
                'Bearer realm="meshfed", error="invalid_token"' if scheme.lower() == "bearer" else "Bearer"
            )
            raise HTTPError(
                _spring_error(401, str(exc), request.path, {"WWW-Authenticate": challenge})
            ) from None

    # --- event logs ----------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.Response:
        key = self._authenticate(request)
        _require_media_type(request)
        query = _parse_query(request)
        async with self._slot(key, request):
            self.events.advance(_now_us())
            matches = self.events.query(query.from_us, query.until_us, query.filters)
            body = self._page(request, matches, query)
        return web.Response(body=orjson.dumps(body), content_type=MEDIA_TYPE)

    async def _single(self, request: web.Request) -> web.Response:
        key = self._authenticate(request)
        _require_media_type(request)
        async with self._slot(key, request):
            self.events.advance(_now_us())
            event = self.events.get(request.match_info["uuid"])
            if event is None:
                raise HTTPError(_spring_error(404, "meshEventLog not found", request.path))
            self.events_served += 1
            record = self.events.render(event, _origin(request))
        return web.Response(body=orjson.dumps(record), content_type=MEDIA_TYPE)

    def _page(self, request: web.Request, matches: list[Any], query: _Query) -> dict[str, Any]:
        size, number = query.size, query.page
        total = len(matches)
        pages = math.ceil(total / size)
        chunk = matches[number * size : (number + 1) * size]
        origin = _origin(request)
        body: dict[str, Any] = {}
        # With zero results meshStack's Spring HAL omits `_embedded` (unconfirmed, meshstack.md §3);
        # the simulator omits it so clients are forced to cope.
        if chunk:
            body["_embedded"] = {"meshEventLogs": [self.events.render(e, origin) for e in chunk]}
            self.events_served += len(chunk)
        if pages > 1:
            body["_links"] = _links(request, origin, number, size, pages)
        body["page"] = {"size": size, "totalElements": total, "totalPages": pages, "number": number}
        return body

    @contextlib.asynccontextmanager
    async def _slot(self, key: str, request: web.Request) -> AsyncIterator[None]:
        """Hold the key's rate-limit slot for the (simulated) duration of the request; 429 when over."""
        try:
            self.limiter.acquire(key, asyncio.get_running_loop().time())
        except Rejected as exc:
            self.rate_limited += 1
            headers = {"Retry-After": str(exc.retry_after)}
            raise HTTPError(_spring_error(429, exc.reason, request.path, headers)) from None
        try:
            if self.options.latency_secs:
                await asyncio.sleep(self.options.latency_secs)
            yield
        finally:
            self.limiter.release(key)

    async def _control(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("live"), bool):
            raise web.HTTPBadRequest(text='expected {"live": true|false}')
        self.events.set_live(body["live"], _now_us())
        return json_response({"live": self.events.live, "generated": len(self.events)})


@dataclass(frozen=True)
class _Query:
    from_us: int | None
    until_us: int | None
    page: int
    size: int
    filters: Filters


def _parse_query(request: web.Request) -> _Query:
    q = request.query
    if "workspaceName" in q and "workspaceIdentifier" in q:
        raise HTTPError(
            _spring_error(400, "workspaceName cannot be combined with workspaceIdentifier", request.path)
        )
    page = _int_param(request, "page", 0)
    if page < 0:
        raise HTTPError(_spring_error(400, "page must not be negative", request.path))
    size = _int_param(request, "size", _DEFAULT_SIZE)
    # Spring falls back to the default for sizes below 1 and silently lowers sizes above the
    # maximum (meshstack.md §2.2: "larger values are lowered").
    size = _DEFAULT_SIZE if size < 1 else min(size, _MAX_SIZE)
    filters = Filters(
        title=q.get("title"),
        description=q.get("description"),
        author_type=q.get("authorType"),
        author_identifier=q.get("authorIdentifier"),
        event_type=q.get("eventType"),
        workspace_name=q.get("workspaceName"),
        workspace_identifier=q.get("workspaceIdentifier"),
        exclude_titles=tuple(q.getall("excludeTitle", ())),
    )
    return _Query(_time_param(request, "from"), _time_param(request, "until"), page, size, filters)


def _int_param(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise HTTPError(_spring_error(400, f"{name} must be an integer, got {raw!r}", request.path)) from None


def _time_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        parsed = dt.datetime.fromisoformat(
            raw.replace(" ", "+")
        )  # a '+' offset sent unencoded arrives as ' '
    except ValueError:
        raise HTTPError(
            _spring_error(400, f"{name} is not an ISO-8601 timestamp: {raw!r}", request.path)
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    delta = parsed - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _require_media_type(request: web.Request) -> None:
    accepted = {part.split(";")[0].strip().lower() for part in request.headers.get("Accept", "").split(",")}
    if MEDIA_TYPE not in accepted:
        raise HTTPError(_spring_error(406, f"this endpoint requires 'Accept: {MEDIA_TYPE}'", request.path))


def _links(request: web.Request, origin: str, number: int, size: int, pages: int) -> dict[str, Any]:
    base = [(k, v) for k in _LINK_PARAMS for v in request.query.getall(k, ())]

    def href(page: int) -> dict[str, str]:
        params = [*base, ("page", str(page)), ("size", str(size)), ("sort", "id,asc")]
        query = "&".join(f"{k}={quote(v, safe=':,')}" for k, v in params)
        return {"href": f"{origin}{_LIST_PATH}?{query}"}

    links = {"first": href(0)}
    if number > 0:
        links["prev"] = href(min(number, pages) - 1)
    links["self"] = href(number)
    if number < pages - 1:
        links["next"] = href(number + 1)
    links["last"] = href(pages - 1)
    return links


def _spring_error(
    status: int, message: str, path: str, headers: dict[str, str] | None = None
) -> web.Response:
    # meshStack is a Spring Boot service; its errors use Spring's default error body.
    body = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "status": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "path": path,
    }
    return json_response(body, status, headers)


def _oauth_error(status: int, error: str, description: str) -> web.Response:
    return json_response({"error": error, "error_description": description}, status)


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _issuer(request: web.Request) -> str:
    return f"{_origin(request)}/auth/realms/meshfed"


def _now_us() -> int:
    return time.time_ns() // 1000
