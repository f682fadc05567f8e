"""Mimecast API simulator: both auth generations, audit events, SIEM batch files, legacy SIEM logs.

Facts in shared/specs/mimecast.md. Routes:

* ``POST /oauth/token`` (API 2.0 client credentials, ``expires_in`` 1799) and
  ``POST /api/login/login`` (API 1.0 binding refresh with ``Basic-Cloud`` email:password);
* ``POST /api/audit/get-audit-events`` (HMAC or Bearer): windows on ``eventTime``, ``pageToken``
  paging (later pages may carry the token alone), ``fail[]`` on HTTP 200 when ``audit_fail_code``
  is set, 418 once the HMAC binding has expired;
* ``GET /siem/v1/batch/events/cg`` (Bearer): ``type``, ``dateRangeStartsAt``, ``pageSize``,
  ``nextPage`` → ``{"value": [{url, size, expiry}], "@nextPage", "isCaughtUp"}``; each URL is
  pre-signed, served under ``/siem-files/`` on this server, refused once expired (403) or when it
  carries credentials (400), and every ``corrupt_every``-th file is truncated or holds a bad line;
* ``POST /api/audit/get-siem-logs`` (HMAC): a ZIP of log files and the next ``mc-siem-token``
  header, or JSON without the header when there is nothing new.

Every API response carries ``X-RateLimit-Limit/-Remaining/-Reset`` (ms); over the per-user quota
the answer is 429 and the call is not executed. ``POST /sim/control`` toggles live generation,
expires the binding, revokes tokens and sets ``audit_fail_code``; ``/sim/stats`` adds counters.

Error codes other than ``err_xdk_client_unauthorized`` (gravwell) are the simulator's own: the
spec documents the shapes, not the codes. ``x-mc-date`` is signed but not checked for clock skew
(Mimecast documents no tolerance); a reused ``x-mc-req-id`` is refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from .mimecast_auth import (
    BindingExpired,
    Credentials,
    HmacVerifier,
    InvalidCredentials,
    Quota,
    Tokens,
    UserQuota,
)
from .mimecast_data import CG_TYPES, AuditLog, BatchFiles, LegacyLogs, Timeline, corrupt_gzip
from .options import opt
from .registry import register
from .server import HTTPError, SimOptions, SimServer, json_response, read_json

__all__ = ["AUDIT_PATH", "BATCH_PATH", "LEGACY_PATH", "MimecastOptions", "MimecastSim"]

AUDIT_PATH = "/api/audit/get-audit-events"
LEGACY_PATH = "/api/audit/get-siem-logs"
BATCH_PATH = "/siem/v1/batch/events/cg"
LOGIN_PATH = "/api/login/login"
FILES_PATH = "/siem-files"
#: The documented lookback of get-audit-events (§5).
AUDIT_LOOKBACK_SECS = 60 * 86400
MAX_AUDIT_PAGE = 500
MAX_BATCH_PAGE = 100


@dataclass(frozen=True, kw_only=True)
class MimecastOptions(SimOptions):
    seed: int = opt(1, "seed for data and credentials; same seed, same data")
    backlog_secs: float = opt(6 * 3600.0, "the backlog is spread over this many seconds before start")
    audit_events: int = opt(1000, "audit events in the backlog")
    batch_files: int = opt(6, "SIEM batch files per type in the backlog")
    records_per_file: int = opt(20, "events per SIEM batch file")
    batch_types: str = opt(",".join(CG_TYPES), "comma-separated Cloud Gateway types served")
    legacy_files: int = opt(12, "legacy SIEM log files in the backlog")
    legacy_records_per_file: int = opt(10, "records per legacy SIEM log file")
    legacy_files_per_zip: int = opt(4, "log files per get-siem-logs ZIP")
    live: bool = opt(False, "keep producing events at the backlog's spacing while running")
    token_lifetime_secs: int = opt(1799, "API 2.0 access token lifetime (expires_in)")
    binding_ttl_secs: float = opt(0.0, "API 1.0 binding lifetime after each login (0 = never expires)")
    file_url_ttl_secs: float = opt(900.0, "lifetime of pre-signed batch file URLs (0 = expired at once)")
    corrupt_every: int = opt(0, "every Nth batch file of a type is broken (0 = none)")
    legacy_corrupt_every: int = opt(0, "every Nth legacy log file holds a truncated JSON document (0 = none)")
    rate_limit: int = opt(0, "API calls per user per rate window before 429 (0 = unlimited)")
    rate_window_secs: float = opt(60.0, "the rate window in seconds")
    audit_fail_code: str = opt("", "answer audit requests with HTTP 200 and this error code in fail[]")
    latency_secs: float = opt(0.0, "time each API request takes")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("audit_events", "batch_files", "legacy_files", "rate_limit", "corrupt_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("records_per_file", "legacy_records_per_file", "legacy_files_per_zip"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.backlog_secs <= 0 or self.rate_window_secs <= 0 or self.file_url_ttl_secs < 0:
            raise ValueError("backlog_secs and rate_window_secs must be > 0, file_url_ttl_secs >= 0")
        unknown = set(self.types()) - set(CG_TYPES)
        if unknown:
            raise ValueError(f"batch_types: unknown types {sorted(unknown)}; known: {', '.join(CG_TYPES)}")

    def types(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.batch_types.split(",") if t.strip())


def _timeline(now: float, backlog_secs: float, count: int, live: bool) -> Timeline:
    spacing = backlog_secs / max(1, count)
    return Timeline(origin=now - count * spacing, spacing=spacing, backlog=count, live=live)


@register("mimecast")
class MimecastSim(SimServer[MimecastOptions]):
    """Mimecast API 1.0 and 2.0 endpoints for audit events and SIEM logs."""

    options_type = MimecastOptions

    def __init__(self, options: MimecastOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        now = time.time()
        self.creds = Credentials.from_seed(o.seed)
        self.hmac = HmacVerifier(self.creds, o.binding_ttl_secs)
        self.tokens = Tokens(self.creds, o.token_lifetime_secs)
        self.quota = UserQuota(o.rate_limit, o.rate_window_secs)
        self.audit = AuditLog(o.seed, _timeline(now, o.backlog_secs, o.audit_events, o.live))
        self.batches = {
            t: BatchFiles(
                o.seed, t, _timeline(now, o.backlog_secs, o.batch_files, o.live), o.records_per_file
            )
            for t in o.types()
        }
        self.legacy = LegacyLogs(
            o.seed, _timeline(now, o.backlog_secs, o.legacy_files, o.live), o.legacy_records_per_file
        )
        self.live_until: float | None = None if o.live else now
        self.audit_fail_code = o.audit_fail_code
        self._url_key = hashlib.sha256(f"{o.seed}:presign".encode()).digest()
        self.counters: dict[str, int] = {
            "api_calls": 0,
            "audit_events_served": 0,
            "files_served": 0,
            "files_expired": 0,
            "downloads_with_credentials": 0,
            "legacy_zips_served": 0,
            "fail_array_answers": 0,
            "binding_expired_answers": 0,
        }

    @property
    def credentials(self) -> dict[str, Any]:
        c = self.creds
        return {
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "app_id": c.app_id,
            "app_key": c.app_key,
            "access_key": c.access_key,
            "secret_key": c.secret_key,
            "email": c.email,
            "password": c.password,
        }

    def now(self) -> float:
        t = time.time()
        return t if self.live_until is None else min(t, self.live_until)

    def generated(self) -> int:
        now = self.now()
        files = sum(b.timeline.available(now) * b.records_per_file for b in self.batches.values())
        return self.audit.timeline.available(now) + files

    def extra_stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "tokens_issued": self.tokens.issued,
            "logins": self.hmac.logins,
            "rate_limited": self.quota.rejected,
        }

    # --- what tests compute expectations from -------------------------------------------------

    def audit_ids(self, since: float = 0.0) -> set[str]:
        """Ids of every audit event that exists now with eventTime >= ``since``."""
        a = self.audit
        return {a.event_id(i) for i in range(a.timeline.available(self.now())) if a.event_second(i) >= since}

    def is_corrupt(self, i: int) -> bool:
        n = self.options.corrupt_every
        return bool(n) and i % n == n - 1

    def batch_ids(self, log_type: str, *, include_corrupt: bool = False) -> set[str]:
        """``processingId`` of every event in the existing files of ``log_type``."""
        b = self.batches[log_type]
        return {
            r["processingId"]
            for i in range(b.timeline.available(self.now()))
            if include_corrupt or not self.is_corrupt(i)
            for r in b.records(i)
        }

    def legacy_codes(self) -> set[str]:
        """``aCode`` of every record in the existing legacy files that are not corrupt."""
        lg, n = self.legacy, self.options.legacy_corrupt_every
        return {
            r["aCode"]
            for i in range(lg.timeline.available(self.now()))
            if not (n and i % n == n - 1)
            for r in lg.records(i)
        }

    # --- routes ----------------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/oauth/token", self._token)
        app.router.add_post(LOGIN_PATH, self._login)
        app.router.add_post(AUDIT_PATH, self._audit_events)
        app.router.add_post(LEGACY_PATH, self._siem_logs)
        app.router.add_get(BATCH_PATH, self._batch_list)
        app.router.add_get(FILES_PATH + "/{type}/{index}", self._file)
        app.router.add_post("/sim/control", self._control)

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            raise HTTPError(
                _fail(400, "err_xdk_unsupported_grant_type", "grant_type must be client_credentials")
            )
        cid, secret = form.get("client_id"), form.get("client_secret")
        try:
            return json_response(
                self.tokens.issue(
                    cid if isinstance(cid, str) else None, secret if isinstance(secret, str) else None
                )
            )
        except InvalidCredentials as exc:
            raise HTTPError(_bearer_fail(exc)) from None

    async def _login(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        data = body.get("data") if isinstance(body, dict) else None
        item = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
        try:
            self.hmac.login(
                request.headers.get("Authorization", ""),
                request.headers.get("x-mc-app-id"),
                item.get("userName"),
                item.get("accessKey"),
            )
        except InvalidCredentials as exc:
            raise HTTPError(_fail(401, exc.code, exc.message)) from None
        return _ok([{"userName": self.creds.email, "accessKey": self.creds.access_key}])

    async def _authorize(self, request: web.Request, *, hmac_ok: bool, bearer_ok: bool) -> Quota:
        """Authenticate the caller, then take a slot of the user's quota (429 when there is none)."""
        auth = request.headers.get("Authorization", "")
        try:
            if auth.startswith("MC ") and hmac_ok:
                self.hmac.verify({k.lower(): v for k, v in request.headers.items()}, request.path)
            elif auth.lower().startswith("bearer ") and bearer_ok:
                self.tokens.verify(auth)
            else:
                accepted = " or ".join(
                    n for n, ok in (("MC (API 1.0)", hmac_ok), ("Bearer (API 2.0)", bearer_ok)) if ok
                )
                raise InvalidCredentials(
                    "err_xdk_client_unauthorized", f"this endpoint needs {accepted} authorization"
                )
        except InvalidCredentials as exc:
            bearer = not auth.startswith("MC ")
            raise HTTPError(_bearer_fail(exc) if bearer else _fail(401, exc.code, exc.message)) from None
        except BindingExpired:
            self.counters["binding_expired_answers"] += 1
            raise HTTPError(
                _fail(418, "err_xdk_binding_expired", "the access key binding has expired; log in again")
            ) from None
        admitted, quota = self.quota.take(asyncio.get_running_loop().time())
        if not admitted:
            response = _fail(429, "err_xdk_rate_limit_exceeded", "rate limit exceeded")
            response.headers.update(quota.headers())
            raise HTTPError(response)
        self.counters["api_calls"] += 1
        if self.options.latency_secs:
            await asyncio.sleep(self.options.latency_secs)
        return quota

    # --- audit events -----------------------------------------------------------------------------

    async def _audit_events(self, request: web.Request) -> web.Response:
        quota = await self._authorize(request, hmac_ok=True, bearer_ok=True)
        body = await read_json(request)
        if self.audit_fail_code:
            self.counters["fail_array_answers"] += 1
            return _with(quota, _fail(200, self.audit_fail_code, f"simulated failure {self.audit_fail_code}"))
        query = _audit_query(body)
        if query.start < int(self.now()) - AUDIT_LOOKBACK_SECS:
            # Mimecast documents the 60-day limit, not its error code (unconfirmed).
            return _with(
                quota, _fail(200, "err_validation_date_range", "startDateTime is more than 60 days ago")
            )
        matches = self.audit.query(query.start, query.end, self.now(), query.categories)
        page = matches[query.offset : query.offset + query.size]
        pagination: dict[str, Any] = {"pageSize": query.size, "recordStart": query.offset}
        if query.offset + query.size < len(matches):
            pagination["next"] = _encode({**query.token, "o": query.offset + query.size})
        if query.offset > 0:
            pagination["previous"] = _encode({**query.token, "o": max(0, query.offset - query.size)})
        self.counters["audit_events_served"] += len(page)
        doc = {
            "meta": {"status": 200, "pagination": pagination},
            "data": [self.audit.render(i) for i in page],
            "fail": [],
        }
        return _with(quota, json_response(doc))

    # --- SIEM batch API ------------------------------------------------------------------------------

    async def _batch_list(self, request: web.Request) -> web.Response:
        quota = await self._authorize(request, hmac_ok=False, bearer_ok=True)
        q = request.query
        try:
            size = min(MAX_BATCH_PAGE, max(1, int(q.get("pageSize", "100"))))
        except ValueError:
            raise HTTPError(_batch_error(400, "validation_error", "pageSize must be an integer")) from None
        if "nextPage" in q:
            token = _decode(q["nextPage"])
            log_type, index = token.get("t"), token.get("i")
            if log_type not in self.batches or not isinstance(index, int):
                raise HTTPError(_batch_error(400, "invalid_next_page", "nextPage is not valid"))
        else:
            log_type = q.get("type", "")
            if log_type not in self.batches:
                raise HTTPError(
                    _batch_error(400, "validation_error", f"type {log_type!r} is not a known type")
                )
            try:
                since = dt.datetime.strptime(q.get("dateRangeStartsAt", ""), "%Y-%m-%d").replace(
                    tzinfo=dt.UTC
                )
            except ValueError:
                raise HTTPError(
                    _batch_error(400, "validation_error", "dateRangeStartsAt must be YYYY-MM-DD")
                ) from None
            index = self.batches[log_type].timeline.first_at_or_after(since.timestamp())
        files = self.batches[log_type]
        end = min(index + size, files.timeline.available(self.now()))
        origin = f"{request.scheme}://{request.host}"
        expires = int((time.time() + self.options.file_url_ttl_secs) * 1000)  # epoch milliseconds
        value = [
            {
                "url": self._presign(origin, log_type, i, expires),
                "size": len(self._file_body(log_type, i)),
                "expiry": dt.datetime.fromtimestamp(expires / 1000, dt.UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
            }
            for i in range(index, max(index, end))
        ]
        caught_up = max(index, end) >= files.timeline.available(self.now())
        doc = {
            "value": value,
            "@nextPage": _encode({"t": log_type, "i": max(index, end)}),
            "isCaughtUp": caught_up,
        }
        return _with(quota, json_response(doc))

    def _presign(self, origin: str, log_type: str, i: int, expires: int) -> str:
        sig = hmac.new(self._url_key, f"{log_type}:{i}:{expires}".encode(), hashlib.sha256).hexdigest()
        quoted = log_type.replace(" ", "%20")
        return f"{origin}{FILES_PATH}/{quoted}/{i}.json.gz?X-Expires={expires}&X-Signature={sig}"

    def _file_body(self, log_type: str, i: int) -> bytes:
        body = self.batches[log_type].body(i)
        return corrupt_gzip(body, i // max(1, self.options.corrupt_every)) if self.is_corrupt(i) else body

    async def _file(self, request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            # Pre-signed storage URLs refuse a second credential (S3: "only one auth mechanism").
            self.counters["downloads_with_credentials"] += 1
            return _storage_error(400, "InvalidArgument", "Only one auth mechanism allowed")
        log_type, name = request.match_info["type"], request.match_info["index"]
        try:
            i, expires = int(name.removesuffix(".json.gz")), int(request.query.get("X-Expires", ""))
        except ValueError:
            return _storage_error(403, "AccessDenied", "Query-string authentication requires a signature")
        sig = hmac.new(self._url_key, f"{log_type}:{i}:{expires}".encode(), hashlib.sha256).hexdigest()
        if log_type not in self.batches or not hmac.compare_digest(sig, request.query.get("X-Signature", "")):
            return _storage_error(403, "SignatureDoesNotMatch", "The request signature does not match")
        if time.time() * 1000 >= expires:
            self.counters["files_expired"] += 1
            return _storage_error(403, "AccessDenied", "Request has expired")
        self.counters["files_served"] += 1
        return web.Response(body=self._file_body(log_type, i), content_type="application/octet-stream")

    # --- legacy SIEM logs --------------------------------------------------------------------------

    async def _siem_logs(self, request: web.Request) -> web.Response:
        quota = await self._authorize(request, hmac_ok=True, bearer_ok=False)
        body = await read_json(request)
        data = body.get("data") if isinstance(body, dict) else None
        item = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
        if item is None or item.get("type") != "MTA":
            return _with(quota, _fail(200, "err_validation_type", 'data[0].type must be "MTA"'))
        file_format = item.get("fileFormat", "key_value")
        if file_format not in ("key_value", "json"):
            return _with(
                quota, _fail(200, "err_validation_file_format", "fileFormat must be key_value or json")
            )
        start = 0
        if item.get("token"):
            token = _decode(str(item["token"]))
            if not isinstance(token.get("l"), int):
                return _with(quota, _fail(200, "err_invalid_token", "token is not valid"))
            start = token["l"]
        available = self.legacy.timeline.available(self.now())
        if start >= available:
            return _with(quota, _ok([]))
        end = min(available, start + self.options.legacy_files_per_zip)
        n = self.options.legacy_corrupt_every
        corrupt = {i for i in range(start, end) if n and i % n == n - 1}
        self.counters["legacy_zips_served"] += 1
        response = web.Response(
            body=self.legacy.zip_of(range(start, end), file_format, corrupt),
            content_type="application/octet-stream",
            headers={"mc-siem-token": _encode({"l": end})},
        )
        return _with(quota, response)

    # --- harness ---------------------------------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="expected a JSON object")
        if body.get("expire_binding"):
            self.hmac.expire_binding()
        if body.get("revoke_tokens"):
            self.tokens.revoke_all()
        if "audit_fail_code" in body:
            self.audit_fail_code = str(body["audit_fail_code"] or "")
        if body.get("live") is False:
            self.live_until = time.time()
        return json_response({"generated": self.generated(), "audit_fail_code": self.audit_fail_code})


@dataclass(frozen=True)
class _AuditQuery:
    start: int
    end: int
    offset: int
    size: int
    categories: frozenset[str]
    token: dict[str, Any]


def _audit_query(body: Any) -> _AuditQuery:
    """The query of an audit request: from ``pageToken`` alone (gravwell) or from ``data``."""
    meta = body.get("meta") if isinstance(body, dict) else None
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    pagination = pagination if isinstance(pagination, dict) else {}
    try:
        size = min(MAX_AUDIT_PAGE, max(1, int(pagination.get("pageSize", 25))))
    except (TypeError, ValueError):
        raise HTTPError(_fail(200, "err_validation_page_size", "pageSize must be an integer")) from None
    if pagination.get("pageToken"):
        tok = _decode(str(pagination["pageToken"]))
        try:
            return _AuditQuery(int(tok["s"]), int(tok["e"]), int(tok["o"]), size, frozenset(tok["c"]), tok)
        except (KeyError, TypeError, ValueError):
            raise HTTPError(_fail(200, "err_invalid_page_token", "pageToken is not valid")) from None
    data = body.get("data") if isinstance(body, dict) else None
    item = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
    start, end = (
        _audit_time(item.get("startDateTime"), "startDateTime"),
        _audit_time(item.get("endDateTime"), "endDateTime"),
    )
    categories = item.get("categories") or []
    if not isinstance(categories, list):
        raise HTTPError(_fail(200, "err_validation_categories", "categories must be a list"))
    codes = sorted(str(c) for c in categories)
    token = {"s": start, "e": end, "o": 0, "c": codes}
    return _AuditQuery(start, end, 0, size, frozenset(codes), token)


def _audit_time(value: Any, name: str) -> int:
    """Epoch seconds of an ISO 8601 time in any of the layouts clients send (§5)."""
    if not isinstance(value, str) or not value:
        raise HTTPError(_fail(200, "err_validation_blank_" + name, f"{name} is required"))
    for parse in (lambda v: dt.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S%z"), dt.datetime.fromisoformat):
        try:
            parsed = parse(value)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return int(parsed.timestamp())
    raise HTTPError(_fail(200, "err_validation_date_format", f"{name} is not an ISO 8601 date: {value!r}"))


def _encode(token: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(token)).decode()


def _decode(token: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _ok(data: list[Any]) -> web.Response:
    return json_response({"meta": {"status": 200}, "data": data, "fail": []})


def _fail(status: int, code: str, message: str) -> web.Response:
    """API 1.0 style error: HTTP ``status`` (often 200) and the error in ``fail[].errors[]``."""
    doc = {
        "meta": {"status": status},
        "data": [],
        "fail": [{"errors": [{"code": code, "message": message, "retryable": status in (429, 500)}]}],
    }
    return json_response(doc, status)


def _bearer_fail(exc: InvalidCredentials) -> web.Response:
    # API 2.0's 401 body (gravwell; a third-party mock): fail[] items carry code and message directly.
    return json_response({"fail": [{"code": exc.code, "message": exc.message}]}, 401)


def _batch_error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status)


def _storage_error(status: int, code: str, message: str) -> web.Response:
    body = (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        + f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return web.Response(body=body.encode(), status=status, content_type="application/xml")


def _with(quota: Quota, response: web.Response) -> web.Response:
    if quota.limit:
        response.headers.update(quota.headers())
    return response
