"""Azure Monitor Logs Ingestion API simulator, the way into Microsoft Sentinel (azure_monitor.md §1).

``POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`` with an Entra ID bearer
token for ``https://monitor.azure.com``, a JSON array (optionally gzip) of at most 1,048,576 bytes on
the wire and after decompression, and rows that fit the stream's table definition from
:mod:`logferry.schemas`. Success is 204, like Azure. The official ``azure-monitor-ingestion``
client works against it unchanged (it needs https: start with ``tls=True``)::

    entra = EntraSim(); await entra.start(tls=True)
    sentinel = SentinelSim(entra=entra); await sentinel.start(tls=True)
    credential = ClientSecretCredential(entra.tenant_id, entra.client_id, entra.client_secret,
                                        authority=entra.url, disable_instance_discovery=True,
                                        connection_verify=entra.ca_file)
    client = LogsIngestionClient(sentinel.url, credential, connection_verify=sentinel.ca_file)

Tokens are checked in-process against an ``EntraSim`` passed as ``entra=``, or via ``entra_url``'s
JWKS; with neither, ``start`` runs its own Entra simulator in the same process on another port and
puts its credentials into ``credentials``. Accepted rows are kept in SQLite and served at
``GET /sim/tables/{table}/rows``.

Choices where Azure's behaviour is unconfirmed: a bad, expired or wrong-audience token is 401
``InvalidToken`` (the token does not authenticate the caller for this resource; 403 is Azure's
answer for a valid token lacking the DCR role, which a fault rule can play); an unknown DCR is 404
``NotFound``; an unknown stream is 404 ``InvalidStream`` (the code Azure's DCR validation uses for
undeclared streams); malformed or mistyped rows are 400 ``InvalidPayload``; throttling is 429
``TooManyRequests`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from logferry.schemas import available_tables, load_table

from .bearer import InvalidToken
from .entra import EntraSim
from .entra_guard import EntraGuard
from .options import opt
from .ratelimit import SlidingWindow, retry_after_secs
from .registry import register
from .sentinel_rows import RowRejected, RowValidator
from .sentinel_store import RowStore
from .server import SimOptions, SimServer, json_response, retry_headers

__all__ = ["DEFAULT_DCR_ID", "MAX_BODY_BYTES", "SentinelOptions", "SentinelSim"]

#: The per-request limit, on the wire and after decompression (azure_monitor.md §1.5-1.6).
MAX_BODY_BYTES = 1_048_576
DEFAULT_DCR_ID = "dcr-7e3f0c5a9b2d4e6f8a1c3b5d7e9f0a2b"
_API_VERSIONS = frozenset({"2021-11-01-preview", "2023-01-01"})
# Bodies are read up to this size so an oversized request still gets Azure's 413 with its size.
_READ_LIMIT = 64 * MAX_BODY_BYTES


@dataclass(frozen=True, kw_only=True)
class SentinelOptions(SimOptions):
    dcr_id: str = opt(DEFAULT_DCR_ID, "the data collection rule immutable id that exists")
    audience: str = opt("https://monitor.azure.com", "token audience the API accepts")
    max_requests_per_minute: int = opt(0, "requests per minute before 429 (0 = no throttling)")
    db_path: str = opt(":memory:", "SQLite file for accepted rows")
    store_rows: bool = opt(True, "keep accepted rows (off: count only, for benchmarks)")
    entra_url: str | None = opt(
        None, "validate tokens via this Entra simulator's JWKS instead of running one"
    )
    entra_ca_file: str | None = opt(None, "CA bundle for entra_url")


@register("sentinel")
class SentinelSim(SimServer[SentinelOptions]):
    """The Logs Ingestion API of one DCR whose streams are all shipped table definitions."""

    options_type = SentinelOptions
    max_body_bytes = _READ_LIMIT
    # The 1 MB limit applies to the wire body too, so the handler must see it still compressed.
    auto_decompress = False

    def __init__(
        self, options: SentinelOptions | None = None, *, entra: EntraSim | None = None, **overrides: Any
    ) -> None:
        super().__init__(options, **overrides)
        self.guard = EntraGuard(entra, self.options.entra_url, self.options.entra_ca_file)
        tables = [load_table(name) for name in available_tables()]
        self.streams = {t.stream: RowValidator(t) for t in tables}
        self.store = RowStore(self.options.db_path, self.options.store_rows)
        self._window = (
            SlidingWindow(self.options.max_requests_per_minute, 60.0)
            if self.options.max_requests_per_minute
            else None
        )
        self.bytes_received = 0

    @property
    def credentials(self) -> dict[str, Any]:
        creds = self.guard.credentials()
        creds.update(
            endpoint=self.url,
            dcr_id=self.options.dcr_id,
            streams={v.table.table: stream for stream, v in self.streams.items()},
        )
        return creds

    def generated(self) -> int:
        return sum(self.store.accepted.values())

    def extra_stats(self) -> dict[str, Any]:
        return {
            "rows_accepted": dict(self.store.accepted),
            "requests_by_status": dict(sorted(self.requests.items())),
            "bytes_received": self.bytes_received,
        }

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        return _azure_error(status, code or "ServiceError", message, retry_headers(retry_after))

    @property
    def entra(self) -> EntraSim | None:
        return self.guard.entra

    async def on_start(self) -> None:
        await self.guard.start(self.host, self.tls)

    async def on_stop(self) -> None:
        await self.guard.stop()
        self.store.close()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/dataCollectionRules/{dcr}/streams/{stream}", self._ingest)
        app.router.add_get("/sim/tables/{table}/rows", self._rows)

    # --- ingestion -----------------------------------------------------------------------------

    async def _ingest(self, request: web.Request) -> web.StreamResponse:
        error = await self._refuse(request)
        if error is not None:
            return error
        validator = self.streams[request.match_info["stream"]]
        body = await request.read()
        self.bytes_received += len(body)
        raw = _decoded_body(request, body)
        if isinstance(raw, web.Response):
            return raw
        try:
            rows = validator.validate(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            return _azure_error(400, "InvalidPayload", f"The request body is not valid JSON: {exc}")
        except RowRejected as exc:
            return _azure_error(400, "InvalidPayload", str(exc))
        self.store.add(validator.table.table, rows)
        return web.Response(status=204)

    async def _refuse(self, request: web.Request) -> web.Response | None:
        """The error for anything wrong before the body is read, in the order Azure checks."""
        version = request.query.get("api-version")
        if version not in _API_VERSIONS:
            return _azure_error(
                400,
                "InvalidApiVersion",
                f"api-version must be one of {sorted(_API_VERSIONS)}, got {version!r}.",
            )
        denied = await self._authenticate(request)
        if denied is not None:
            return denied
        dcr, stream = request.match_info["dcr"], request.match_info["stream"]
        if dcr != self.options.dcr_id:
            return _azure_error(404, "NotFound", f"Data collection rule with immutable Id '{dcr}' not found.")
        if stream not in self.streams:
            return _azure_error(
                404,
                "InvalidStream",
                f"Stream '{stream}' is not declared in data collection rule '{dcr}'. "
                f"Declared streams: {', '.join(sorted(self.streams))}.",
            )
        if self._window is not None:
            wait = self._window.admit(asyncio.get_running_loop().time())
            if wait is not None:
                after = retry_after_secs(wait)
                return _azure_error(
                    429,
                    "TooManyRequests",
                    f"Request rate exceeds {self.options.max_requests_per_minute} requests per minute for "
                    f"this data collection rule. Retry after {after} seconds.",
                    {"Retry-After": str(after)},
                )
        return None

    async def _authenticate(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("An Authorization header with a Bearer token is required.")
        try:
            await self.guard.validate(token.strip(), self.options.audience)
        except InvalidToken as exc:
            return _unauthorized(exc.message)
        return None

    async def _rows(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query["limit"]) if "limit" in request.query else None
            offset = int(request.query.get("offset", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="limit and offset must be integers") from None
        try:
            body = self.store.rows_json(request.match_info["table"], limit, offset)
        except LookupError as exc:
            raise web.HTTPConflict(text=str(exc)) from None
        return web.Response(body=body, content_type="application/json")


def _decoded_body(request: web.Request, body: bytes) -> bytes | web.Response:
    """The uncompressed body, or the 413/400/415 Azure answers instead."""
    if len(body) > MAX_BODY_BYTES:
        return _too_large(len(body))
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "gzip":
        return _azure_error(
            415, "UnsupportedContentEncoding", f"Content-Encoding {encoding!r} is not supported."
        )
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        # Bounded, so a gzip bomb costs at most _READ_LIMIT bytes of memory.
        raw = inflater.decompress(body, _READ_LIMIT)
    except zlib.error as exc:
        return _azure_error(400, "InvalidPayload", f"The request body is not valid gzip: {exc}")
    if inflater.unconsumed_tail:
        return _too_large(len(raw), at_least=True)
    if len(raw) > MAX_BODY_BYTES:
        return _too_large(len(raw))
    return raw


def _too_large(size: int, at_least: bool = False) -> web.Response:
    provided = f"more than {size}" if at_least else str(size)
    # Azure's wording, from a real 413 (azure_monitor.md §1.5).
    return _azure_error(
        413,
        "ContentLengthLimitExceeded",
        f"Maximum allowed content length: {MAX_BODY_BYTES} bytes (1 MB). "
        f"Provided content length: {provided} bytes.",
    )


def _unauthorized(message: str) -> web.Response:
    return _azure_error(401, "InvalidToken", message, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _azure_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message}}, status, {**(headers or {}), "x-ms-error-code": code}
    )
