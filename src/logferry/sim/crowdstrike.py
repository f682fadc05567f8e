"""CrowdStrike Falcon OAuth2 and Event Streams simulator (facts in specs/crowdstrike.md §2, §3, §9).

Serves ``POST /oauth2/token`` (form credentials → **201**, 30-minute tokens, CrowdStrike's
``errors[]`` body on 401), ``GET /sensors/entities/datafeed/v2`` (one resource per partition with
``dataFeedURL``, ``sessionToken{token, expiration}``, ``refreshActiveSessionURL`` and
``refreshActiveSessionInterval``), the feed ``GET /sensors/entities/datafeed/v1/{partition}``
(``Authorization: Token``, ``offset``, ``eventType``; a chunked NDJSON response that stays open,
sends blank keepalive lines when idle and ends with EOF to force rediscovery) and
``POST /sensors/entities/datafeed-actions/v1/{partition}`` (refresh; 404 ``no active stream session
found`` with no consumer attached) and the Alerts API (``crowdstrike_alerts``). A session not
refreshed within its interval expires and its stream ends. API calls carry
``X-Ratelimit-Limit``/``X-Ratelimit-Remaining`` and answer 429 over the per-minute budget, without
``Retry-After`` (as a third party observed).

Where the spec leaves behaviour open the simulator picks one and says so: ``offset`` is inclusive
by default (``offset_inclusive``), a stream opened without ``offset`` starts at the oldest retained
event, and a second connection to a partition already streaming for the same ``appId`` is refused
with 409.

Usage::

    async with CrowdStrikeSim(partitions=2, backlog_events=500) as sim:
        sim.credentials  # client_id, client_secret

Harness extras: ``POST /sim/drop {"partition": 0, "mode": "eof"|"reset"}`` ends streams now,
``POST /sim/control {"live": false, "partitions": n}`` pauses live generation or changes the
partition count; ``/sim/stats`` adds ``events_served``, ``served_by_partition``, ``discovers``,
``refreshes``, ``sessions_expired``, ``stream_starts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .crowdstrike_alerts import AlertLog, AlertQueryError
from .crowdstrike_events import EventLog
from .options import opt
from .ratelimit import retry_after_secs
from .registry import register
from .server import HTTPError, SimOptions, SimServer, json_response, read_json

__all__ = ["CrowdStrikeOptions", "CrowdStrikeSim"]

TOKEN_PATH = "/oauth2/token"
DISCOVER_PATH = "/sensors/entities/datafeed/v2"
FEED_PATH = "/sensors/entities/datafeed/v1/{partition}"
REFRESH_PATH = "/sensors/entities/datafeed-actions/v1/{partition}"
ALERTS_PATH = "/alerts/combined/alerts/v1"
REFRESH_ACTION = "refresh_active_stream_session"
APP_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")
#: Events written to the socket per write; large enough to stream fast, small enough to interleave.
WRITE_BATCH = 256


@dataclass(frozen=True, kw_only=True)
class CrowdStrikeOptions(SimOptions):
    seed: int = opt(1, "seed for events and credentials; same seed, same data")
    partitions: int = opt(2, "stream partitions (one discover resource each)")
    backlog_events: int = opt(1000, "events that already exist in each partition at start")
    backlog_secs: float = opt(3600.0, "the backlog is spread over this many seconds before start")
    live_rate: float = opt(0.0, "new events per second per partition while running (0 = none)")
    first_offset: int = opt(1, "offset of each partition's first event")
    offset_inclusive: bool = opt(True, "offset=N serves event N first (false: the event after N)")
    token_lifetime_secs: int = opt(1799, "OAuth2 access token lifetime (expires_in); Falcon: 30 min")
    refresh_interval_secs: int = opt(1800, "refreshActiveSessionInterval; an unrefreshed session expires")
    keepalive_secs: float = opt(5.0, "blank line sent on an idle stream this often (0 = never)")
    stream_rate: float = opt(0.0, "events per second one stream sends at most (0 = as fast as read)")
    drop_after_events: int = opt(0, "end every stream with EOF after this many events (0 = never)")
    malformed_every: int = opt(0, "insert a non-JSON line after every N events (0 = never)")
    empty_discover_every: int = opt(0, "every Nth discover answers 200 with an empty body (0 = never)")
    requests_per_minute: int = opt(6000, "API requests (token, discover, refresh) per minute before 429")
    member_cid: str = opt("", "child CID accepted as member_cid (MSSP); empty = any member_cid refused")
    alerts: int = opt(0, "alerts the Alerts API holds, spread over backlog_secs")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.partitions < 1:
            raise ValueError("partitions must be >= 1")
        for name in ("backlog_events", "backlog_secs", "live_rate", "keepalive_secs", "stream_rate"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.refresh_interval_secs < 1 or self.token_lifetime_secs < 1:
            raise ValueError("refresh_interval_secs and token_lifetime_secs must be >= 1")


@dataclass
class _Session:
    """One partition's stream session for one appId."""

    token: str
    deadline: float  # monotonic; the stream ends when it passes without a refresh
    started: float


@dataclass
class _Stream:
    #: The session the stream was opened with: only a refresh moves its deadline, a rediscovery
    #: issues sessions for new connections and leaves an open stream's alone.
    session: _Session
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    mode: str = "eof"


@register("crowdstrike")
class CrowdStrikeSim(SimServer[CrowdStrikeOptions]):
    """The Falcon OAuth2 token endpoint and Event Streams API."""

    options_type = CrowdStrikeOptions

    def __init__(self, options: CrowdStrikeOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        self.log = EventLog(
            o.seed, o.partitions, o.backlog_events, o.backlog_secs, o.live_rate, o.first_offset, time.time()
        )
        digest = hashlib.sha256(f"crowdstrike-{o.seed}".encode()).hexdigest()
        self.client_id = digest[:32]
        self.client_secret = digest[32:]
        self.tokens: dict[str, float] = {}  # access token → monotonic expiry
        self.sessions: dict[tuple[str, int], _Session] = {}
        #: The one open stream per (appId, partition); it outlives rediscoveries of its session.
        self.active: dict[tuple[str, int], _Stream] = {}
        #: Partitions discover lists now; ``POST /sim/control {"partitions": n}`` changes it.
        self.partitions = o.partitions
        self.alert_log = AlertLog(o.seed, o.alerts, o.backlog_secs, time.time())
        self._recent: deque[float] = deque()  # monotonic times of admitted API requests
        self.served_by_partition: Counter[int] = Counter()
        self.refresh_log: list[tuple[int, float]] = []  # (partition, seconds since the session began)
        self.discovers = 0
        self.sessions_expired = 0
        self.rate_limited = 0
        self.refused_streams = 0
        self.tokens_issued = 0
        self.alert_queries = 0
        #: (partition, offset asked for) of every stream opened, in order: proves where consumers resume.
        self.stream_starts: list[tuple[int, int | None]] = []

    # --- what the harness sees -------------------------------------------------------------------

    @property
    def credentials(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    def generated(self) -> int:
        return self.log.count(time.time()) * self.partitions

    @property
    def events_served(self) -> int:
        return sum(self.served_by_partition.values())

    def extra_stats(self) -> dict[str, Any]:
        return {
            "events_served": self.events_served,
            "served_by_partition": {str(p): n for p, n in sorted(self.served_by_partition.items())},
            "discovers": self.discovers,
            "refreshes": len(self.refresh_log),
            "sessions_expired": self.sessions_expired,
            "rate_limited": self.rate_limited,
            "refused_streams": self.refused_streams,
            "stream_starts": [list(s) for s in self.stream_starts],
            "tokens_issued": self.tokens_issued,
            "alert_queries": self.alert_queries,
            "live": self.log.live,
        }

    def offsets(self, partition: int) -> list[int]:
        """Every offset that exists in ``partition`` now."""
        return [self.log.offset(i) for i in range(self.log.count(time.time()))]

    def expected_ids(self) -> set[tuple[int, int]]:
        """``(partition, offset)`` of every event that exists now."""
        return {(p, o) for p in range(self.partitions) for o in self.offsets(p)}

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        return _errors(status, message, {"Retry-After": str(retry_after)} if retry_after else None)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(TOKEN_PATH, self._token)
        app.router.add_get(DISCOVER_PATH, self._discover)
        app.router.add_get(FEED_PATH, self._feed)
        app.router.add_post(REFRESH_PATH, self._refresh)
        app.router.add_post(ALERTS_PATH, self._alerts)
        app.router.add_post("/sim/drop", self._drop)
        app.router.add_post("/sim/control", self._control)

    async def on_stop(self) -> None:
        # Long-lived streams would otherwise hold the shutdown for its whole timeout.
        for stream in self.active.values():
            stream.ended.set()

    # --- OAuth2 ----------------------------------------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        limits = self._admit()
        form = await request.post()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        member = form.get("member_cid")
        if client_id != self.client_id or secret != self.client_secret:
            raise HTTPError(_errors(401, "access denied, invalid client", limits))
        if member is not None and (not self.options.member_cid or member != self.options.member_cid):
            raise HTTPError(_errors(403, "access denied, authorization failed", limits))
        token = secrets.token_urlsafe(32)
        self.tokens[token] = time.monotonic() + self.options.token_lifetime_secs
        self.tokens_issued += 1
        body = {"access_token": token, "token_type": "bearer", "expires_in": self.options.token_lifetime_secs}
        return json_response(body, 201, limits)

    def _bearer(self, request: web.Request, limits: dict[str, str]) -> None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or expiry < time.monotonic():
            raise HTTPError(_errors(401, "access denied, authorization failed", limits))

    def _admit(self) -> dict[str, str]:
        """Count one API request against the per-minute budget; raise 429 over it."""
        limit, now, recent = self.options.requests_per_minute, time.monotonic(), self._recent
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if len(recent) >= limit:
            self.rate_limited += 1
            wait = retry_after_secs(recent[0] + 60.0 - now)
            headers = {"X-Ratelimit-Limit": str(limit), "X-Ratelimit-Remaining": "0"}
            raise HTTPError(_errors(429, f"API rate limit exceeded; retry in {wait}s", headers))
        recent.append(now)
        return {"X-Ratelimit-Limit": str(limit), "X-Ratelimit-Remaining": str(limit - len(recent))}

    # --- discover and refresh ------------------------------------------------------------------

    async def _discover(self, request: web.Request) -> web.Response:
        limits = self._admit()
        self._bearer(request, limits)
        app_id = _app_id(request, limits)
        fmt = request.query.get("format", "json")
        if fmt != "json":
            raise HTTPError(_errors(400, f"format {fmt!r} is not simulated; use json", limits))
        self.discovers += 1
        every = self.options.empty_discover_every
        if every and self.discovers % every == 0:
            return web.Response(status=200, body=b"", headers=limits)
        now, interval = time.monotonic(), self.options.refresh_interval_secs
        resources = []
        for p in range(self.partitions):
            token = secrets.token_urlsafe(24)
            self.sessions[(app_id, p)] = _Session(token, now + interval, now)
            expiration = datetime.fromtimestamp(time.time() + interval, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            resources.append(
                {
                    "dataFeedURL": f"{self.url}{FEED_PATH.format(partition=p)}?appId={app_id}",
                    "sessionToken": {"token": token, "expiration": expiration},
                    "refreshActiveSessionURL": f"{self.url}{REFRESH_PATH.format(partition=p)}"
                    f"?action_name={REFRESH_ACTION}&appId={app_id}",
                    "refreshActiveSessionInterval": interval,
                }
            )
        meta = {"query_time": 0.01, "powered_by": "discover-api", "trace_id": secrets.token_hex(8)}
        return json_response({"meta": meta, "resources": resources}, 200, limits)

    async def _refresh(self, request: web.Request) -> web.Response:
        limits = self._admit()
        self._bearer(request, limits)
        partition = _partition(request, limits, self.partitions)
        app_id = _app_id(request, limits)
        if request.query.get("action_name") != REFRESH_ACTION:
            raise HTTPError(_errors(400, f"action_name must be {REFRESH_ACTION}", limits))
        stream = self.active.get((app_id, partition))
        now = time.monotonic()
        if stream is None or stream.session.deadline < now:
            raise HTTPError(_errors(404, "no active stream session found", limits))
        session = stream.session
        session.deadline = now + self.options.refresh_interval_secs
        self.refresh_log.append((partition, now - session.started))
        meta = {"query_time": 0.01, "powered_by": "discover-api", "trace_id": secrets.token_hex(8)}
        return json_response({"meta": meta, "resources": [], "errors": []}, 200, limits)

    async def _alerts(self, request: web.Request) -> web.Response:
        limits = self._admit()
        self._bearer(request, limits)
        self.alert_queries += 1
        try:
            alerts, after, total = self.alert_log.query(await read_json(request))
        except AlertQueryError as exc:
            raise HTTPError(_errors(400, str(exc), limits)) from None
        pagination: dict[str, Any] = {"total": total, "limit": len(alerts)}
        if after is not None:
            pagination["after"] = after
        meta = {"query_time": 0.01, "powered_by": "alerts-api", "pagination": pagination}
        return json_response({"meta": meta, "resources": alerts, "errors": []}, 200, limits)

    # --- the stream ------------------------------------------------------------------------------

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        partition = _partition(request, {}, self.partitions)
        app_id = _app_id(request, {})
        session = self.sessions.get((app_id, partition))
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if session is None or scheme != "Token" or token != session.token:
            raise HTTPError(_errors(401, "access denied, invalid session token", None))
        if session.deadline < time.monotonic():
            raise HTTPError(_errors(401, "session expired; discover again", None))
        key = (app_id, partition)
        if key in self.active:
            self.refused_streams += 1
            message = f"appId {app_id} already has an active stream on this partition"
            raise HTTPError(_errors(409, message, None))
        try:
            offset = int(request.query["offset"]) if "offset" in request.query else None
        except ValueError:
            raise HTTPError(_errors(400, "offset must be an integer", None)) from None
        types = {t for t in request.query.get("eventType", "").split(",") if t}
        self.stream_starts.append((partition, offset))
        stream = self.active[key] = _Stream(session)
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await self._pump(request, response, key, stream, offset, types)
            if stream.mode == "reset":
                if request.transport is not None:
                    request.transport.abort()
                return response
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
        except ConnectionError:
            pass  # the consumer went away
        finally:
            if self.active.get(key) is stream:
                del self.active[key]
        return response

    async def _pump(
        self,
        request: web.Request,
        response: web.StreamResponse,
        key: tuple[str, int],
        stream: _Stream,
        offset: int | None,
        types: set[str],
    ) -> None:
        o = self.options
        log = self.log
        index = log.index_from(offset, o.offset_inclusive)
        sent = 0
        last_write = time.monotonic()
        started = last_write
        partition = key[1]
        while not stream.ended.is_set():
            if request.transport is None or request.transport.is_closing():
                return  # the consumer hung up
            session = stream.session
            now = time.monotonic()
            if session.deadline < now:
                self.sessions_expired += 1
                return
            available = log.count(time.time())
            if o.stream_rate:
                available = min(available, index + max(0, int((now - started) * o.stream_rate) - sent + 1))
            if index < available:
                end = min(available, index + WRITE_BATCH)
                if o.drop_after_events:
                    end = min(end, index + o.drop_after_events - sent)
                chunk = []
                for i in range(index, end):
                    sent += 1  # a filtered event still moves the stream on
                    if types and log.event_type(partition, i) not in types:
                        continue
                    chunk.append(log.line(partition, i))
                    self.served_by_partition[partition] += 1
                    if o.malformed_every and sent % o.malformed_every == 0:
                        chunk.append(b'{"metadata": {"offset": truncated\n')
                if chunk:
                    await response.write(b"".join(chunk))
                index = end
                last_write = time.monotonic()
                if o.drop_after_events and sent >= o.drop_after_events:
                    return
                continue
            wait = 0.05 if o.stream_rate else 1.0
            nxt = log.next_live_at(index)
            if nxt is not None:
                wait = min(wait, max(0.0, nxt - time.time()))
            if o.keepalive_secs:
                due = last_write + o.keepalive_secs - now
                if due <= 0:
                    await response.write(b"\n")
                    last_write = time.monotonic()
                    continue
                wait = min(wait, due)
            wait = min(wait, max(0.0, session.deadline - now))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stream.ended.wait(), timeout=max(0.001, wait))

    # --- harness -----------------------------------------------------------------------------------

    async def _drop(self, request: web.Request) -> web.Response:
        body = await read_json(request) if request.can_read_body else {}
        partition, mode = body.get("partition"), body.get("mode", "eof")
        if mode not in ("eof", "reset"):
            raise web.HTTPBadRequest(text='mode must be "eof" or "reset"')
        dropped = 0
        for (_app, p), stream in self.active.items():
            if partition in (None, p):
                stream.mode = mode
                stream.ended.set()
                dropped += 1
        return json_response({"dropped": dropped})

    async def _control(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if body.get("live") is False:
            self.log.pause()
        partitions = body.get("partitions")
        if partitions is not None:
            if not isinstance(partitions, int) or partitions < 1:
                raise web.HTTPBadRequest(text="partitions must be an integer >= 1")
            self.partitions = partitions
        return json_response(
            {
                "live": self.log.live,
                "per_partition": self.log.count(time.time()),
                "partitions": self.partitions,
            }
        )


def _errors(status: int, message: str, headers: dict[str, str] | None) -> web.Response:
    meta = {"query_time": 0.001, "powered_by": "crowdstrike-api-gateway", "trace_id": secrets.token_hex(8)}
    body = {"meta": meta, "errors": [{"code": status, "message": message}]}
    return json_response(body, status, headers)


def _app_id(request: web.Request, headers: dict[str, str]) -> str:
    app_id = request.query.get("appId", "")
    if not APP_ID_RE.match(app_id):
        raise HTTPError(_errors(400, "appId must be 1-32 alphanumeric characters", headers))
    return app_id


def _partition(request: web.Request, headers: dict[str, str], partitions: int) -> int:
    raw = request.match_info["partition"]
    if not raw.isdigit() or int(raw) >= partitions:
        raise HTTPError(_errors(404, f"no such partition {raw}", headers))
    return int(raw)
