"""Microsoft Graph security, MDE and Exchange reporting simulator (specs/defender.md, office365.md B).

Four APIs on one port, each checking bearer tokens for its own audience — a Graph token on the
MDE API is a 401, as in Microsoft's cloud:

* Graph ``GET /{v1.0|beta}/security/alerts_v2`` — ``$filter`` (ge/gt/le/lt on ``lastUpdateDateTime``
  or ``createdDateTime``, ``eq`` on other fields), ``$top``, ``$skip``, ``$count``, ``$orderby``; an
  absolute ``@odata.nextLink`` that carries the original parameters; 150 requests a minute per app
  and tenant, then 429 with ``Retry-After``. Audience ``https://graph.microsoft.com``.
* Graph ``GET /{v1.0|beta}/admin/exchange/tracing/messageTraces`` — a ``receivedDateTime`` range with
  both ``ge`` and ``le`` is required (400 otherwise, or when it starts more than 90 days ago or spans
  more than 10 days); ``$top`` 1..5000 (default 1000); ``$skiptoken`` paging; 100 requests per
  5-minute running window per tenant. Audience ``https://graph.microsoft.com``.
* MDE ``GET /api/alerts`` — ``$filter`` on ``lastUpdateTime``/``alertCreationTime``, ``$expand=evidence``,
  ``$top`` ≤ 10000, ``$skip``; 100 calls a minute and 1500 an hour. Audience
  ``https://api.securitycenter.microsoft.com`` (also ``api.security.microsoft.com`` and the older
  ``api.securitycenter.windows.com``).
* Reporting Web Service ``GET /ecp/reportingwebservice/reporting.svc/MessageTrace`` with
  ``$filter=StartDate eq datetime'…' and EndDate eq datetime'…'`` and ``$format=json``: 2000 rows a
  page, a *relative* ``odata.nextLink``
  (``../../reportingwebservice/reporting.svc/MessageTrace?…&$skiptoken=1999``), and HTTP 500
  ``UnknownError`` once ``$skiptoken`` reaches 999999. Audience ``https://outlook.office365.com``.

Usage::

    async with GraphSim(backlog_alerts=500, alert_rate=0, update_rate=0) as sim:   # start(tls=True) for msal
        creds = sim.credentials  # tenant_id, client_id, client_secret, authority_host, api_url

Choices where the specs say "unconfirmed": alerts_v2 lists newest first unless ``$orderby`` says
otherwise, with a default ``$top`` of 1000 and larger values lowered to 2000; the RWS answers only
``$format=json`` and, without dates, the last 48 hours. Harness extras: ``POST /sim/alerts/update
{"count": n}`` moves the n oldest open alerts one step (new → inProgress → resolved) now;
``/sim/stats`` adds alerts, versions, trace rows, records served and 429s per API.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .bearer import InvalidToken
from .entra import EntraSim
from .entra_guard import EntraGuard
from .graph_alerts import Alert, AlertStore, render_graph, render_mde
from .graph_odata import TICKS_PER_SEC, Clause, FilterError, TimeRange, now_ticks, parse_filter
from .graph_trace import TraceRow, TraceStore, render_graph_trace, render_rws_trace
from .options import opt
from .ratelimit import SlidingWindow, retry_after_secs
from .registry import register
from .server import HTTPError, SimOptions, SimServer, json_response, read_json, retry_headers

__all__ = [
    "EXCHANGE_AUDIENCE",
    "GRAPH_AUDIENCE",
    "MDE_AUDIENCES",
    "RWS_PATH",
    "GraphOptions",
    "GraphSim",
]

GRAPH_AUDIENCE = "https://graph.microsoft.com"
MDE_AUDIENCES = (
    "https://api.securitycenter.microsoft.com",
    "https://api.security.microsoft.com",
    "https://api.securitycenter.windows.com",
)
EXCHANGE_AUDIENCE = "https://outlook.office365.com"
RWS_PATH = "/ecp/reportingwebservice/reporting.svc/MessageTrace"

Handler = Callable[[web.Request], Awaitable[web.Response]]
_VERSIONS = frozenset({"v1.0", "beta"})
_ALERTS_DEFAULT_TOP = 1000
_ALERTS_MAX_TOP = 2000
_MDE_MAX_TOP = 10_000
_TRACE_DEFAULT_TOP = 1000
_TRACE_MAX_TOP = 5000
_TRACE_MAX_AGE_SECS = 90 * 86_400
_TRACE_MAX_SPAN_SECS = 10 * 86_400
_RWS_DEFAULT_SPAN_SECS = 48 * 3600
_RWS_METADATA = "/ecp/ReportingWebService/Reporting.svc/$metadata#MessageTrace"
_RWS_RETENTION_SECS = 30 * 86_400


@dataclass(frozen=True, kw_only=True)
class GraphOptions(SimOptions):
    seed: int = opt(1, "seed for alerts and message trace rows; same seed, same data")
    backlog_alerts: int = opt(200, "alerts that exist at start")
    alerts_backlog_secs: float = opt(3600.0, "the alert backlog spans this many seconds before start")
    alert_rate: float = opt(0.05, "new alerts per second while running (0 = none)")
    update_rate: float = opt(0.02, "alert updates (status changes) per second while running (0 = none)")
    backlog_messages: int = opt(1000, "messages (1-3 trace rows each) that exist at start")
    messages_backlog_secs: float = opt(3600.0, "the message backlog is spread over this many seconds")
    message_rate: float = opt(0.5, "new messages per second while running (0 = none)")
    trace_delay_secs: float = opt(60.0, "a trace row becomes visible up to this long after Received")
    alerts_per_minute: int = opt(150, "Graph alerts_v2 requests per minute per app and tenant (0 = no limit)")
    mde_per_minute: int = opt(100, "MDE API calls per minute per app and tenant (0 = no limit)")
    mde_per_hour: int = opt(1500, "MDE API calls per hour per app and tenant (0 = no limit)")
    trace_per_5min: int = opt(100, "message trace requests per 5-minute running window per tenant (0 = none)")
    limit_window_scale: float = opt(1.0, "multiplies every rate-limit window (1/60: a minute lasts a second)")
    mde_next_links: bool = opt(True, "MDE pages carry @odata.nextLink (off: clients must page by $skip)")
    rws_page_size: int = opt(2000, "Reporting Web Service rows per page")
    rws_max_skiptoken: int = opt(999_999, "the Reporting Web Service answers 500 from this $skiptoken on")
    latency_secs: float = opt(0.005, "time each API request takes")
    entra_url: str | None = opt(None, "validate tokens via this Entra simulator's JWKS, not an own one")
    entra_ca_file: str | None = opt(None, "CA bundle for entra_url")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in (
            "backlog_alerts",
            "alerts_backlog_secs",
            "alert_rate",
            "update_rate",
            "backlog_messages",
            "messages_backlog_secs",
            "message_rate",
            "trace_delay_secs",
            "latency_secs",
            "alerts_per_minute",
            "mde_per_minute",
            "mde_per_hour",
            "trace_per_5min",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.limit_window_scale <= 0 or self.rws_page_size < 1 or self.rws_max_skiptoken < 1:
            raise ValueError("limit_window_scale, rws_page_size and rws_max_skiptoken must be > 0")


@register("graph")
class GraphSim(SimServer[GraphOptions]):
    """Graph security alerts and message trace, the MDE alerts API and the Reporting Web Service."""

    options_type = GraphOptions

    def __init__(
        self, options: GraphOptions | None = None, *, entra: EntraSim | None = None, **overrides: Any
    ) -> None:
        super().__init__(options, **overrides)
        o = self.options
        start = now_ticks()
        self.guard = EntraGuard(entra, o.entra_url, o.entra_ca_file)
        self.alerts = AlertStore(
            o.seed, o.backlog_alerts, o.alerts_backlog_secs, o.alert_rate, o.update_rate, start
        )
        self.trace = TraceStore(
            o.seed, o.backlog_messages, o.messages_backlog_secs, o.message_rate, o.trace_delay_secs, start
        )
        self._windows: dict[tuple[str, ...], SlidingWindow] = {}
        self.served: Counter[str] = Counter()
        self.rate_limited: Counter[str] = Counter()
        self.unauthorized: Counter[str] = Counter()
        #: Every API request answered: (event-loop time, API, status, Retry-After or None), so a test
        #: can check a client's pacing; bounded, the oldest entries go first.
        self.log: deque[tuple[float, str, int, int | None]] = deque(maxlen=10_000)

    # --- what tests and the harness use --------------------------------------------------------

    @property
    def credentials(self) -> dict[str, Any]:
        creds = self.guard.credentials()
        creds["api_url"] = self.url
        return creds

    @property
    def entra(self) -> EntraSim | None:
        return self.guard.entra

    def generated(self) -> int:
        self._advance()
        return len(self.alerts) + len(self.trace)

    def extra_stats(self) -> dict[str, Any]:
        return {
            "alerts": len(self.alerts),
            "alert_versions": self.alerts.versions,
            "alert_updates": self.alerts.updates_applied,
            "trace_rows": len(self.trace),
            "served": dict(self.served),
            "rate_limited": dict(self.rate_limited),
            "unauthorized": dict(self.unauthorized),
        }

    def current_alerts(self) -> list[Alert]:
        """Every alert in its current version, oldest update first."""
        self._advance()
        return self.alerts.query("updated", TimeRange(), lambda a: True)

    def visible_trace_rows(self) -> list[TraceRow]:
        self._advance()
        return self.trace.query(TimeRange(), now_ticks(), lambda r: True)

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        return _graph_error(
            status,
            code or ("TooManyRequests" if status == 429 else "UnknownError"),
            message,
            retry_headers(retry_after),
        )

    async def on_start(self) -> None:
        await self.guard.start(self.host, self.tls)

    async def on_stop(self) -> None:
        await self.guard.stop()

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/{version}/security/alerts_v2", self._logged("alerts", self._alerts_v2))
        r.add_get(
            "/{version}/admin/exchange/tracing/messageTraces", self._logged("trace", self._message_traces)
        )
        r.add_get("/api/alerts", self._logged("mde", self._mde_alerts))
        rws = self._logged("rws", self._rws)
        r.add_get(RWS_PATH, rws)
        # The service's own links spell the path in either case.
        r.add_get("/ecp/ReportingWebService/Reporting.svc/MessageTrace", rws)
        r.add_post("/sim/alerts/update", self._update_alerts)

    # --- Graph alerts_v2 -----------------------------------------------------------------------

    async def _alerts_v2(self, request: web.Request) -> web.Response:
        version = _graph_version(request)
        claims = await self._authenticate(request, (GRAPH_AUDIENCE,), "graph", _graph_unauthorized)
        app_key = (str(claims.get("tid")), str(claims.get("appid")))
        self._throttle("alerts", app_key, ((self.options.alerts_per_minute, 60.0),), _graph_throttled)
        await self._latency()
        q = request.query
        clauses = _filter(request, _graph_bad_request)
        top = _int_query(request, "$top", _ALERTS_DEFAULT_TOP, 1, None, _graph_bad_request)
        top = min(top, _ALERTS_MAX_TOP)
        skip = _int_query(request, "$skip", 0, 0, None, _graph_bad_request)
        tenant = str(claims.get("tid", ""))
        matches = self._alert_query(
            request,
            clauses,
            ("lastUpdateDateTime", "createdDateTime"),
            lambda a: render_graph(a, tenant),
            _graph_bad_request,
            newest_first=True,
        )
        page = matches[skip : skip + top]
        self.served["alerts_v2"] += len(page)
        body: dict[str, Any] = {
            "@odata.context": f"{_origin(request)}/{version}/$metadata#security/alerts_v2"
        }
        if q.get("$count", "").lower() == "true":
            body["@odata.count"] = len(matches)
        if skip + top < len(matches):
            body["@odata.nextLink"] = _absolute_link(request, {"$skip": str(skip + top)})
        body["value"] = [render_graph(a, tenant) for a in page]
        return json_response(body)

    # --- MDE /api/alerts -----------------------------------------------------------------------

    async def _mde_alerts(self, request: web.Request) -> web.Response:
        claims = await self._authenticate(request, MDE_AUDIENCES, "mde", _mde_unauthorized)
        app_key = (str(claims.get("tid")), str(claims.get("appid")))
        o = self.options
        self._throttle("mde", app_key, ((o.mde_per_minute, 60.0), (o.mde_per_hour, 3600.0)), _mde_throttled)
        await self._latency()
        clauses = _filter(request, _mde_bad_request)
        top = _int_query(request, "$top", _MDE_MAX_TOP, 1, _MDE_MAX_TOP, _mde_bad_request)
        skip = _int_query(request, "$skip", 0, 0, None, _mde_bad_request)
        expand = request.query.get("$expand", "").lower() == "evidence"
        tenant = str(claims.get("tid", ""))
        matches = self._alert_query(
            request,
            clauses,
            ("lastUpdateTime", "alertCreationTime"),
            lambda a: render_mde(a, tenant, False),
            _mde_bad_request,
            newest_first=False,
        )
        page = matches[skip : skip + top]
        self.served["mde"] += len(page)
        body: dict[str, Any] = {"@odata.context": f"{_origin(request)}/api/$metadata#Alerts"}
        body["value"] = [render_mde(a, tenant, expand) for a in page]
        if skip + top < len(matches) and self.options.mde_next_links:
            body["@odata.nextLink"] = _absolute_link(request, {"$skip": str(skip + top)})
        return json_response(body)

    def _alert_query(
        self,
        request: web.Request,
        clauses: list[Clause],
        time_fields: tuple[str, str],
        render: Callable[[Alert], dict[str, Any]],
        bad_request: Callable[[str], web.Response],
        newest_first: bool,
    ) -> list[Alert]:
        updated_field, created_field = time_fields
        by_time = {updated_field.lower(), created_field.lower()}
        others = [c for c in clauses if c.field.lower() not in by_time]
        try:
            updated = TimeRange.of(clauses, updated_field)
            created = TimeRange.of(clauses, created_field)
        except FilterError as exc:
            raise HTTPError(bad_request(str(exc))) from None
        for c in others:
            if c.op not in ("eq", "ne"):
                raise HTTPError(bad_request(f"operator '{c.op}' is not supported on '{c.field}'"))

        def keep(alert: Alert) -> bool:
            if created != TimeRange() and not _in_range(alert.created, created):
                return False
            if not others:
                return True
            rendered = render(alert)
            return all(_matches(rendered, c, bad_request) for c in others)

        self._advance()
        matches = self.alerts.query("updated", updated, keep)
        order = request.query.get("$orderby", "").strip().split()
        if order:
            field_name = order[0].lower()
            if field_name not in by_time:
                raise HTTPError(bad_request(f"$orderby on '{order[0]}' is not supported"))
            descending = len(order) > 1 and order[1].lower() == "desc"
            use_created = field_name == created_field.lower()
            matches.sort(key=lambda a: (a.created if use_created else a.updated, a.n), reverse=descending)
        elif newest_first:
            matches.reverse()
        return matches

    # --- Graph message trace -------------------------------------------------------------------

    async def _message_traces(self, request: web.Request) -> web.Response:
        version = _graph_version(request)
        claims = await self._authenticate(request, (GRAPH_AUDIENCE,), "trace", _graph_unauthorized)
        self._throttle(
            "trace", (str(claims.get("tid")),), ((self.options.trace_per_5min, 300.0),), _graph_throttled
        )
        await self._latency()
        if not request.query.get("$filter"):
            raise HTTPError(
                _graph_bad_request("A $filter with a receivedDateTime range (ge and le) is required.")
            )
        clauses = _filter(request, _graph_bad_request)
        bounds = _trace_range(clauses)
        top = _int_query(request, "$top", _TRACE_DEFAULT_TOP, 1, _TRACE_MAX_TOP, _graph_bad_request)
        after = _skiptoken(request)
        others = [c for c in clauses if c.field.lower() != "receiveddatetime"]

        def keep(row: TraceRow) -> bool:
            if row.seq <= after:
                return False
            if not others:
                return True
            rendered = render_graph_trace(row)
            return all(_matches(rendered, c, _graph_bad_request, fold_case=True) for c in others)

        self._advance()
        rows = self.trace.query(bounds, now_ticks(), keep)
        page = rows[:top]
        self.served["message_traces"] += len(page)
        body: dict[str, Any] = {
            "@odata.context": f"{_origin(request)}/{version}/$metadata#admin/exchange/tracing/messageTraces",
            "value": [render_graph_trace(r) for r in page],
        }
        if len(rows) > top:
            token = base64.urlsafe_b64encode(f"seq:{page[-1].seq}".encode()).decode().rstrip("=")
            body["@odata.nextLink"] = _absolute_link(request, {"$skiptoken": token}, drop=("$skipToken",))
        return json_response(body)

    # --- Reporting Web Service -----------------------------------------------------------------

    async def _rws(self, request: web.Request) -> web.Response:
        await self._authenticate(request, (EXCHANGE_AUDIENCE,), "rws", _rws_unauthorized)
        await self._latency()
        q = request.query
        if q.get("$format", "").lower() != "json":
            raise HTTPError(_rws_error(400, "This simulator serves MessageTrace as $format=json only."))
        clauses = _filter(request, lambda m: _rws_error(400, m))
        now = now_ticks()
        start, end = _rws_dates(clauses, now)
        skiptoken = _int_query(request, "$skiptoken", -1, 0, None, lambda m: _rws_error(400, m))
        if skiptoken >= self.options.rws_max_skiptoken:
            # What users see from the real service past this point (Microsoft Q&A thread in office365.md B1).
            return json_response(
                {
                    "odata.error": {
                        "code": "UnknownError",
                        "message": {"lang": "", "value": "An error has occurred on the server."},
                    }
                },
                500,
            )
        others = [c for c in clauses if c.field.lower() not in ("startdate", "enddate")]
        oldest = now - _RWS_RETENTION_SECS * TICKS_PER_SEC

        def keep(row: TraceRow) -> bool:
            if row.received < oldest:
                return False
            if not others:
                return True
            rendered = render_rws_trace(row, 0, start, end)
            return all(_matches(rendered, c, lambda m: _rws_error(400, m), fold_case=True) for c in others)

        self._advance()
        rows = self.trace.query(TimeRange(start, True, end, True), now, keep)
        if "$top" in q:
            rows = rows[: _int_query(request, "$top", 0, 0, None, lambda m: _rws_error(400, m))]
        first = skiptoken + 1
        page = rows[first : first + self.options.rws_page_size]
        self.served["rws"] += len(page)
        body: dict[str, Any] = {
            "odata.metadata": f"{_origin(request)}{_RWS_METADATA}",
            "value": [render_rws_trace(r, first + i, start, end) for i, r in enumerate(page)],
        }
        if first + len(page) < len(rows):
            params = [(k, v) for k, v in q.items() if k.lower() != "$skiptoken"]
            params.append(("$skiptoken", str(first + len(page) - 1)))
            body["odata.nextLink"] = "../../reportingwebservice/reporting.svc/MessageTrace?" + _query(params)
        return json_response(body)

    # --- harness -------------------------------------------------------------------------------

    async def _update_alerts(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        count = body.get("count") if isinstance(body, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise web.HTTPBadRequest(text='expected {"count": n}')
        updated = self.alerts.update_now(count, now_ticks())
        return json_response(
            {"updated": [{"id": a.id, "status": a.status, "version": a.version} for a in updated]}
        )

    # --- plumbing ------------------------------------------------------------------------------

    def _logged(self, api: str, handler: Handler) -> Handler:
        async def logged(request: web.Request) -> web.Response:
            try:
                response = await handler(request)
            except HTTPError as exc:
                self._note(api, exc.response)
                raise
            self._note(api, response)
            return response

        return logged

    def _note(self, api: str, response: web.Response) -> None:
        after = response.headers.get("Retry-After")
        self.log.append(
            (asyncio.get_running_loop().time(), api, response.status, int(after) if after else None)
        )

    def _advance(self) -> None:
        now = now_ticks()
        self.alerts.advance(now)
        self.trace.advance(now)

    async def _latency(self) -> None:
        if self.options.latency_secs:
            await asyncio.sleep(self.options.latency_secs)

    async def _authenticate(
        self,
        request: web.Request,
        audiences: Sequence[str],
        api: str,
        unauthorized: Callable[[str], web.Response],
    ) -> dict[str, Any]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            self.unauthorized[api] += 1
            raise HTTPError(unauthorized("Access token is empty."))
        error: InvalidToken | None = None
        for audience in audiences:
            try:
                return await self.guard.validate(token.strip(), audience)
            except InvalidToken as exc:
                error = exc
                if exc.reason != "audience":
                    break
        assert error is not None
        self.unauthorized[api] += 1
        message = (
            "Access token validation failure. Invalid audience."
            if error.reason == "audience"
            else (error.message)
        )
        raise HTTPError(unauthorized(message))

    def _throttle(
        self,
        api: str,
        key: tuple[str, ...],
        limits: Sequence[tuple[int, float]],
        throttled: Callable[[int, int, float], web.Response],
    ) -> None:
        now = asyncio.get_running_loop().time()
        for limit, window_secs in limits:
            if not limit:
                continue
            scaled = window_secs * self.options.limit_window_scale
            window = self._windows.setdefault((api, str(window_secs), *key), SlidingWindow(limit, scaled))
            wait = window.admit(now)
            if wait is not None:
                self.rate_limited[api] += 1
                raise HTTPError(throttled(limit, retry_after_secs(wait), window_secs))


# --- requests ----------------------------------------------------------------------------------


def _graph_version(request: web.Request) -> str:
    version = request.match_info["version"]
    if version not in _VERSIONS:
        raise HTTPError(_graph_error(400, "BadRequest", f"Invalid version: {version}"))
    return version


def _filter(request: web.Request, bad_request: Callable[[str], web.Response]) -> list[Clause]:
    text = request.query.get("$filter")
    if not text:
        return []
    try:
        return parse_filter(text)
    except FilterError as exc:
        raise HTTPError(bad_request(f"Invalid filter clause: {exc}")) from None


def _int_query(
    request: web.Request,
    name: str,
    default: int,
    lowest: int,
    highest: int | None,
    bad_request: Callable[[str], web.Response],
) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(bad_request(f"Invalid value '{raw}' for query option '{name}'.")) from None
    if value < lowest or (highest is not None and value > highest):
        upper = f" and {highest}" if highest is not None else ""
        raise HTTPError(bad_request(f"The value of '{name}' must be between {lowest}{upper}; got {value}."))
    return value


def _in_range(ticks: int, bounds: TimeRange) -> bool:
    if bounds.lower is not None and (
        ticks < bounds.lower or (ticks == bounds.lower and not bounds.lower_inclusive)
    ):
        return False
    return bounds.upper is None or ticks < bounds.upper or (ticks == bounds.upper and bounds.upper_inclusive)


def _matches(
    record: dict[str, Any],
    clause: Clause,
    bad_request: Callable[[str], web.Response],
    fold_case: bool = False,
) -> bool:
    if clause.field not in record:
        raise HTTPError(bad_request(f"Could not find a property named '{clause.field}'."))
    value, wanted = str(record[clause.field]), clause.value
    if fold_case:
        value, wanted = value.lower(), wanted.lower()
    return (value == wanted) == (clause.op == "eq")


def _trace_range(clauses: list[Clause]) -> TimeRange:
    ops = {c.op for c in clauses if c.field.lower() == "receiveddatetime"}
    if ops != {"ge", "le"}:
        raise HTTPError(
            _graph_bad_request(
                "The receivedDateTime filter requires a range with both 'ge' and 'le', for example "
                "receivedDateTime ge 2025-06-13T00:00:00Z and receivedDateTime le 2025-06-14T00:00:00Z."
            )
        )
    try:
        bounds = TimeRange.of(clauses, "receivedDateTime")
    except FilterError as exc:
        raise HTTPError(_graph_bad_request(str(exc))) from None
    assert bounds.lower is not None and bounds.upper is not None
    if bounds.upper < bounds.lower:
        raise HTTPError(_graph_bad_request("The start of the receivedDateTime range is after its end."))
    if bounds.lower < now_ticks() - _TRACE_MAX_AGE_SECS * TICKS_PER_SEC:
        raise HTTPError(_graph_bad_request("The start date can't be older than 90 days."))
    if bounds.upper - bounds.lower > _TRACE_MAX_SPAN_SECS * TICKS_PER_SEC:
        raise HTTPError(_graph_bad_request("The date range can't be longer than 10 days."))
    return bounds


def _skiptoken(request: web.Request) -> int:
    raw = request.query.get("$skiptoken") or request.query.get("$skipToken")
    if not raw:
        return -1
    try:
        kind, _, seq = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode().partition(":")
        if kind == "seq":
            return int(seq)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise HTTPError(_graph_bad_request("The $skiptoken is invalid."))


def _rws_dates(clauses: list[Clause], now: int) -> tuple[int, int]:
    dates: dict[str, int] = {}
    for c in clauses:
        name = c.field.lower()
        if name in ("startdate", "enddate"):
            if c.op != "eq":
                raise HTTPError(_rws_error(400, f"{c.field} supports only 'eq'."))
            try:
                dates[name] = c.ticks
            except FilterError as exc:
                raise HTTPError(_rws_error(400, str(exc))) from None
    if "enddate" in dates and "startdate" not in dates:
        raise HTTPError(_rws_error(400, "EndDate requires StartDate."))
    start = dates.get("startdate", now - _RWS_DEFAULT_SPAN_SECS * TICKS_PER_SEC)
    end = dates.get("enddate", now)
    if end < start:
        raise HTTPError(_rws_error(400, "StartDate must be before EndDate."))
    return start, end


def _query(params: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{k}={quote(v, safe=':$,')}" for k, v in params)


def _absolute_link(request: web.Request, replace: dict[str, str], drop: Sequence[str] = ()) -> str:
    """The request's own URL with ``replace`` set: Graph's nextLink carries the original parameters."""
    params = [(k, v) for k, v in request.query.items() if k not in replace and k not in drop]
    params.extend(replace.items())
    return f"{_origin(request)}{request.path}?{_query(params)}"


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


# --- vendor-shaped errors ----------------------------------------------------------------------


def _graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    request_id = str(uuid.uuid4())
    inner = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": request_id,
    }
    return json_response({"error": {"code": code, "message": message, "innerError": inner}}, status, headers)


def _graph_bad_request(message: str) -> web.Response:
    return _graph_error(400, "BadRequest", message)


def _graph_unauthorized(message: str) -> web.Response:
    return _graph_error(
        401,
        "InvalidAuthenticationToken",
        message,
        {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
    )


def _graph_throttled(limit: int, retry_after: int, window_secs: float) -> web.Response:
    return _graph_error(
        429,
        "TooManyRequests",
        f"Too many requests: more than {limit} in {window_secs:g} seconds. "
        f"Retry after {retry_after} seconds.",
        {"Retry-After": str(retry_after)},
    )


def _mde_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}, status, headers
    )


def _mde_bad_request(message: str) -> web.Response:
    return _mde_error(400, "BadRequest", message)


def _mde_unauthorized(message: str) -> web.Response:
    return _mde_error(401, "Unauthorized", message)


def _mde_throttled(limit: int, retry_after: int, window_secs: float) -> web.Response:
    period = "Minute" if window_secs <= 60 else "Hour"
    return _mde_error(
        429,
        "TooManyRequests",
        f"API calls quota exceeded! Maximum allowed {limit} per {period}.",
        {"Retry-After": str(retry_after)},
    )


def _rws_error(status: int, message: str) -> web.Response:
    # The Reporting Web Service's JSON error shape (office365.md B1).
    return json_response({"error": {"code": "", "message": {"lang": "en-US", "value": message}}}, status)


def _rws_unauthorized(message: str) -> web.Response:
    return _rws_error(401, message)
