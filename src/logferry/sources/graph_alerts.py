"""Microsoft Defender alerts, type ``defender_alerts``: Graph ``alerts_v2`` (default) or the MDE API.

Facts (shared/specs/defender.md): the SIEM API is deprecated and Graph's v1 ``/security/alerts``
retires 2026-08-31, so this source reads ``GET /v1.0/security/alerts_v2`` (150 requests a minute
per app and tenant, ``SecurityAlert.Read.All``) or ``GET /api/alerts?$expand=evidence`` of the
MDE API (100 calls a minute and 1,500 an hour, ``Alert.Read.All``; a Graph token is refused
there). Both select by last update time, so an alert that changes (status, assignment,
classification) is delivered again in its new version, while re-reading the same version is a
duplicate: the dedupe id is ``{lastUpdateDateTime}|{id}``, with the timestamp's seven digits
kept as the API prints them.

Example::

    sources:
      defender:
        type: defender_alerts
        auth:
          type: client_secret
          tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
          client_id: 0b5d6c3e-1111-4222-8333-944455556666
          client_secret: ${env:DEFENDER_CLIENT_SECRET}
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Literal

from pydantic import Field

from logferry.config.base import BuildContext
from logferry.core.polling import Page, PollingSource, Window, format_time
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
    per_api_field,
)

__all__ = ["KEYS", "PROFILES", "DefenderAlertsConfig", "DefenderAlertsSource"]

PROFILES: dict[str, ApiProfile] = {
    "graph": ApiProfile(
        label="Graph alerts_v2",
        host="graph",
        resource="https://graph.microsoft.com",
        permission="the Microsoft Graph application permission SecurityAlert.Read.All with admin consent",
        budget_key="graph-security-alerts",
        budget_per_app=True,
        # 150 requests a minute per app and tenant is 2.5 a second; stay under it.
        max_requests_per_sec=2.0,
        interval_secs=60,
        window_secs=3600,
        initial_lookback_secs=86400,
        lag_secs=60,
        page_size=500,
    ),
    "mde": ApiProfile(
        label="MDE alerts API",
        host="mde",
        resource="https://api.securitycenter.microsoft.com",
        permission="the WindowsDefenderATP application permission Alert.Read.All with admin consent",
        budget_key="mde-api",
        budget_per_app=True,
        # The hourly cap (1,500) is the tighter one: 0.4/s is 1,440 an hour.
        max_requests_per_sec=0.4,
        interval_secs=60,
        window_secs=3600,
        initial_lookback_secs=86400,
        lag_secs=60,
        page_size=10_000,
        max_page_size=10_000,
    ),
}

#: Dedupe id fields per API: one alert version is (last update time, alert id).
KEYS = {"graph": RecordKey(("lastUpdateDateTime", "id")), "mde": RecordKey(("lastUpdateTime", "id"))}


@register_source("defender_alerts")
class DefenderAlertsConfig(GraphSourceConfig):
    """Defender alerts from Graph ``alerts_v2`` or the MDE API, updates included."""

    PROFILES = PROFILES

    type: Literal["defender_alerts"] = Field(description="Source type.", examples=["defender_alerts"])
    api: Literal["graph", "mde"] = Field(
        "graph",
        description="'graph': Microsoft Graph security alerts_v2 (alerts of every Defender product, "
        "SecurityAlert.Read.All). 'mde': the Defender for Endpoint API /api/alerts with evidence "
        "(Alert.Read.All; 1,500 calls an hour).",
        examples=["mde"],
    )
    interval_secs: float | None = per_api_field("interval_secs", PROFILES)
    window_secs: float | None = per_api_field("window_secs", PROFILES)
    initial_lookback_secs: float | None = per_api_field("initial_lookback_secs", PROFILES)
    lag_secs: float | None = per_api_field("lag_secs", PROFILES)
    page_size: int | None = per_api_field("page_size", PROFILES)
    max_requests_per_sec: float | None = per_api_field("max_requests_per_sec", PROFILES)

    def build(self, name: str, ctx: BuildContext) -> DefenderAlertsSource:
        return DefenderAlertsSource(name, self, ctx)


class DefenderAlertsSource(PollingSource):
    def __init__(self, name: str, cfg: DefenderAlertsConfig, ctx: BuildContext) -> None:
        self.api = GraphApi(name, cfg, ctx)
        super().__init__(name, self.api.settings.window)
        self.cfg = cfg
        self.key = KEYS[cfg.api]

    @property
    def stale_after_secs(self) -> float:
        return self.api.settings.stale_after_secs

    def query(self, window: Window, page_size: int) -> ODataQuery:
        start, end = format_time(window.start), format_time(window.end)
        if self.cfg.api == "mde":
            return ODataQuery(
                self.api.url("/api/alerts"),
                [
                    ("$filter", f"lastUpdateTime ge {start} and lastUpdateTime lt {end}"),
                    ("$expand", "evidence"),
                    ("$top", str(page_size)),
                ],
                page_size,
                # Elastic's MDE input configures no paging at all; a full page without a next link
                # is read on with $skip so a busy window is not cut short.
                skip_paging=True,
            )
        return ODataQuery(
            self.api.url(f"/{self.cfg.api_version}/security/alerts_v2"),
            [
                ("$filter", f"lastUpdateDateTime ge {start} and lastUpdateDateTime lt {end}"),
                ("$top", str(page_size)),
                ("$count", "true"),
            ],
            page_size,
        )

    async def fetch(self, window: Window, page_token: JSONValue | None) -> AsyncIterator[Page]:
        async for page in odata_pages(
            self.api, self.query(window, self.api.settings.page_size), self.key, page_token
        ):
            yield page

    async def check(self) -> CheckResult:
        end = self.now().replace(microsecond=0)
        q = self.query(Window(end - timedelta(minutes=1), end), 1)
        return await self.api.check(q.url, q.params, self.key)
