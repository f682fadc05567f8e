"""Cisco Secure Endpoint (AMP for Endpoints) API v1 simulator (facts in specs/cisco_secure_endpoint.md).

Serves ``GET /v1/version``, ``GET /v1/events`` and ``GET /v1/event_types`` behind HTTP Basic
(``client_id:api_key``; a wrong pair gets the vendor's 401 body). Events come newest first;
``start_date`` is inclusive; ``event_type[]``, ``connector_guid[]`` and ``group_guid[]`` filter
(OR within one, AND across); ``limit``/``offset`` page and ``metadata.links.next`` is a full URL.
Unknown parameters get a 400 naming them. Every authenticated answer carries the hourly quota
in ``x-ratelimit-*`` headers (or the documented ``X-Rate-Limit-*`` spelling, or both); an
exhausted quota answers 429.

Usage::

    async with AmpSim(backlog_events=5000, live_rate=0) as sim:
        sim.credentials  # client_id, api_key

Test aids: ``insert_per_request`` adds that many new (newest) events before each ``/v1/events``
answer, so offsets shift between pages deterministically; ``POST /sim/control {"live": false}``
pauses live generation; ``/sim/stats`` adds ``events_served``, ``rate_limited``, ``quota_used``
and ``requests_by_path``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import random
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from .amp_events import EVENT_TYPES, Event, EventFilter, EventStore
from .options import opt
from .registry import register
from .server import HTTPError, SimOptions, SimServer, decode_basic, json_response, read_json

__all__ = ["API_VERSION", "AmpOptions", "AmpSim", "HourlyQuota"]

API_VERSION = "v1.2.0"
EVENTS_PATH = "/v1/events"
#: Query parameters ``GET /v1/events`` knows (spec §3); anything else is a 400.
_EVENT_PARAMS = frozenset(
    {
        "start_date",
        "limit",
        "offset",
        "event_type[]",
        "connector_guid[]",
        "group_guid[]",
        "detection_sha256",
        "application_sha256",
    }
)
_HEADER_STYLES = {
    "x-ratelimit": ("x-ratelimit-",),
    "x-rate-limit": ("X-Rate-Limit-",),
    "both": ("x-ratelimit-", "X-Rate-Limit-"),
}
_HEADER_NAMES = {"limit": "Limit", "remaining": "Remaining", "reset": "Reset", "resetdate": "ResetDate"}


@dataclass(frozen=True, kw_only=True)
class AmpOptions(SimOptions):
    seed: int = opt(1, "seed for event data and credentials; same seed, same events")
    backlog_events: int = opt(2000, "events that already exist at start")
    backlog_secs: float = opt(6 * 3600.0, "the backlog is spread over this many seconds before start")
    live_rate: float = opt(1.0, "new events per second while running (0 = none)")
    insert_per_request: int = opt(0, "new events added before each /v1/events answer (shifts offsets)")
    computers: int = opt(40, "endpoints the events come from")
    quota_per_hour: int = opt(3000, "requests per quota window per client id before 429 (0 = unlimited)")
    quota_window_secs: float = opt(3600.0, "length of the quota window (shorten it to test resets)")
    header_style: str = opt("x-ratelimit", "rate-limit header spelling: x-ratelimit, x-rate-limit or both")
    default_limit: int = opt(500, "page size when the request gives no limit")
    max_limit: int = opt(500, "larger limits are lowered to this")
    latency_secs: float = opt(0.005, "time each API request takes")
    malformed_every: int = opt(0, "every Nth event (by id) is served without its timestamp (0 = none)")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in (
            "backlog_events",
            "backlog_secs",
            "live_rate",
            "insert_per_request",
            "latency_secs",
            "malformed_every",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.header_style not in _HEADER_STYLES:
            raise ValueError(f"header_style must be one of {', '.join(_HEADER_STYLES)}")
        if self.quota_window_secs <= 0 or self.max_limit < 1 or self.default_limit < 1:
            raise ValueError("quota_window_secs, max_limit and default_limit must be positive")


class HourlyQuota:
    """A fixed-window request quota per client id, reported the way the vendor does (spec §5)."""

    def __init__(self, limit: int, window_secs: float, start: float) -> None:
        self.limit = limit
        self.window_secs = window_secs
        self._start = start
        self._used: dict[str, tuple[int, int]] = {}  # key -> (window number, requests in it)

    def _window(self, now: float) -> tuple[int, float]:
        n = int((now - self._start) // self.window_secs)
        return n, self._start + (n + 1) * self.window_secs - now

    def take(self, key: str, now: float) -> tuple[bool, int, float]:
        """Spend one request: ``(admitted, remaining, seconds until the window resets)``."""
        n, reset = self._window(now)
        window, used = self._used.get(key, (n, 0))
        if window != n:
            used = 0
        if self.limit and used >= self.limit:
            return False, 0, reset
        used += 1
        self._used[key] = (n, used)
        return True, max(0, self.limit - used), reset

    def used(self, key: str, now: float) -> int:
        n, _ = self._window(now)
        window, used = self._used.get(key, (n, 0))
        return used if window == n else 0


@register("amp")
class AmpSim(SimServer[AmpOptions]):
    """The Cisco Secure Endpoint API v1 (events)."""

    options_type = AmpOptions

    def __init__(self, options: AmpOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        self.store = EventStore(
            o.seed, o.backlog_events, o.backlog_secs, o.live_rate, time.time_ns(), o.computers
        )
        rng = random.Random(f"{o.seed}:credentials")
        self.client_id = rng.randbytes(10).hex()
        self.api_key = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.quota = HourlyQuota(o.quota_per_hour, o.quota_window_secs, time.monotonic())
        self.events_served = 0
        self.rate_limited = 0
        self.by_path: Counter[str] = Counter()
        #: (monotonic time, status) of the latest /v1/events answers, for timing assertions.
        self.events_log: deque[tuple[float, int]] = deque(maxlen=10_000)

    @property
    def credentials(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "api_key": self.api_key}

    def generated(self) -> int:
        self.store.advance(time.time_ns())
        return len(self.store)

    def extra_stats(self) -> dict[str, Any]:
        return {
            "events_served": self.events_served,
            "rate_limited": self.rate_limited,
            "quota_used": self.quota.used(self.client_id, time.monotonic()),
            "requests_by_path": dict(sorted(self.by_path.items())),
            "live": self.store.live,
        }

    def expected_ids(self, since: float = 0.0, event_types: frozenset[int] = frozenset()) -> set[int]:
        """Ids of the events at or after ``since`` (epoch seconds) of the given types (empty = all)."""
        self.store.advance(time.time_ns())
        return {
            e.id
            for e in self.store.all_events()
            if e.seconds >= since and (not event_types or e.type_id in event_types)
        }

    def malformed_ids(self) -> set[int]:
        """Ids of the events served broken (``malformed_every``)."""
        return {e.id for e in self.store.all_events() if self._malformed(e.id)}

    def _malformed(self, event_id: int) -> bool:
        n = self.options.malformed_every
        return n > 0 and event_id % n == 0

    def _render(self, e: Event, origin: str) -> dict[str, Any]:
        record = self.store.render(e, origin)
        if self._malformed(e.id):
            del record["timestamp"]
        return record

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        headers = None if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        return _error(status, code or _DESCRIPTIONS.get(status, "Error"), [message], headers)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/version", self._version)
        app.router.add_get(EVENTS_PATH, self._events)
        app.router.add_get("/v1/event_types", self._event_types)
        app.router.add_post("/sim/control", self._control)

    # --- handlers ------------------------------------------------------------------------------

    async def _version(self, request: web.Request) -> web.Response:
        headers = await self._admit(request)
        body = {
            "version": API_VERSION,
            "metadata": {"links": {"self": f"{_origin(request)}/v1/version"}},
            "data": {},
        }
        return json_response(body, headers=headers)

    async def _event_types(self, request: web.Request) -> web.Response:
        headers = await self._admit(request)
        # The spec leaves this response's fields unconfirmed; id/name/description is the shape of
        # the other v1 list endpoints.
        data = [{"id": i, "name": name, "description": f"{name} events"} for i, name, _ in EVENT_TYPES]
        body = {
            "version": API_VERSION,
            "metadata": {
                "links": {"self": f"{_origin(request)}/v1/event_types"},
                "results": {
                    "total": len(data),
                    "current_item_count": len(data),
                    "index": 0,
                    "items_per_page": len(data),
                },
            },
            "data": data,
        }
        return json_response(body, headers=headers)

    async def _events(self, request: web.Request) -> web.Response:
        headers = await self._admit(request)
        try:
            query = _parse_events_query(request, self.options)
        except _BadRequest as exc:
            self.events_log.append((time.monotonic(), 400))
            raise HTTPError(_error(400, "Bad Request", exc.details, headers)) from None
        now_ns = time.time_ns()
        for _ in range(self.options.insert_per_request):
            self.store.add(now_ns)
        self.store.advance(now_ns)
        matches = self.store.select(query.start_secs, query.filter)
        chunk = matches[query.offset : query.offset + query.limit]
        origin = _origin(request)
        links = {"self": _link(origin, request, query.limit, query.offset)}
        if query.offset > 0:
            links["prev"] = _link(origin, request, query.limit, max(0, query.offset - query.limit))
        if query.offset + query.limit < len(matches):
            links["next"] = _link(origin, request, query.limit, query.offset + query.limit)
        body = {
            "version": API_VERSION,
            "metadata": {
                "links": links,
                "results": {
                    "total": len(matches),
                    "current_item_count": len(chunk),
                    "index": query.offset,
                    "items_per_page": query.limit,
                },
            },
            "data": [self._render(e, origin) for e in chunk],
        }
        self.events_served += len(chunk)
        self.events_log.append((time.monotonic(), 200))
        return json_response(body, headers=headers)

    async def _control(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("live"), bool):
            raise web.HTTPBadRequest(text='expected {"live": true|false}')
        self.store.set_live(body["live"], time.time_ns())
        return json_response({"live": self.store.live, "generated": len(self.store)})

    # --- auth and quota ------------------------------------------------------------------------

    async def _admit(self, request: web.Request) -> dict[str, str]:
        """Check Basic auth and spend one quota request; returns the rate-limit headers to send."""
        self.by_path[request.path] += 1
        decoded = decode_basic(request.headers.get("Authorization", ""))
        if decoded is None or decoded != (self.client_id, self.api_key):
            raise HTTPError(json_response(_UNAUTHORIZED, 401))
        admitted, remaining, reset = self.quota.take(self.client_id, time.monotonic())
        headers = self._rate_headers(remaining, reset)
        if not admitted:
            self.rate_limited += 1
            if request.path == EVENTS_PATH:
                self.events_log.append((time.monotonic(), 429))
            raise HTTPError(_error(429, "Too Many Requests", ["API rate limit exceeded"], headers))
        if self.options.latency_secs:
            await asyncio.sleep(self.options.latency_secs)
        return headers

    def _rate_headers(self, remaining: int, reset: float) -> dict[str, str]:
        reset_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=reset)
        values = {
            "limit": str(self.options.quota_per_hour),
            "remaining": str(remaining),
            "reset": str(math.ceil(reset)),
            "resetdate": reset_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        return {
            prefix + (_HEADER_NAMES[name] if prefix[0] == "X" else name): value
            for prefix in _HEADER_STYLES[self.options.header_style]
            for name, value in values.items()
        }


# --- query parsing ---------------------------------------------------------------------------------

_UNAUTHORIZED = {
    "version": "v1.0.0",
    "data": {},
    "errors": [
        {"error_code": 401, "description": "Unauthorized", "details": ["Unknown API key or Client ID"]}
    ],
}
_DESCRIPTIONS = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}


class _BadRequest(Exception):
    def __init__(self, details: list[str]) -> None:
        super().__init__("; ".join(details))
        self.details = details


@dataclass(frozen=True)
class _EventsQuery:
    start_secs: int | None
    limit: int
    offset: int
    filter: EventFilter


def _parse_events_query(request: web.Request, o: AmpOptions) -> _EventsQuery:
    q = request.query
    unknown = sorted(set(q) - _EVENT_PARAMS)
    if unknown:
        raise _BadRequest([f"Unknown parameter: {name}" for name in unknown])
    problems: list[str] = []
    start = None
    if q.get("start_date"):
        # An unencoded '+' offset arrives as a space.
        raw = q["start_date"].replace(" ", "+")
        try:
            parsed = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
            start = math.ceil((parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp())
        except ValueError:
            problems.append(f"start_date: invalid ISO 8601 date {raw!r}")
    limit = _non_negative(q.get("limit"), "limit", problems)
    offset = _non_negative(q.get("offset"), "offset", problems) or 0
    types: set[int] = set()
    for raw in q.getall("event_type[]", ()):
        try:
            types.add(int(raw))
        except ValueError:
            problems.append(f"event_type: {raw!r} is not a numeric event type id")
    if problems:
        raise _BadRequest(problems)
    flt = EventFilter(
        event_types=frozenset(types),
        connectors=frozenset(q.getall("connector_guid[]", ())),
        groups=frozenset(q.getall("group_guid[]", ())),
        detection_sha256=q.get("detection_sha256"),
        application_sha256=q.get("application_sha256"),
    )
    size = o.default_limit if not limit else min(limit, o.max_limit)
    return _EventsQuery(start, size, offset, flt)


def _non_negative(raw: str | None, name: str, problems: list[str]) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        problems.append(f"{name}: must be a non-negative integer, got {raw!r}")
        return None
    return value


def _link(origin: str, request: web.Request, limit: int, offset: int) -> str:
    keep = [(k, v) for k, v in request.query.items() if k not in ("limit", "offset")]
    query = urlencode([*keep, ("limit", str(limit)), ("offset", str(offset))], quote_via=quote, safe=":")
    return f"{origin}{request.path}?{query}"


def _error(
    status: int, description: str, details: list[str], headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "version": API_VERSION,
        "data": {},
        "errors": [{"error_code": status, "description": description, "details": details}],
    }
    return json_response(body, status, headers)


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"
