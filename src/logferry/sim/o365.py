"""Office 365 Management Activity API simulator (facts in specs/office365.md, Part A).

Serves, under ``/api/v1.0/{tenant}/activity/feed``: ``POST subscriptions/start`` (already
enabled → ``AF20024``), ``POST subscriptions/stop``, ``GET subscriptions/list``,
``GET subscriptions/content`` (``startTime``/``endTime`` rules: both or neither, ≤ 24 h apart,
start ≤ 7 days back, start before end → ``AF20030``/``AF20055``; pages of ``list_page_size`` linked by
a ``NextPageUri`` header with ``nextPage=``) and ``GET audit/{contentId}`` (a JSON array of
records; ``AF20051`` once expired, ``AF20050`` if not yet created, ``AF20052`` if forged).

Tokens come from the Entra simulator (in-process with ``tenants`` tenants, or a remote one via
``entra_url``); the token's ``tid`` must match the tenant in the URL (``AF20010``). Each tenant
and ``PublisherIdentifier`` has ``requests_per_minute``; requests without the parameter share one
pool of ``shared_requests_per_minute`` across all tenants. Over budget → ``403`` with ``AF429``.

Usage::

    async with O365Sim(tenants=3, backlog_secs=86400) as sim:
        creds = sim.credentials  # tenant_ids, client_id, client_secret, authority_host, api_url

``/sim/stats`` adds blobs and records served, throttled and expired counts, requests without a
PublisherIdentifier and the subscription states.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from .bearer import InvalidToken
from .entra import EntraSim
from .entra_guard import EntraGuard
from .o365_content import CONTENT_TYPES, BlobRef, ContentTimeline
from .options import opt
from .ratelimit import SlidingWindow
from .registry import register
from .server import HTTPError, SimOptions, SimServer, json_response, retry_headers

__all__ = ["O365Options", "O365Sim"]

_FEED = "/api/v1.0/{tenant}/activity/feed"
_DAY = 86_400.0
_MAX_WINDOW_SECS = _DAY
_TIME_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S")
_COUNTS = (
    "blobs_listed",
    "blobs_served",
    "records_served",
    "expired_requested",
    "throttled",
    "requests_without_publisher",
    "subscriptions_started",
    "webhooks_validated",
    "notifications_sent",
    "notifications_failed",
)
_NEXT_PAGE = re.compile(r"^(\d{10})R(\d{12})$")


@dataclass(frozen=True)
class Webhook:
    address: str
    auth_id: str
    expiration: str
    since: float = 0.0  # contentCreated from which blobs are still to be announced

    def same_endpoint(self, other: Webhook | None) -> bool:
        return other is not None and (self.address, self.auth_id) == (other.address, other.auth_id)


@dataclass(frozen=True, kw_only=True)
class O365Options(SimOptions):
    seed: int = opt(1, "seed for tenants, credentials and content; same seed, same content")
    tenants: int = opt(
        1, "tenants the in-process Entra simulator knows (a multi-tenant app consented in each)"
    )
    backlog_secs: float = opt(6 * 3600.0, "content already available at start goes back this far")
    blob_interval_secs: float = opt(300.0, "a new content blob per tenant and content type this often")
    records_per_blob: int = opt(20, "audit records in each blob (plus an occasional duplicate)")
    duplicate_ratio: float = opt(0.2, "share of blobs that repeat a record of the previous blob")
    expired_ratio: float = opt(0.0, "share of blobs listed with a contentExpiration already past")
    list_page_size: int = opt(100, "content items per listing page before a NextPageUri")
    requests_per_minute: int = opt(2000, "requests per minute per tenant and PublisherIdentifier (AF429)")
    shared_requests_per_minute: int = opt(600, "requests per minute without PublisherIdentifier, all tenants")
    throttle_window_secs: float = opt(60.0, "the 'minute' the two limits above count over (tests shorten it)")
    subscribed: bool = opt(False, "start with every subscription enabled")
    live: bool = opt(True, "new blobs keep appearing while running (off: the backlog is all there is)")
    retention_secs: float = opt(7 * _DAY, "content lifetime and the oldest startTime accepted")
    audience: str = opt("https://manage.office.com", "token audience the API accepts")
    latency_secs: float = opt(0.002, "time each API request takes")
    notify_interval_secs: float = opt(1.0, "how often new content is announced to registered webhooks")
    entra_url: str | None = opt(
        None, "validate tokens via this Entra simulator's JWKS instead of running one"
    )
    entra_ca_file: str | None = opt(None, "CA bundle for entra_url")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tenants < 1 or self.blob_interval_secs <= 0 or self.list_page_size < 1:
            raise ValueError("tenants, blob_interval_secs and list_page_size must be positive")
        for name in ("duplicate_ratio", "expired_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")


@register("o365")
class O365Sim(SimServer[O365Options]):
    """The Office 365 Management Activity API for one or more tenants."""

    options_type = O365Options

    def __init__(
        self, options: O365Options | None = None, *, entra: EntraSim | None = None, **overrides: Any
    ):
        super().__init__(options, **overrides)
        o = self.options
        self._started_at = time.time()
        if entra is None and o.entra_url is None:
            entra = EntraSim(seed=o.seed, extra_tenants=o.tenants - 1)
        self.guard = EntraGuard(entra, o.entra_url, o.entra_ca_file)
        self.content = ContentTimeline(
            seed=o.seed,
            origin=self._started_at - o.backlog_secs,
            interval_secs=o.blob_interval_secs,
            records_per_blob=o.records_per_blob,
            duplicate_ratio=o.duplicate_ratio,
            expired_ratio=o.expired_ratio,
            retention_secs=o.retention_secs,
        )
        self.subscriptions: dict[tuple[str, str], str] = {}
        self.webhooks: dict[tuple[str, str], Webhook] = {}
        self._notifier: asyncio.Task[None] | None = None
        self._client: aiohttp.ClientSession | None = None
        self._windows: dict[tuple[str, str], SlidingWindow] = {}
        self._shared = SlidingWindow(o.shared_requests_per_minute, o.throttle_window_secs)
        self.counts: Counter[str] = Counter()
        self.requests_by_tenant: Counter[str] = Counter()

    @property
    def tenant_ids(self) -> list[str]:
        return list(self.guard.entra.tenant_ids) if self.guard.entra is not None else []

    @property
    def credentials(self) -> dict[str, Any]:
        creds = self.guard.credentials()
        creds["api_url"] = self.url
        return creds

    def generated(self) -> int:
        return self.counts["records_served"]

    def extra_stats(self) -> dict[str, Any]:
        counts = dict.fromkeys(_COUNTS, 0) | dict(self.counts)
        return {
            **counts,
            "requests_by_tenant": dict(self.requests_by_tenant),
            "subscriptions": {f"{t}/{ct}": s for (t, ct), s in sorted(self.subscriptions.items())},
            "webhooks": {f"{t}/{ct}": w.address for (t, ct), w in sorted(self.webhooks.items())},
        }

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        return _af_error(status, code or "AF50000", message, retry_headers(retry_after))

    @property
    def entra(self) -> EntraSim | None:
        return self.guard.entra

    async def on_start(self) -> None:
        await self.guard.start(self.host, self.tls)
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        self._notifier = asyncio.create_task(self._notify_loop())
        if self.options.subscribed:
            for tenant in self.tenant_ids:
                for ct in CONTENT_TYPES:
                    self.subscriptions[(tenant, ct)] = "enabled"

    async def on_stop(self) -> None:
        if self._notifier is not None:
            self._notifier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._notifier
        if self._client is not None:
            await self._client.close()
        await self.guard.stop()

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_post(_FEED + "/subscriptions/start", self._start)
        r.add_post(_FEED + "/subscriptions/stop", self._stop)
        r.add_get(_FEED + "/subscriptions/list", self._list_subscriptions)
        r.add_get(_FEED + "/subscriptions/content", self._list_content)
        r.add_get(_FEED + "/audit/{content_id}", self._blob)

    # --- harness helpers -----------------------------------------------------------------------

    def expected_ids(self, tenant: str, content_type: str, start: float, end: float) -> set[str]:
        """Record Ids served in blobs created in ``[start, end)`` that exist now (for tests)."""
        return self.content.unique_ids(tenant, content_type, start, end, self._now())

    def _now(self) -> float:
        return time.time() if self.options.live else self._started_at

    # --- subscriptions -------------------------------------------------------------------------

    async def _start(self, request: web.Request) -> web.Response:
        tenant, _publisher = await self._admit(request, "StartSubscription")
        ct = _content_type(request)
        hook = await self._webhook_of(request)
        enabled = self.subscriptions.get((tenant, ct)) == "enabled"
        # /start also registers, changes or re-enables a webhook of an enabled subscription.
        if enabled and (hook is None or hook.same_endpoint(self.webhooks.get((tenant, ct)))):
            raise _fail(400, "AF20024", f"The subscription is already enabled. ContentType={ct}")
        if hook is not None:
            await self._validate_webhook(hook)
            self.webhooks[(tenant, ct)] = dataclasses.replace(hook, since=time.time())
        self.subscriptions[(tenant, ct)] = "enabled"
        self.counts["subscriptions_started"] += 1
        return json_response({"contentType": ct, "status": "enabled", "webhook": self._hook_json(tenant, ct)})

    def _hook_json(self, tenant: str, ct: str) -> dict[str, Any] | None:
        hook = self.webhooks.get((tenant, ct))
        if hook is None:
            return None
        return {
            "status": "enabled",
            "address": hook.address,
            "authId": hook.auth_id,
            "expiration": hook.expiration,
        }

    async def _webhook_of(self, request: web.Request) -> Webhook | None:
        if not request.can_read_body:
            return None
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            raise _fail(400, "AF20002", "The request body is not valid JSON.") from None
        hook = body.get("webhook") if isinstance(body, dict) else None
        if hook is None:
            return None
        address = hook.get("address") if isinstance(hook, dict) else None
        if not isinstance(address, str):
            raise _fail(400, "AF20001", "Missing parameter: webhook.address.")
        url = URL(address)
        # Microsoft requires https; a loopback http address stands in for a local test receiver.
        if url.scheme != "https" and not (
            url.scheme == "http" and url.host in ("127.0.0.1", "localhost", "::1")
        ):
            raise _fail(
                400, "AF20021", f"The webhook endpoint {{{address}}} could not be validated: not HTTPS."
            )
        return Webhook(address, str(hook.get("authId") or ""), str(hook.get("expiration") or ""))

    async def _validate_webhook(self, hook: Webhook) -> None:
        """The validation handshake: the endpoint must answer the code with 200."""
        assert self._client is not None
        code = uuid.uuid4().hex
        headers = {
            "Webhook-ValidationCode": code,
            **({"Webhook-AuthID": hook.auth_id} if hook.auth_id else {}),
        }
        try:
            async with self._client.post(hook.address, json={"validationCode": code}, headers=headers) as r:
                ok = r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if not ok:
            raise _fail(400, "AF20021", f"The webhook endpoint {{{hook.address}}} could not be validated.")
        self.counts["webhooks_validated"] += 1

    async def _notify_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.notify_interval_secs)
            for (tenant, ct), hook in list(self.webhooks.items()):
                if self.subscriptions.get((tenant, ct)) == "enabled":
                    await self._notify(tenant, ct, hook)

    async def _notify(self, tenant: str, ct: str, hook: Webhook) -> None:
        """Announce the blobs created since the last successful notification (retried until one is)."""
        assert self._client is not None
        now = self._now()
        ks = self.content.blobs_between(tenant, ct, hook.since, now, now)
        if not ks:
            return
        items = [
            {
                "tenantId": tenant,
                "clientId": self.guard.credentials().get("client_id", ""),
                **self._item(BlobRef(tenant, ct, k), self.url),
            }
            for k in ks
        ]
        headers = {"Webhook-AuthID": hook.auth_id} if hook.auth_id else {}
        try:
            async with self._client.post(hook.address, data=orjson.dumps(items), headers=headers) as r:
                ok = r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        if ok:
            self.counts["notifications_sent"] += 1
            self.webhooks[(tenant, ct)] = dataclasses.replace(
                hook, since=self.content.created(BlobRef(tenant, ct, ks[-1])) + 1e-3
            )
        else:
            self.counts["notifications_failed"] += 1

    async def _stop(self, request: web.Request) -> web.Response:
        tenant, _publisher = await self._admit(request, "StopSubscription")
        ct = _content_type(request)
        if (tenant, ct) not in self.subscriptions:
            raise _fail(
                400, "AF20022", f"No subscription found for the specified content type. ContentType={ct}"
            )
        self.subscriptions[(tenant, ct)] = "disabled"
        return web.Response(status=200)

    async def _list_subscriptions(self, request: web.Request) -> web.Response:
        tenant, _publisher = await self._admit(request, "ListSubscriptions")
        subs = [
            {"contentType": ct, "status": status, "webhook": self._hook_json(t, ct)}
            for (t, ct), status in sorted(self.subscriptions.items())
            if t == tenant
        ]
        return json_response(subs)

    # --- content -------------------------------------------------------------------------------

    async def _list_content(self, request: web.Request) -> web.Response:
        tenant, _publisher = await self._admit(request, "ListContent")
        ct = _content_type(request)
        status = self.subscriptions.get((tenant, ct))
        if status is None:
            raise _fail(
                400, "AF20022", f"No subscription found for the specified content type. ContentType={ct}"
            )
        if status != "enabled":
            raise _fail(
                400,
                "AF20023",
                f"The subscription was disabled by a tenant or service admin. ContentType={ct}",
            )
        now = self._now()
        start, end = self._window(request, time.time())
        offset = 0
        token = request.query.get("nextPage")
        if token is not None:
            m = _NEXT_PAGE.match(token)
            if m is None:
                raise _fail(400, "AF20031", f"Invalid nextPage Input: {token}.")
            offset = int(m.group(2))
        ks = self.content.blobs_between(tenant, ct, start, end, now)
        page = ks[offset : offset + self.options.list_page_size]
        items = [self._item(BlobRef(tenant, ct, k), f"{request.scheme}://{request.host}") for k in page]
        self.counts["blobs_listed"] += len(items)
        headers = {}
        if offset + len(page) < len(ks):
            nxt = offset + len(page)
            stamp = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y%m%d%H")
            url = request.url.update_query(nextPage=f"{stamp}R{nxt:012d}")
            headers["NextPageUri"] = str(
                url.with_query({k: v for k, v in url.query.items() if k != "PublisherIdentifier"})
            )
        return json_response(items, headers=headers)

    def _item(self, ref: BlobRef, origin: str) -> dict[str, Any]:
        content_id = self.content.content_id(ref)
        return {
            "contentType": ref.content_type,
            "contentId": content_id,
            "contentUri": f"{origin}/api/v1.0/{ref.tenant}/activity/feed/audit/{content_id}",
            "contentCreated": _stamp(self.content.created(ref)) + ".000Z",
            "contentExpiration": _stamp(self.content.expires(ref)) + ".000Z",
        }

    async def _blob(self, request: web.Request) -> web.Response:
        tenant, _publisher = await self._admit(request, "GetBlob")
        content_id = request.match_info["content_id"]
        ref = self.content.parse_content_id(content_id)
        if ref is None or ref.tenant != tenant:
            raise _fail(400, "AF20052", f"Content ID {content_id} in the URL is invalid.")
        now = self._now()
        if not self.content.available(ref, now):
            raise _fail(404, "AF20050", f"The specified content ({content_id}) doesn't exist.")
        if self.content.expires(ref) <= time.time():
            self.counts["expired_requested"] += 1
            raise _fail(400, "AF20051", f"Content requested with the key {content_id} has already expired.")
        records = self.content.records(ref)
        self.counts["blobs_served"] += 1
        self.counts["records_served"] += len(records)
        return web.Response(body=orjson.dumps(records), content_type="application/json")

    # --- checks every call makes -------------------------------------------------------------

    async def _admit(self, request: web.Request, method: str) -> tuple[str, str | None]:
        """Authenticate, check the tenant and spend the caller's quota; returns (tenant, publisher)."""
        if self.options.latency_secs:
            await asyncio.sleep(self.options.latency_secs)
        tenant = request.match_info["tenant"]
        try:
            tenant = str(uuid.UUID(tenant))
        except ValueError:
            raise _fail(400, "AF20013", f"Tenant ID {tenant} in the URL is not a valid GUID.") from None
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPError(_unauthorized())
        try:
            claims = await self.guard.validate(token.strip(), self.options.audience)
        except InvalidToken:
            raise HTTPError(_unauthorized()) from None
        if claims.get("tid") != tenant:
            raise _fail(401, "AF20010", f"The tenant ID in the URL ({tenant}) doesn't match the token's.")
        publisher = request.query.get("PublisherIdentifier")
        if publisher is None:
            self.counts["requests_without_publisher"] += 1
            window = self._shared
        else:
            window = self._windows.setdefault(
                (tenant, publisher),
                SlidingWindow(self.options.requests_per_minute, self.options.throttle_window_secs),
            )
        if window.admit(asyncio.get_running_loop().time()) is not None:
            self.counts["throttled"] += 1
            raise _fail(403, "AF429", f"Too many requests. Method={method}, PublisherId={publisher or ''}")
        self.requests_by_tenant[tenant] += 1
        return tenant, publisher

    def _window(self, request: web.Request, now: float) -> tuple[float, float]:
        q = request.query
        raw_start, raw_end = q.get("startTime"), q.get("endTime")
        if (raw_start is None) != (raw_end is None):
            raise _fail(400, "AF20030", "Start time and end time must both be specified (or both omitted).")
        if raw_start is None or raw_end is None:
            return now - _DAY, now
        start, end = _parse_time(raw_start), _parse_time(raw_end)
        if start >= end:
            raise _fail(400, "AF20055", "Start time must be before end time.")
        if end - start > _MAX_WINDOW_SECS:
            raise _fail(400, "AF20030", "The start and end time must be no more than 24 hours apart.")
        if start < now - self.options.retention_secs:
            raise _fail(400, "AF20030", "The start time cannot be more than 7 days in the past.")
        return start, end


def _content_type(request: web.Request) -> str:
    ct = request.query.get("contentType")
    if ct is None:
        raise _fail(400, "AF20001", "Missing parameter: contentType.")
    if ct not in CONTENT_TYPES:
        raise _fail(400, "AF20020", f"The specified content type is not valid. ContentType={ct}")
    return ct


def _parse_time(raw: str) -> float:
    for fmt in _TIME_FORMATS:
        try:
            return dt.datetime.strptime(raw, fmt).replace(tzinfo=dt.UTC).timestamp()
        except ValueError:
            continue
    raise _fail(
        400, "AF20002", f"Invalid datetime: {raw}; use YYYY-MM-DD, YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS."
    )


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _af_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status, headers)


def _fail(status: int, code: str, message: str) -> HTTPError:
    return HTTPError(_af_error(status, code, message))


def _unauthorized() -> web.Response:
    return json_response({"Message": "Authorization has been denied for this request."}, 401)
