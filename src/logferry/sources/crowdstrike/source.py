"""CrowdStrike Falcon Event Streams source: one lane per partition, one offset cursor per partition.

The source discovers the streams once, builds a :class:`StreamLane` per partition and runs them
with :func:`~logferry.core.lanes.run_lanes`, so each partition commits its own offset (a single
global offset loses data on multi-feed streams, Elastic beats#52875)::

    {"lanes": {"partition-0": {"offset": 8695286}, "partition-1": {"offset": 120}}}

When a later discovery lists other partitions, the lanes are rebuilt from the committed cursor.
With ``alerts`` configured, the Alerts API is polled as one more lane (``"alerts"``). The OAuth2
token comes from :class:`~logferry.auth.oauth2.ClientCredentials` and renews on its own
clock, independent of the stream sessions.
"""

from __future__ import annotations

from typing import Any

from logferry.auth.oauth2 import ClientCredentials
from logferry.config.base import BuildContext
from logferry.core.errors import AuthError, SourceError
from logferry.core.lanes import Lane, run_lanes
from logferry.core.polling import report_failure
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.net.http import HttpClient
from logferry.net.retry import Backoff
from logferry.sources.crowdstrike.alerts import AlertsLane
from logferry.sources.crowdstrike.config import DEFAULT_STALE_AFTER_SECS, CrowdStrikeConfig
from logferry.sources.crowdstrike.discovery import Discovery, PartitionsChanged
from logferry.sources.crowdstrike.mapping import mapper_for
from logferry.sources.crowdstrike.stream import StreamLane, StreamSettings

__all__ = ["ALERTS_LANE", "CrowdStrikeSource", "lane_name"]

ALERTS_LANE = "alerts"
#: Requests in flight per API client; discover and refresh are rare, so a few suffice.
MAX_CONCURRENT_REQUESTS = 4


def lane_name(partition: int) -> str:
    return f"partition-{partition}"


class CrowdStrikeSource:
    def __init__(self, name: str, cfg: CrowdStrikeConfig, ctx: BuildContext) -> None:
        self.name = name
        self.cfg = cfg
        self._metrics = ctx.metrics
        self._stale_after = cfg.stale_after_secs or DEFAULT_STALE_AFTER_SECS
        self.session = ctx.session(cfg.tls.settings())
        base = cfg.base_url
        limiter = ctx.limiter(
            ("crowdstrike", base, cfg.client_id), cfg.max_requests_per_sec, MAX_CONCURRENT_REQUESTS
        )
        common: dict[str, Any] = {
            "limiter": limiter,
            "timeout_secs": cfg.timeout_secs,
            "component": name,
            "metrics": ctx.metrics,
        }
        self.tokens = ClientCredentials(
            HttpClient(self.session, **common),
            f"{base}/oauth2/token",
            cfg.client_id,
            cfg.client_secret,
            vendor="CrowdStrike",
            extra={"member_cid": cfg.member_cid} if cfg.member_cid else None,
        )
        self.api = HttpClient(self.session, auth=self.tokens, **common)
        self.discovery = Discovery(self.api, base, cfg.app_id)
        self.settings = StreamSettings(
            batch_events=cfg.batch_events,
            flush_secs=cfg.flush_secs,
            connect_timeout_secs=cfg.connect_timeout_secs,
            idle_timeout_secs=cfg.idle_timeout_secs,
            reconnect_max_secs=cfg.reconnect_max_secs,
            event_types=list(cfg.event_types),
        )
        self.mapper = mapper_for(cfg.output_format)
        self.lanes: dict[str, StreamLane] = {}

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    async def close(self) -> None:
        return None

    async def run(self, ctx: SourceContext) -> None:
        backoff = Backoff(initial_secs=1.0, max_secs=self.cfg.reconnect_max_secs)
        while not ctx.stopping.is_set():
            try:
                partitions = await self.discovery.start()
            except SourceError as exc:
                if not await report_failure(ctx, exc, backoff, f"discover: {exc}{_hint(exc)}"):
                    return
                continue
            backoff.reset()
            self.lanes = {
                lane_name(p): StreamLane(
                    self.name, p, self.discovery, self.session, self.settings, self.mapper, self._metrics
                )
                for p in sorted(partitions)
            }
            lanes: dict[str, Lane] = dict(self.lanes)
            alerts = self.cfg.alerts
            if alerts is not None:
                lanes[ALERTS_LANE] = AlertsLane(
                    self.api,
                    self.cfg.base_url,
                    interval_secs=alerts.interval_secs,
                    initial_lookback_secs=alerts.initial_lookback_secs,
                    batch_size=alerts.batch_size,
                    query=alerts.query,
                )
            try:
                await run_lanes(ctx, lanes)
                return
            except* PartitionsChanged as changed:
                ctx.logger.info("source %s: %s; restarting the lanes", self.name, changed.exceptions[0])

    async def check(self) -> CheckResult:
        try:
            await self.tokens.token()
        except SourceError as exc:
            return CheckResult(False, f"token request failed: {exc}{_hint(exc)}")
        try:
            partitions = await self.discovery.start()
        except SourceError as exc:
            return CheckResult(False, f"event stream discovery failed: {exc}{_hint(exc)}")
        return CheckResult(
            True, f"token ok; {len(partitions)} event stream partition(s) for appId {self.cfg.app_id}"
        )


def _hint(exc: SourceError) -> str:
    text = str(exc)
    if isinstance(exc, AuthError) and "invalid client" in text:
        return " (check client_id/client_secret and the cloud: credentials only work in their own cloud)"
    if isinstance(exc, AuthError) or "403" in text:
        return " (the API client needs the scope 'Event streams: Read')"
    return ""
