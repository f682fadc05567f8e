"""The Office 365 Management Activity API calls for one tenant, and their error codes.

Every call carries ``PublisherIdentifier`` (blob downloads included: without it they count
against a quota shared by every tenant). URIs the API hands back (``NextPageUri``,
``contentUri``) are followed only on the configured API host, so a bearer token never
leaves for another host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from yarl import URL

from logferry.core.errors import SourceError, VendorAPIError
from logferry.core.polling import Window
from logferry.core.types import Record
from logferry.net.http import HttpClient, HttpResponse, same_origin

__all__ = [
    "Blob",
    "BlobContent",
    "ContentPage",
    "ManagementApi",
    "SubscriptionError",
    "api_error_code",
    "is_throttled",
    "parse_blob",
]

#: Error codes that mean "this blob is gone": skip it, count it, never retry it.
GONE = frozenset({"AF20050", "AF20051", "AF20052"})
#: The subscription for the content type is missing or was disabled by an admin.
NOT_SUBSCRIBED = frozenset({"AF20022", "AF20023"})
ALREADY_ENABLED = "AF20024"
#: Client errors whose body is read here rather than raised by the HTTP client.
_PASSTHROUGH = (400, 404)
#: Header spellings seen in the docs and in other clients (NextPageUri, NextPageUrl, Nextpageuri).
_NEXT_PAGE_HEADERS = ("NextPageUri", "NextPageUrl")


def api_error_code(body: bytes) -> str | None:
    """The ``AFxxxxx`` code of an error body ``{"error": {"code": …}}``, if there is one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    error = doc.get("error") if isinstance(doc, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, str) else None


def is_throttled(resp: HttpResponse) -> bool:
    """Office 365 throttles with ``403`` and code ``AF429``, not with 429."""
    return resp.status == 403 and api_error_code(resp.body) == "AF429"


class SubscriptionError(SourceError):
    """The content type has no enabled subscription (AF20022/AF20023)."""


@dataclass(frozen=True)
class Blob:
    uri: str
    expires: str  # contentExpiration as the API wrote it


@dataclass(frozen=True)
class ContentPage:
    blobs: list[Blob]
    next_uri: str | None
    rejects: list[tuple[str, bytes]]


@dataclass(frozen=True)
class BlobContent:
    records: list[Record]
    ids: list[str]
    rejects: list[tuple[str, bytes]]
    gone: str | None = None  # the AF code when the blob expired or does not exist


class ManagementApi:
    def __init__(self, http: HttpClient, root: str, tenant_id: str, publisher: str) -> None:
        self.http = http
        self.tenant_id = tenant_id
        self.publisher = publisher
        self.feed = f"{root}/api/v1.0/{tenant_id}/activity/feed"
        self._root = root

    async def list_subscriptions(self) -> list[dict[str, Any]]:
        resp = await self._get(f"{self.feed}/subscriptions/list", ())
        subs = resp.json()
        if not isinstance(subs, list):
            raise VendorAPIError("subscriptions/list did not return a JSON array")
        return [s for s in subs if isinstance(s, dict)]

    async def start_subscription(self, content_type: str, webhook: dict[str, str] | None = None) -> str:
        """Start (or re-enable) a subscription, registering ``webhook`` (``address``, ``authId``,
        ``expiration``) if given; returns its status. Already enabled is success."""
        url = f"{self.feed}/subscriptions/start"
        params = [("contentType", content_type), ("PublisherIdentifier", self.publisher)]
        body = {"webhook": webhook} if webhook is not None else None
        resp = await self.http.request("POST", url, params=params, json=body, passthrough=_PASSTHROUGH)
        if resp.status in _PASSTHROUGH:
            code = api_error_code(resp.body)
            if code == ALREADY_ENABLED:
                return "enabled"
            raise VendorAPIError(f"starting {content_type} failed: {_text(resp)}", resp.status)
        doc = resp.json()
        return str(doc.get("status", "unknown")) if isinstance(doc, dict) else "unknown"

    async def list_content(self, content_type: str, window: Window, next_uri: str | None) -> ContentPage:
        if next_uri is not None:
            resp = await self._get(self._own(next_uri), ())
        else:
            params = (
                ("contentType", content_type),
                ("startTime", _api_time(window)[0]),
                ("endTime", _api_time(window)[1]),
            )
            resp = await self._get(f"{self.feed}/subscriptions/content", params)
        nxt = next((resp.headers[h] for h in _NEXT_PAGE_HEADERS if resp.headers.get(h)), None)
        try:
            items = orjson.loads(resp.body)
        except orjson.JSONDecodeError as exc:
            return ContentPage([], nxt, [(f"content listing is not JSON: {exc}", resp.body)])
        if not isinstance(items, list):
            return ContentPage([], nxt, [("content listing is not a JSON array", resp.body)])
        blobs: list[Blob] = []
        rejects: list[tuple[str, bytes]] = []
        for item in items:
            uri = item.get("contentUri") if isinstance(item, dict) else None
            expires = item.get("contentExpiration") if isinstance(item, dict) else None
            if not isinstance(uri, str) or not isinstance(expires, str):
                rejects.append(("content item lacks contentUri or contentExpiration", orjson.dumps(item)))
                continue
            blobs.append(Blob(uri, expires))
        return ContentPage(blobs, nxt, rejects)

    async def fetch_blob(self, blob: Blob) -> BlobContent:
        resp = await self.http.request(
            "GET", self._with_publisher(self._own(blob.uri)), passthrough=_PASSTHROUGH
        )
        if resp.status in _PASSTHROUGH:
            code = api_error_code(resp.body)
            if code in GONE:
                return BlobContent([], [], [], gone=code)
            raise VendorAPIError(f"content download failed: {_text(resp)}", resp.status)
        return parse_blob(resp.body)

    async def _get(self, url: str, params: Sequence[tuple[str, str]]) -> HttpResponse:
        resp = await self.http.request("GET", self._with_publisher(url, params), passthrough=_PASSTHROUGH)
        if resp.status in _PASSTHROUGH:
            code = api_error_code(resp.body)
            if code in NOT_SUBSCRIBED:
                raise SubscriptionError(f"no enabled subscription: {_text(resp)}")
            raise VendorAPIError(f"HTTP {resp.status} from {URL(url).path}: {_text(resp)}", resp.status)
        return resp

    def owns(self, uri: str) -> bool:
        """Whether ``uri`` is on the API's own host (a bearer token may be sent there)."""
        return same_origin(uri, self._root)

    def _own(self, uri: str) -> str:
        if not self.owns(uri):
            raise VendorAPIError(f"the API returned a URI off its host ({uri[:100]}); not following it")
        return uri

    def _with_publisher(self, url: str, params: Sequence[tuple[str, str]] = ()) -> str:
        u = URL(url, encoded=True)
        extra = list(params)
        if "PublisherIdentifier" not in u.query:
            extra.append(("PublisherIdentifier", self.publisher))
        return str(u.extend_query(extra)) if extra else url


def parse_blob(body: bytes) -> BlobContent:
    """Records and dedupe ids of one content blob; malformed records go to rejects."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return BlobContent([], [], [(f"content blob is not JSON: {exc}", body)])
    if not isinstance(doc, list):
        return BlobContent([], [], [("content blob is not a JSON array", body)])
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    for rec in doc:
        rid = rec.get("Id") if isinstance(rec, dict) else None
        created = rec.get("CreationTime") if isinstance(rec, dict) else None
        if not isinstance(rid, str) or not isinstance(created, str):
            rejects.append(("audit record lacks Id or CreationTime", orjson.dumps(rec)))
            continue
        records.append(rec)
        # Time first, so ids append to the dedupe index (see SourceContext.emit).
        ids.append(f"{created}|{rid}")
    return BlobContent(records, ids, rejects)


def _api_time(window: Window) -> tuple[str, str]:
    fmt = "%Y-%m-%dT%H:%M:%S"
    return window.start.strftime(fmt), window.end.strftime(fmt)


def _text(resp: HttpResponse) -> str:
    return f"HTTP {resp.status}: {resp.body[:300].decode('utf-8', 'replace')}"
