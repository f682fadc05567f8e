"""Exchange Online message trace, type ``message_trace``: Graph ``messageTraces`` (default) or the legacy RWS.

Facts (shared/specs/office365.md part B): Graph ``GET /{v1.0|beta}/admin/exchange/tracing/messageTraces``
needs a ``receivedDateTime`` range with both ``ge`` and ``le``, at most 10 days long and starting at
most 90 days back; ``$top`` is 1..5000; paging follows ``@odata.nextLink``; a tenant may send 100
requests per 5-minute window (list and detail calls together). The Reporting Web Service
(``reporting.svc/MessageTrace``, being retired from 2026-04-06) filters on ``StartDate``/``EndDate``,
sends 2000 rows a page with a *relative* ``odata.nextLink``, and fails with HTTP 500 once
``$skiptoken`` reaches 999999: such a window is split in half and read again.

Trace rows arrive minutes after the mail, so windows end ``lag_secs`` (default 15 minutes) before
now. A message has one row per recipient and its rows share the trace id, so the dedupe id is
``{receivedDateTime}|{id}|{recipientAddress}`` (RWS: ``{Received}|{MessageTraceId}|{RecipientAddress}``).

Example::

    sources:
      trace:
        type: message_trace
        auth:
          type: client_secret
          tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
          client_id: 0b5d6c3e-1111-4222-8333-944455556666
          client_secret: ${env:MESSAGE_TRACE_CLIENT_SECRET}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Literal

import orjson
from pydantic import Field, model_validator
from yarl import URL

from logferry.config.base import BuildContext
from logferry.core.errors import VendorAPIError
from logferry.core.polling import Page, PollingSource, Window, format_time, parse_time
from logferry.core.registry import register_source
from logferry.core.sink import CheckResult
from logferry.core.types import JSONValue
from logferry.sources.graph_common import (
    ApiProfile,
    GraphApi,
    GraphSourceConfig,
    ODataQuery,
    RecordKey,
    odata_pages,
    parse_odata,
    per_api_field,
)

__all__ = ["KEYS", "PROFILES", "RWS_PATH", "MessageTraceConfig", "MessageTraceSource"]

RWS_PATH = "/ecp/reportingwebservice/reporting.svc/MessageTrace"
_DAY = 86400.0

PROFILES: dict[str, ApiProfile] = {
    "graph": ApiProfile(
        label="Graph message trace",
        host="graph",
        resource="https://graph.microsoft.com",
        permission="the Graph application permission ExchangeMessageTrace.Read.All with admin consent",
        budget_key="graph-message-trace",
        budget_per_app=False,
        # 100 requests per 5-minute running window per tenant is 0.33 a second.
        max_requests_per_sec=0.3,
        interval_secs=300,
        window_secs=3600,
        initial_lookback_secs=_DAY,
        lag_secs=900,
        page_size=1000,
        max_page_size=5000,
        max_window_secs=10 * _DAY,
        # Starting more than 90 days back is a 400; keep an hour's margin for clock skew.
        retention_secs=90 * _DAY - 3600,
        hint_401="a tenant new to Graph message trace answers 401 for several hours until the service "
        "principal of appId 8bd644d1-64a1-4d4b-ae52-2e0cbf64e373 is provisioned",
    ),
    "rws": ApiProfile(
        label="Reporting Web Service MessageTrace",
        host="reporting",
        resource="https://outlook.office365.com",
        permission="the Office 365 Exchange Online application permission ReportingWebService.Read.All with "
        "admin consent, and a directory role (Global Reader or Security Reader) for the app",
        budget_key="exchange-rws",
        budget_per_app=True,
        max_requests_per_sec=1.0,
        interval_secs=300,
        window_secs=3600,
        initial_lookback_secs=_DAY,
        lag_secs=900,
        page_size=2000,
        max_window_secs=30 * _DAY,
        retention_secs=30 * _DAY - 3600,
    ),
}

KEYS = {
    "graph": RecordKey(("receivedDateTime", "id", "recipientAddress")),
    "rws": RecordKey(("Received", "MessageTraceId", "RecipientAddress")),
}


@register_source("message_trace")
class MessageTraceConfig(GraphSourceConfig):
    """Exchange Online message trace rows from Graph or the Reporting Web Service."""

    PROFILES = PROFILES

    type: Literal["message_trace"] = Field(description="Source type.", examples=["message_trace"])
    api: Literal["graph", "rws"] = Field(
        "graph",
        description="'graph': Microsoft Graph messageTraces (ExchangeMessageTrace.Read.All). 'rws': the "
        "legacy Reporting Web Service MessageTrace report (ReportingWebService.Read.All plus a directory "
        "role), being retired from 2026-04-06.",
        examples=["rws"],
    )
    interval_secs: float | None = per_api_field("interval_secs", PROFILES)
    window_secs: float | None = per_api_field("window_secs", PROFILES)
    initial_lookback_secs: float | None = per_api_field("initial_lookback_secs", PROFILES)
    lag_secs: float | None = per_api_field("lag_secs", PROFILES)
    page_size: int | None = Field(
        None,
        ge=1,
        le=5000,
        description="Rows per page ($top) for api graph, 1-5000. Default: 1000. Not for api rws: that "
        "service sends 2000 rows a page.",
        examples=[5000],
    )
    max_requests_per_sec: float | None = per_api_field("max_requests_per_sec", PROFILES)

    @model_validator(mode="after")
    def _page_size_is_the_services_for_rws(self) -> MessageTraceConfig:
        if self.api == "rws" and self.page_size is not None:
            raise ValueError("page_size does not apply to api rws: the service sends 2000 rows a page")
        return self

    def build(self, name: str, ctx: BuildContext) -> MessageTraceSource:
        return MessageTraceSource(name, self, ctx)


class MessageTraceSource(PollingSource):
    def __init__(self, name: str, cfg: MessageTraceConfig, ctx: BuildContext) -> None:
        self.api = GraphApi(name, cfg, ctx)
        super().__init__(name, self.api.settings.window)
        self.cfg = cfg
        self.key = KEYS[cfg.api]

    @property
    def stale_after_secs(self) -> float:
        return self.api.settings.stale_after_secs

    def graph_query(self, window: Window, page_size: int) -> ODataQuery:
        start, end = format_time(window.start), format_time(window.end)
        return ODataQuery(
            self.api.url(f"/{self.cfg.api_version}/admin/exchange/tracing/messageTraces"),
            [
                # Both bounds are inclusive: a row exactly on a boundary is read twice, once per
                # window, and dedupe drops the second.
                ("$filter", f"receivedDateTime ge {start} and receivedDateTime le {end}"),
                ("$top", str(page_size)),
            ],
            page_size,
        )

    def rws_params(self, start: str, end: str) -> list[tuple[str, str]]:
        return [
            ("$filter", f"StartDate eq datetime'{start}' and EndDate eq datetime'{end}'"),
            ("$format", "json"),
        ]

    async def fetch(self, window: Window, page_token: JSONValue | None) -> AsyncIterator[Page]:
        if self.cfg.api == "graph":
            query = self.graph_query(window, self.api.settings.page_size)
            async for page in odata_pages(self.api, query, self.key, page_token):
                yield page
            return
        async for page in self._rws_pages(window, page_token):
            yield page

    async def _rws_pages(self, window: Window, page_token: JSONValue | None) -> AsyncIterator[Page]:
        """Pages of ``window``; the token lists the (sub)windows still to read and the next link."""
        token: dict[str, Any] = (
            page_token
            if isinstance(page_token, dict)
            else {"todo": [[format_time(window.start), format_time(window.end)]], "next": None}
        )
        todo: list[list[str]] = [list(w) for w in token["todo"]]
        link: str | None = token.get("next")
        while todo:
            start, end = todo[0]
            url = link or self.api.url(RWS_PATH)
            resp = await self.api.get(url, None if link else self.rws_params(start, end), passthrough=(500,))
            rejects: list[tuple[str, bytes]] = []
            if resp.status == 500:
                if link is None or not _past_skiptoken_ceiling(resp.body):
                    raise VendorAPIError(f"{self.api.label} answered HTTP 500: {resp.body[:300]!r}", 500)
                halves = _halves(start, end)
                if halves is None:
                    rejects.append((
                        f"{self.api.label} has more rows received between {start} and {end} than "
                        "$skiptoken can page (999999); the rest of this window cannot be read",
                        resp.body,
                    ))  # fmt: skip
                    todo = todo[1:]
                else:
                    # Rows already read from this window come again in the halves; dedupe drops them.
                    todo = [*halves, *todo[1:]]
                link = None
                yield Page([], [], {"todo": todo, "next": None} if todo else None, rejects)
                continue
            page = parse_odata(resp.body, self.key, self.api.label)
            rejects.extend(page.rejects)
            link = None
            if page.next_link is not None:
                # The service's link is relative to the report URL ("../../reportingwebservice/...").
                resolved = str(URL(url).join(URL(page.next_link)))
                if self.api.same_origin(resolved):
                    link = resolved
                else:
                    rejects.append(
                        (f"{self.api.label} nextLink leaves the API host; not followed", resolved.encode())
                    )
            if link is None:
                todo = todo[1:]
            yield Page(page.records, page.ids, {"todo": todo, "next": link} if todo else None, rejects)

    async def check(self) -> CheckResult:
        end = self.now().replace(microsecond=0)
        window = Window(end - timedelta(minutes=1), end)
        if self.cfg.api == "graph":
            q = self.graph_query(window, 1)
            return await self.api.check(q.url, q.params, self.key)
        params = self.rws_params(format_time(window.start), format_time(window.end))
        return await self.api.check(self.api.url(RWS_PATH), params, self.key)


def _past_skiptoken_ceiling(body: bytes) -> bool:
    """Whether a 500 is RWS's answer to a $skiptoken past its ceiling (``odata.error`` UnknownError)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    error = doc.get("odata.error") if isinstance(doc, dict) else None
    return isinstance(error, dict) and error.get("code") == "UnknownError"


def _halves(start: str, end: str) -> list[list[str]] | None:
    """``[start, mid]`` and ``[mid, end]`` on whole seconds, or None when less than two seconds remain."""
    a, b = parse_time(start), parse_time(end)
    half = (b - a) // 2
    if half < timedelta(seconds=1):
        return None
    mid = a + timedelta(seconds=int(half.total_seconds()))
    return [[start, format_time(mid)], [format_time(mid), end]]
