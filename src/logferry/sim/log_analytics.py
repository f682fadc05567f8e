"""Azure Monitor HTTP Data Collector API simulator, the legacy way into Log Analytics (azure_monitor.md §3).

``POST /api/logs?api-version=2016-04-01`` with ``Authorization: SharedKey {workspace}:{signature}``,
``Log-Type``, ``x-ms-date``, ``Content-Type: application/json`` and optionally ``time-generated-field``
and ``x-ms-AzureResourceId``; the body is a JSON array of objects of at most 30 MB. Success is 200 with
an empty body; errors are ``{"Error": code, "Message": text}`` as the service sends them. The signature
is checked over the Content-Type value the request carried, so a client that signs
``application/json`` but sends ``application/json; charset=utf-8`` gets 403, as the real service does.

Accepted records are stored typed the way the service types them: a column per property with the
suffix ``_s`` (string), ``_b`` (boolean), ``_d`` (number), ``_t`` (ISO 8601 date-time string) or ``_g``
(GUID-looking string); nulls omitted; nested objects and arrays as one ``_s`` column holding their JSON;
values above 32 KB truncated; plus ``TimeGenerated`` (from ``time-generated-field`` when that value is
at most 2 days old, else the receive time), ``Type`` (``{Log-Type}_CL``) and ``_ResourceId``. Rows are
served at ``GET /sim/tables/{Log-Type}_CL/rows``.

Choices where the service's behaviour is unconfirmed: the order of checks (api-version, content type
and Log-Type with 400 first, then the signature with 403, then size with 404, then the body); an
``x-ms-date`` more than ``max_clock_skew_secs`` from now is 403 (as Azure Storage's SharedKey does); a
property name with characters other than letters, digits and ``_``, or a reserved one (``tenant``,
``TimeGenerated``, ``RawData``), is 400 ``InvalidDataFormat``; an empty array is 200; nested values as
JSON text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import orjson
from aiohttp import web

from logferry.config.azure import GUID_PATTERN

from .options import opt
from .registry import register
from .sentinel_store import RowStore
from .server import SimOptions, SimServer, json_response, retry_headers

__all__ = ["DEFAULT_WORKSPACE_ID", "LogAnalyticsOptions", "LogAnalyticsSim", "typed_row"]

DEFAULT_WORKSPACE_ID = "5f1c2b3a-4d5e-4f60-8a1b-2c3d4e5f6a7b"
API_VERSION = "2016-04-01"
MAX_POST_BYTES = 30_000_000
FIELD_MAX_BYTES = 32 * 1024
TIME_GENERATED_MAX_AGE = timedelta(days=2)
_RESERVED = frozenset({"tenant", "timegenerated", "rawdata"})
_NAME = re.compile(r"[A-Za-z0-9_]+")
_GUID = re.compile(GUID_PATTERN)
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
# Bodies are read up to this size so an oversized post still gets the service's 404.
_READ_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class LogAnalyticsOptions(SimOptions):
    workspace_id: str = opt(DEFAULT_WORKSPACE_ID, "the workspace id requests must name")
    shared_key: str = opt("", "the workspace key (base64) requests are signed with; empty: a random one")
    max_post_bytes: int = opt(MAX_POST_BYTES, "largest body accepted; a larger one gets 404")
    max_clock_skew_secs: float = opt(900.0, "x-ms-date further than this from now gets 403 (0: no check)")
    db_path: str = opt(":memory:", "SQLite file for accepted rows (a file keeps them across restarts)")
    store_rows: bool = opt(True, "keep accepted rows (off: count only, for benchmarks)")


@register("log_analytics")
class LogAnalyticsSim(SimServer[LogAnalyticsOptions]):
    """The Data Collector API of one workspace."""

    options_type = LogAnalyticsOptions
    max_body_bytes = _READ_LIMIT

    def __init__(self, options: LogAnalyticsOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self.shared_key = self.options.shared_key or base64.b64encode(os.urandom(64)).decode()
        try:
            self._key = base64.b64decode(self.shared_key, validate=True)
        except ValueError:  # binascii.Error
            raise ValueError("shared_key must be base64, like a workspace's Primary Key") from None
        self._store: RowStore | None = None
        self.bytes_received = 0

    @property
    def credentials(self) -> dict[str, Any]:
        return {
            "workspace_id": self.options.workspace_id,
            "shared_key": self.shared_key,
            "endpoint": self.url,
        }

    @property
    def store(self) -> RowStore:
        if self._store is None:
            raise RuntimeError("LogAnalyticsSim is not started")
        return self._store

    def generated(self) -> int:
        return sum(self.store.accepted.values()) if self._store is not None else 0

    def extra_stats(self) -> dict[str, Any]:
        return {
            "rows_accepted": dict(self.store.accepted) if self._store is not None else {},
            "requests_by_status": dict(sorted(self.requests.items())),
            "bytes_received": self.bytes_received,
        }

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        return _error(
            status, code or _CODES.get(status, "UnspecifiedError"), message, retry_headers(retry_after)
        )

    async def on_start(self) -> None:
        # Opened here and closed on stop, so a test can stop and restart the "workspace" (an outage)
        # and, with a db_path file, find the rows accepted before it.
        self._store = RowStore(self.options.db_path, self.options.store_rows)

    async def on_stop(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/logs", self._ingest)
        app.router.add_get("/sim/tables/{table}/rows", self._rows)

    # --- ingestion -----------------------------------------------------------------------------

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        refused = _check_headers(request)
        if refused is not None:
            return refused
        body = await request.read()
        self.bytes_received += len(body)
        denied = self._authenticate(request, body)
        if denied is not None:
            return denied
        if len(body) > self.options.max_post_bytes:
            return _error(404, "NotFound", f"The request body of {len(body)} bytes exceeds the 30 MB limit.")
        try:
            records = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, "InvalidDataFormat", f"The body is not valid JSON: {exc}")
        problem = _records_problem(records)
        if problem is not None:
            return _error(400, "InvalidDataFormat", problem)
        log_type = request.headers["Log-Type"]
        received = datetime.now(UTC)
        time_field = request.headers.get("time-generated-field")
        resource_id = request.headers.get("x-ms-AzureResourceId")
        table = f"{log_type}_CL"
        if self.store.store_rows:
            records = [typed_row(r, table, received, time_field, resource_id) for r in records]
        self.store.add(table, records)  # without store_rows only counted: no typing needed
        return web.Response(status=200)

    def _authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        header = request.headers.get("Authorization")
        if not header:
            return _forbidden("No Authorization header was specified")
        scheme, _, credential = header.partition(" ")
        if scheme != "SharedKey":
            return _forbidden("An invalid scheme was specified in the Authorization header")
        workspace, _, signature = credential.strip().partition(":")
        if workspace.lower() != self.options.workspace_id.lower():
            return _forbidden("The workspace id in the Authorization header is not this workspace's")
        date = request.headers.get("x-ms-date", "")
        try:
            sent = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return _forbidden("The x-ms-date header is missing or not an RFC 1123 date")
        sent = sent if sent.tzinfo else sent.replace(tzinfo=UTC)
        skew = self.options.max_clock_skew_secs
        if skew and abs((datetime.now(UTC) - sent).total_seconds()) > skew:
            return _forbidden("The x-ms-date header is too far from the current time")
        signed = f"POST\n{len(body)}\n{request.headers.get('Content-Type', '')}\nx-ms-date:{date}\n/api/logs"
        expected = base64.b64encode(hmac.new(self._key, signed.encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            return _forbidden("An invalid signature was specified in the Authorization header")
        return None

    async def _rows(self, request: web.Request) -> web.Response:
        try:
            body = self.store.rows_json(request.match_info["table"])
        except LookupError as exc:
            raise web.HTTPConflict(text=str(exc)) from None
        return web.Response(body=body, content_type="application/json")


def _check_headers(request: web.Request) -> web.Response | None:
    """The 400 for a request whose settings are wrong, whatever its body (azure_monitor.md §3.5)."""
    version = request.query.get("api-version")
    if version is None:
        return _error(400, "MissingApiVersion", "The api-version query parameter is required.")
    if version != API_VERSION:
        return _error(400, "InvalidApiVersion", f"The api-version {version!r} is not supported.")
    content_type = request.headers.get("Content-Type")
    if not content_type:
        return _error(400, "MissingContentType", "The Content-Type header is required.")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return _error(400, "UnsupportedContentType", f"Content-Type {content_type!r} is not supported.")
    log_type = request.headers.get("Log-Type")
    if not log_type:
        return _error(400, "MissingLogType", "The Log-Type header is required.")
    if len(log_type) > 100 or not _NAME.fullmatch(log_type):
        return _error(
            400, "InvalidLogType", "The Log-Type may hold only letters, digits and _, up to 100 characters."
        )
    return None


def _records_problem(records: Any) -> str | None:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        return "The body must be a JSON array of objects."
    for record in records:
        for key in record:
            if not _NAME.fullmatch(key):
                return f"The property name {key!r} may hold only letters, digits and _."
            if key.lower() in _RESERVED:
                return f"The property name {key!r} is reserved."
    return None


def typed_row(
    record: dict[str, Any],
    table: str,
    received: datetime,
    time_field: str | None = None,
    resource_id: str | None = None,
) -> dict[str, Any]:
    """``record`` as the service stores it: suffixed columns plus TimeGenerated, Type and _ResourceId."""
    row: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            continue
        suffix, stored = _typed(value)
        row[key + suffix] = stored
    row["TimeGenerated"] = _time_generated(record.get(time_field) if time_field else None, received)
    row["Type"] = table
    if resource_id:
        row["_ResourceId"] = resource_id
    return row


def _typed(value: Any) -> tuple[str, Any]:
    if isinstance(value, bool):
        return "_b", value
    if isinstance(value, int | float):
        return "_d", float(value)
    if isinstance(value, str):
        if _GUID.fullmatch(value):
            return "_g", value
        if _DATETIME.fullmatch(value):
            return "_t", value
        return "_s", _truncated(value)
    return "_s", _truncated(orjson.dumps(value).decode())


def _truncated(text: str) -> str:
    raw = text.encode()
    return text if len(raw) <= FIELD_MAX_BYTES else raw[:FIELD_MAX_BYTES].decode("utf-8", "ignore")


def _time_generated(value: Any, received: datetime) -> str:
    when = received
    if isinstance(value, str) and _DATETIME.fullmatch(value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None:
            parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            if received - parsed <= TIME_GENERATED_MAX_AGE:
                when = parsed
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


_CODES = {
    403: "InvalidAuthorization",
    404: "NotFound",
    429: "TooManyRequests",
    500: "UnspecifiedError",
    503: "ServiceUnavailable",
}


def _forbidden(message: str) -> web.Response:
    return _error(403, "InvalidAuthorization", message)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"Error": code, "Message": message}, status, headers)
