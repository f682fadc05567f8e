"""meshStack event logs (``GET /api/meshobjects/mesheventlogs``), type ``meshstack``.

Facts (shared/specs/meshstack.md): OAuth2 client credentials at ``/api/login`` (JSON body →
200; form body → 307 to the IdP, which must be followed with method and body kept); a
versioned HAL ``Accept`` type or 406; ``from`` inclusive / ``until`` exclusive; 0-based
``page``/``size`` paging with ``size`` ≤ 1000; zero results may omit ``_embedded``; one
request at a time per key, else 429. Events dedupe on ``metadata.uuid``.

Example::

    sources:
      mesh:
        type: meshstack
        api_url: https://federation.example.meshcloud.io
        client_id: 6f1c…            # the API key's Key ID
        client_secret: ${env:MESHSTACK_KEY_SECRET}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Literal

import orjson
from pydantic import Field, field_validator
from yarl import URL

from logferry.auth.tokens import CachedTokenProvider, Token
from logferry.config.base import BuildContext, SourceConfig, TLSConfig, check_api_url
from logferry.config.secrets import Secret
from logferry.core.errors import AuthError, VendorAPIError
from logferry.core.polling import Page, PollingSource, Window, WindowSettings, format_time
from logferry.core.registry import register_source
from logferry.core.sink import CheckResult
from logferry.core.types import JSONValue, Record
from logferry.net.http import HttpClient

__all__ = ["MEDIA_TYPE", "MeshStackConfig", "MeshStackLogin", "MeshStackSource"]

MEDIA_TYPE = "application/vnd.meshcloud.api.mesheventlog.v1-preview.hal+json"
EVENTS_PATH = "/api/meshobjects/mesheventlogs"
MAX_PAGE_SIZE = 1000  # larger sizes are silently lowered by meshStack

DEFAULT_PAGE_SIZE = 500
DEFAULT_INTERVAL_SECS = 60.0
DEFAULT_WINDOW_SECS = 300.0
DEFAULT_LOOKBACK_SECS = 86400.0
DEFAULT_LAG_SECS = 30.0
DEFAULT_MAX_RPS = 10.0


@register_source("meshstack")
class MeshStackConfig(SourceConfig):
    type: Literal["meshstack"] = Field(description="Source type.", examples=["meshstack"])
    api_url: str = Field(
        description="Base URL of the meshStack instance (no path).",
        examples=["https://federation.example.meshcloud.io"],
    )
    client_id: str = Field(
        min_length=1,
        description="The API key's Key ID. Needs the permission 'Admin: List Event Logs in any Workspace'.",
        examples=["6f1c2d9e-1b6a-4c1e-9e0f-2f3a4b5c6d7e"],
    )
    client_secret: Secret = Field(description="The API key's Key Secret, by reference.")
    login: Literal["json", "form"] = Field(
        "json",
        description="How to call /api/login: 'json' (meshStack's recommendation, answers 200) or 'form' "
        "(form-encoded client credentials, answered with a 307 redirect to the IdP, which is followed).",
    )
    interval_secs: float = Field(
        DEFAULT_INTERVAL_SECS, ge=1, description="Seconds between polls once caught up."
    )
    window_secs: float = Field(
        DEFAULT_WINDOW_SECS,
        ge=1,
        description="Largest from/until window per query (Sentinel's poller uses 300).",
    )
    initial_lookback_secs: float = Field(
        DEFAULT_LOOKBACK_SECS, ge=0, description="On first start, how far back to collect."
    )
    lag_secs: float = Field(
        DEFAULT_LAG_SECS,
        ge=0,
        description="Query only windows that ended this long ago, so events committed late are not missed.",
    )
    page_size: int = Field(
        DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Events per page (max 1000)."
    )
    max_requests_per_sec: float = Field(
        DEFAULT_MAX_RPS, gt=0, description="Request budget per API key across all of this source's requests."
    )
    max_concurrent_requests: int = Field(
        1, ge=1, description="Requests in flight per API key; meshStack asks for one at a time."
    )
    event_types: list[str] = Field(
        default_factory=list,
        description="Only these eventType values (Created, Changed, Deleted, …); empty = all. "
        "One query per window for each type.",
        examples=[["Created", "Deleted"]],
    )
    exclude_titles: list[str] = Field(
        default_factory=list,
        description="Drop high-volume titles at the API (excludeTitle).",
        examples=[["Building Block Run Requested"]],
    )
    workspace_identifier: str | None = Field(None, description="Only events of this workspace identifier.")
    timeout_secs: float = Field(30.0, gt=0, description="Per-request timeout.")
    tls: TLSConfig = Field(TLSConfig(), description="TLS settings for the meshStack API.")

    @field_validator("api_url")
    @classmethod
    def _https(cls, v: str) -> str:
        return check_api_url(v, "https://federation.example.meshcloud.io")

    def build(self, name: str, ctx: BuildContext) -> MeshStackSource:
        return MeshStackSource(name, self, ctx)


class MeshStackLogin(CachedTokenProvider):
    """Client-credentials login at ``/api/login``, in either of meshStack's two styles."""

    def __init__(self, http: HttpClient, api_url: str, client_id: str, secret: Secret, style: str) -> None:
        super().__init__()
        self._http = http
        self._url = f"{api_url}/api/login"
        self._client_id = client_id
        self._secret = secret
        self._style = style

    async def fetch(self) -> Token:
        if self._style == "json":
            resp = await self._http.request(
                "POST", self._url, json={"clientId": self._client_id, "clientSecret": self._secret.reveal()}
            )
        else:
            form = {
                "client_id": self._client_id,
                "client_secret": self._secret.reveal(),
                "grant_type": "client_credentials",
            }
            resp = await self._http.request("POST", self._url, data=form)
            if resp.status in (307, 308):
                # The form variant hands the request to meshStack's IdP; 307 means "same
                # method, same body", which generic clients do not all honour.
                target = URL(self._url).join(URL(resp.headers.get("Location", "")))
                resp = await self._http.request("POST", str(target), data=form)
        if resp.status != 200:
            raise AuthError(f"meshStack login answered HTTP {resp.status}")
        try:
            body = resp.json()
            return str(body["access_token"]), float(body.get("expires_in", 300))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AuthError("meshStack login returned no access_token") from exc


class MeshStackSource(PollingSource):
    def __init__(self, name: str, cfg: MeshStackConfig, ctx: BuildContext) -> None:
        super().__init__(
            name,
            WindowSettings(
                interval_secs=cfg.interval_secs,
                window_secs=cfg.window_secs,
                lookback_secs=cfg.initial_lookback_secs,
                lag_secs=cfg.lag_secs,
            ),
        )
        self.cfg = cfg
        if cfg.stale_after_secs is not None:
            self._stale_after = cfg.stale_after_secs
        else:
            self._stale_after = 3 * cfg.interval_secs
        session = ctx.session(cfg.tls.settings())
        limiter = ctx.limiter(
            ("meshstack", cfg.api_url, cfg.client_id), cfg.max_requests_per_sec, cfg.max_concurrent_requests
        )
        common: dict[str, Any] = {
            "limiter": limiter,
            "timeout_secs": cfg.timeout_secs,
            "component": name,
            "metrics": ctx.metrics,
        }
        self.login = MeshStackLogin(
            HttpClient(session, **common), cfg.api_url, cfg.client_id, cfg.client_secret, cfg.login
        )
        self.http = HttpClient(session, auth=self.login, **common)

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    def _params(self, window: Window, page: int, event_type: str | None) -> list[tuple[str, str]]:
        params = [
            ("from", format_time(window.start)),
            ("until", format_time(window.end)),
            ("page", str(page)),
            ("size", str(self.cfg.page_size)),
        ]
        if event_type:
            params.append(("eventType", event_type))
        if self.cfg.workspace_identifier:
            params.append(("workspaceIdentifier", self.cfg.workspace_identifier))
        params.extend(("excludeTitle", t) for t in self.cfg.exclude_titles)
        return params

    async def fetch(self, window: Window, page_token: JSONValue | None) -> AsyncIterator[Page]:
        # The token is (index into event_types, page number), so a filtered source resumes
        # inside the right query after a restart.
        types: list[str | None] = list(self.cfg.event_types) or [None]
        t_index, page = page_token if isinstance(page_token, list) else [0, 0]
        while t_index < len(types):
            resp = await self.http.request(
                "GET",
                f"{self.cfg.api_url}{EVENTS_PATH}",
                params=self._params(window, page, types[t_index]),
                headers={"Accept": MEDIA_TYPE},
            )
            records, ids, rejects, total_pages = parse_page(resp.body)
            if page + 1 < total_pages:
                page += 1
            else:
                t_index, page = t_index + 1, 0
            yield Page(records, ids, [t_index, page] if t_index < len(types) else None, rejects)

    async def check(self) -> CheckResult:
        try:
            await self.login.token()
        except AuthError as exc:
            return CheckResult(False, f"login failed: {exc}; check client_id/client_secret and the API URL")
        except VendorAPIError as exc:
            return CheckResult(False, f"cannot reach {self.cfg.api_url}: {exc}")
        end = self.now().replace(microsecond=0)
        try:
            resp = await self.http.request(
                "GET",
                f"{self.cfg.api_url}{EVENTS_PATH}",
                params=self._params(Window(end - timedelta(minutes=1), end), 0, None),
                headers={"Accept": MEDIA_TYPE},
            )
        except AuthError as exc:
            return CheckResult(
                False,
                f"event log access refused ({exc}); the key needs 'Admin: List Event Logs in any Workspace'",
            )
        except VendorAPIError as exc:
            return CheckResult(False, f"event log request failed: {exc}")
        _records, _ids, rejects, _pages = parse_page(resp.body)
        if rejects:
            return CheckResult(False, f"unexpected response: {rejects[0][0]}")
        return CheckResult(True, "login ok; event log query ok")


def parse_page(body: bytes) -> tuple[list[Record], list[str], list[tuple[str, bytes]], int]:
    """Records, their uuids, rejects (reason, raw) and ``page.totalPages`` of one HAL page."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return [], [], [(f"meshStack page is not JSON: {exc}", body)], 0
    if not isinstance(doc, dict):
        return [], [], [("meshStack page is not a JSON object", body)], 0
    page = doc.get("page")
    total_pages = page.get("totalPages", 0) if isinstance(page, dict) else 0
    if not isinstance(total_pages, int):
        return [], [], [("meshStack page has a non-integer page.totalPages", body)], 0
    embedded = doc.get("_embedded") or {}
    raw = embedded.get("meshEventLogs", []) if isinstance(embedded, dict) else None
    if not isinstance(raw, list):
        return [], [], [("meshStack page has no _embedded.meshEventLogs list", body)], total_pages
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    for rec in raw:
        meta = rec.get("metadata") if isinstance(rec, dict) else None
        uuid = meta.get("uuid") if isinstance(meta, dict) else None
        created = meta.get("createdAt") if isinstance(meta, dict) else None
        if not isinstance(uuid, str) or not isinstance(created, str):
            rejects.append(("meshStack event lacks metadata.uuid or metadata.createdAt", orjson.dumps(rec)))
            continue
        records.append(rec)
        # Ids that ascend with time append to the right edge of the dedupe index instead of
        # dirtying a random page per event (bench/dedupe.py: ~5 µs vs up to 32 µs per id).
        ids.append(f"{created}|{uuid}")
    return records, ids, rejects, total_pages
