"""Cisco Duo Admin API log endpoints simulator (facts in specs/duo.md).

Serves ``/admin/v2/logs/authentication`` (``next_offset`` a two-item array), ``/admin/v2/logs/
telephony`` and ``/admin/v2/logs/activity`` (``next_offset`` a ``"ts,id"`` string),
``/admin/v1/logs/administrator`` (``mintime`` in seconds, no paging) and
``/admin/v1/trust_monitor/events`` (``offset`` ← ``metadata.next_offset``). Every request must be
signed as Duo checks it: the query is URL-decoded and re-canonicalised (never the raw string), the
date comes from ``X-Duo-Date`` else ``Date``, v2 accepts a 40-hex (SHA-1) or 128-hex (SHA-512)
HMAC, v5 adds the body and ``x-duo-*`` header hashes. A bad signature answers 401/40103; more
than ``requests_per_minute`` per key and endpoint answers 429/42901 with no ``Retry-After``, as Duo
does. Windows ending within the last two minutes come back empty (Duo's availability delay).

Usage::

    async with DuoSim(backlog_events=500, live_rate=0, requests_per_minute=0) as sim:
        sim.credentials  # ikey, skey, host (host:port, what the client signs)

``/sim/stats`` adds per-endpoint request and 429 counts, ``bad_signatures`` and events per type.
"""

from __future__ import annotations

import asyncio
import hmac
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from logferry.sources.duo.signing import (
    SignatureScheme,
    canon_params,
    canonical_string,
    decoded_query,
    hmac_hex,
)

from .duo_logs import LOG_TYPES, DuoEvent, DuoLog, LogType
from .options import opt
from .ratelimit import SlidingWindow
from .registry import register
from .server import HTTPError, SimOptions, SimServer, decode_basic, json_response

__all__ = ["PATHS", "DuoOptions", "DuoSim"]

PATHS: dict[LogType, str] = {
    "authentication": "/admin/v2/logs/authentication",
    "administrator": "/admin/v1/logs/administrator",
    "telephony": "/admin/v2/logs/telephony",
    "activity": "/admin/v2/logs/activity",
    "trust_monitor": "/admin/v1/trust_monitor/events",
}
_MAX_LIMIT = 1000
_DEFAULT_LIMIT = 100
_TRUST_MONITOR_MAX_RANGE_MS = 180 * 86400 * 1000


@dataclass(frozen=True, kw_only=True)
class DuoOptions(SimOptions):
    seed: int = opt(1, "seed for events and keys; same seed, same events")
    backlog_events: int = opt(500, "events of each log type that exist at start")
    backlog_secs: float = opt(
        3600.0, "the backlog is spread over this many seconds before the availability delay"
    )
    live_rate: float = opt(0.2, "new events per second of each log type while running (0 = none)")
    availability_delay_secs: float = opt(120.0, "queries whose maxtime is more recent than this are empty")
    # Duo staff: 2 requests/min for each log endpoint (duo_client_python#101).
    requests_per_minute: int = opt(
        2, "requests per minute per key and endpoint before 429/42901 (0 = unlimited)"
    )
    # specs/duo.md says v1 log endpoints have no paging; the size of one answer is not published.
    v1_page_cap: int = opt(1000, "most records one administrator-log answer holds (oldest first)")
    malformed_every: int = opt(0, "every Nth event of each type lacks its id (or time) field (0 = none)")
    latency_secs: float = opt(0.0, "time each API request takes")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("backlog_events", "backlog_secs", "live_rate", "availability_delay_secs",
                     "requests_per_minute", "malformed_every", "latency_secs"):  # fmt: skip
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.v1_page_cap < 1:
            raise ValueError("v1_page_cap must be >= 1")


def _fail(status: int, code: int, message: str, detail: str | None = None) -> HTTPError:
    body: dict[str, Any] = {"code": code, "message": message, "stat": "FAIL"}
    if detail is not None:
        body["message_detail"] = detail
    return HTTPError(json_response(body, status))


def _ok(response: Any) -> web.Response:
    return json_response({"stat": "OK", "response": response})


def _now_ms() -> int:
    return int(time.time() * 1000)


@register("duo")
class DuoSim(SimServer[DuoOptions]):
    """The Duo Admin API log endpoints."""

    options_type = DuoOptions

    def __init__(self, options: DuoOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        rng = random.Random(o.seed)
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        self.ikey = "DI" + "".join(rng.choice(alphabet) for _ in range(18))
        self.skey = "".join(rng.choice(alphabet + alphabet.lower()) for _ in range(40))
        self.logs = {t: DuoLog(t, o.seed, o.malformed_every) for t in LOG_TYPES}
        self.start_ms = _now_ms()
        last = self.start_ms - int(o.availability_delay_secs * 1000) - 1
        span = int(o.backlog_secs * 1000)
        for log in self.logs.values():
            spread = random.Random(f"{o.seed}/{log.log_type}")
            for _ in range(o.backlog_events):
                log.add(last - spread.randrange(span + 1))
        self._live_made = 0
        self._windows: dict[tuple[str, str], SlidingWindow] = {}
        self.endpoint_requests: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.bad_signatures = 0
        self.served: Counter[str] = Counter()

    @property
    def credentials(self) -> dict[str, Any]:
        host = self.url.split("://", 1)[1] if self.started else None
        return {"ikey": self.ikey, "skey": self.skey, "host": host}

    def generated(self) -> int:
        self.advance()
        return sum(len(log.events) for log in self.logs.values())

    def extra_stats(self) -> dict[str, Any]:
        return {
            "endpoint_requests": dict(self.endpoint_requests),
            "rate_limited": dict(self.rate_limited),
            "bad_signatures": self.bad_signatures,
            "events": {t: len(log.events) for t, log in self.logs.items()},
            "served": dict(self.served),
        }

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        # Duo's envelope; its numeric codes are the HTTP status followed by two digits (40103, 42901).
        return json_response({"code": status * 100 + 1, "message": message, "stat": "FAIL"}, status)

    def add_routes(self, app: web.Application) -> None:
        for log_type, path in PATHS.items():
            app.router.add_get(path, self._handler(log_type))

    # --- data ------------------------------------------------------------------------------------

    def advance(self) -> None:
        """Create the live events that are due by now (each at the moment it became due)."""
        rate = self.options.live_rate
        if rate <= 0:
            return
        due = int((_now_ms() - self.start_ms) / 1000 * rate)
        for k in range(self._live_made, due):
            ts = self.start_ms + int((k + 1) / rate * 1000)
            for log in self.logs.values():
                log.add(ts)
        self._live_made = max(self._live_made, due)

    def visible_until_ms(self) -> int:
        return _now_ms() - int(self.options.availability_delay_secs * 1000)

    def expected(self, log_type: LogType, until_ms: int | None = None) -> list[dict[str, Any]]:
        """Every well-formed record of ``log_type`` that exists (up to ``until_ms``), oldest first."""
        self.advance()
        log = self.logs[log_type]
        last = until_ms if until_ms is not None else self.visible_until_ms()
        return [log.render(e) for e in log.between(0, last) if not e.malformed]

    def malformed_count(self, log_type: LogType) -> int:
        return sum(e.malformed for e in self.logs[log_type].events)

    # --- request checks ------------------------------------------------------------------------

    def _verify(self, request: web.Request, body: bytes) -> str:
        """The caller's ikey, or 401/40103 unless the signature is one Duo would accept."""
        basic = decode_basic(request.headers.get("Authorization", ""))
        date = request.headers.get("X-Duo-Date") or request.headers.get("Date")
        if basic is not None and date is not None and basic[0] == self.ikey:
            signature = basic[1]
            schemes: tuple[SignatureScheme, ...] = (
                ("v2-sha1",) if len(signature) == 40 else ("v2-sha512", "v5") if len(signature) == 128 else ()
            )
            params = canon_params(decoded_query(request.rel_url.raw_query_string))
            x_duo = {k: v for k, v in request.headers.items() if k.lower().startswith("x-duo-")}
            # Real Duo is on 443, so the signed host never has a port; here the port is not 443 and
            # clients sign the host with it (logferry, duo_client given "host:port") or without it
            # (duo_client given port=): both are the host the client addressed.
            hosts = {request.host.lower(), (request.url.host or "").lower()}
            for scheme in schemes:
                for host in hosts:
                    canonical = canonical_string(
                        scheme, date, request.method, host, request.path, params, body, x_duo
                    )
                    if hmac.compare_digest(hmac_hex(self.skey, canonical, scheme), signature.lower()):
                        return basic[0]
        self.bad_signatures += 1
        raise _fail(401, 40103, "Invalid signature in request credentials")

    def _admit(self, ikey: str, path: str) -> None:
        rpm = self.options.requests_per_minute
        if not rpm:
            return
        window = self._windows.setdefault((ikey, path), SlidingWindow(rpm, 60.0))
        if window.admit(time.monotonic()) is not None:
            self.rate_limited[path] += 1
            raise _fail(429, 42901, "Too Many Requests")

    def _handler(self, log_type: LogType) -> Callable[[web.Request], Any]:
        serve = {
            "authentication": self._v2_log,
            "telephony": self._v2_log,
            "activity": self._v2_log,
            "administrator": self._administrator,
            "trust_monitor": self._trust_monitor,
        }[log_type]

        async def handle(request: web.Request) -> web.Response:
            self.endpoint_requests[request.path] += 1
            ikey = self._verify(request, await request.read())
            self._admit(ikey, request.path)
            if self.options.latency_secs:
                await asyncio.sleep(self.options.latency_secs)
            self.advance()
            return serve(log_type, request)

        return handle

    # --- endpoints -----------------------------------------------------------------------------

    def _v2_log(self, log_type: LogType, request: web.Request) -> web.Response:
        q = request.query
        mintime, maxtime = _ms(q, "mintime"), _ms(q, "maxtime")
        if mintime >= maxtime:
            raise _fail(400, 40002, "Invalid request parameters", "mintime must be less than maxtime")
        limit = _limit(q)
        sort = q.get("sort", "ts:desc")  # the default order is not published; the SDKs' own default is desc
        if sort not in ("ts:asc", "ts:desc"):
            raise _fail(400, 40002, "Invalid request parameters", "sort")
        after = _next_offset(q.getall("next_offset", []))
        events: list[DuoEvent] = []
        if maxtime <= self.visible_until_ms():
            events = self.logs[log_type].between(mintime, maxtime)
        total = len(events)
        if sort == "ts:desc":
            events = events[::-1]
        if after is not None:
            # next_offset names the last record served: continue strictly beyond it in the sort order.
            if sort == "ts:asc":
                events = [e for e in events if e.sort_key > after]
            else:
                events = [e for e in events if e.sort_key < after]
        page, more = events[:limit], len(events) > limit
        records = [self.logs[log_type].render(e) for e in page]
        self.served[log_type] += len(records)
        last = page[-1] if page else None
        if log_type == "authentication":
            offset: Any = [str(last.ts_ms), last.event_id] if more and last else None
            return _ok({"authlogs": records, "metadata": {"next_offset": offset, "total_objects": total}})
        offset = f"{last.ts_ms},{last.event_id}" if more and last else None
        metadata = {"next_offset": offset, "total_objects": {"relation": "eq", "value": total}}
        return _ok({"items": records, "metadata": metadata})

    def _administrator(self, log_type: LogType, request: web.Request) -> web.Response:
        mintime = _int(request.query, "mintime", required=False) or 0
        events = self.logs[log_type].between(mintime * 1000, self.visible_until_ms())
        records = [self.logs[log_type].render(e) for e in events[: self.options.v1_page_cap]]
        self.served[log_type] += len(records)
        return _ok(records)

    def _trust_monitor(self, log_type: LogType, request: web.Request) -> web.Response:
        q = request.query
        mintime, maxtime = _ms(q, "mintime"), _ms(q, "maxtime")
        if maxtime - mintime >= _TRUST_MONITOR_MAX_RANGE_MS:
            raise _fail(400, 40002, "Invalid request parameters", "time range must be less than 180 days")
        limit = _limit(q)
        after = _next_offset(q.getall("offset", []))
        events: list[DuoEvent] = []
        if maxtime <= self.visible_until_ms():
            events = self.logs[log_type].between(mintime, maxtime)
        if after is not None:
            events = [e for e in events if e.sort_key > after]
        page, more = events[:limit], len(events) > limit
        records = [self.logs[log_type].render(e) for e in page]
        self.served[log_type] += len(records)
        offset = f"{page[-1].ts_ms},{page[-1].event_id}" if more else None
        return _ok({"events": records, "metadata": {"next_offset": offset}})


def _int(q: Any, name: str, required: bool = True) -> int | None:
    raw = q.get(name)
    if raw is None:
        if required:
            raise _fail(400, 40002, "Invalid request parameters", f"{name} is required")
        return None
    try:
        return int(raw)
    except ValueError:
        raise _fail(400, 40002, "Invalid request parameters", f"{name} must be an integer") from None


def _ms(q: Any, name: str) -> int:
    value = _int(q, name)
    assert value is not None
    if len(str(value)) != 13:
        raise _fail(400, 40002, "Invalid request parameters", f"{name} must be a 13-digit timestamp in ms")
    return value


def _limit(q: Any) -> int:
    limit = _int(q, "limit", required=False) or _DEFAULT_LIMIT
    if not 1 <= limit <= _MAX_LIMIT:
        raise _fail(400, 40002, "Invalid request parameters", f"limit must be 1..{_MAX_LIMIT}")
    return limit


def _next_offset(values: list[str]) -> tuple[int, str] | None:
    """``"ts,id"`` as one value, or the two items as repeated keys (how duo_client sends a list)."""
    if not values:
        return None
    parts = values[0].split(",", 1) if len(values) == 1 else values[:2]
    try:
        return int(parts[0]), parts[1]
    except (ValueError, IndexError):
        raise _fail(400, 40002, "Invalid request parameters", "next_offset") from None
