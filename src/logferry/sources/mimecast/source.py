"""The ``mimecast`` source: audit events, SIEM batch logs per type and legacy SIEM logs as lanes.

Each log kind has its own cursor (``core.lanes``): ``audit`` (a time window and page token),
``siem/<type>`` (the batch API's ``nextPage`` and the files of the listing already committed)
and ``siem_legacy`` (the ``mc-siem-token``). Every lane's requests share one limiter keyed by
the Mimecast user, since the vendor's limits are per user across keys::

    {"lanes": {"audit": {"start": …, "end": …, "page": …},
               "siem/receipt": {"next": …, "start": "2026-11-21", "done": […]},
               "siem_legacy": {"token": …}}}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from logferry.config.base import BuildContext
from logferry.core.errors import AuthError, SourceError
from logferry.core.lanes import Lane, run_lanes
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.sources.mimecast.api import MimecastApi, fail_message
from logferry.sources.mimecast.audit import AuditLane
from logferry.sources.mimecast.config import MimecastConfig
from logferry.sources.mimecast.legacy import LEGACY_PATH, LegacySiemLane
from logferry.sources.mimecast.siem import BATCH_PATH, SiemBatchLane

__all__ = ["MimecastSource"]


class MimecastSource:
    def __init__(self, name: str, cfg: MimecastConfig, ctx: BuildContext) -> None:
        self.name = name
        self.cfg = cfg
        self.api = MimecastApi(name, cfg, ctx)
        self.lanes: dict[str, Lane] = {}
        intervals: list[float] = []
        self.audit: AuditLane | None = None
        if cfg.audit is not None:
            self.audit = AuditLane(name, cfg.audit, self.api)
            self.lanes["audit"] = self.audit
            intervals.append(cfg.audit.interval_secs)
        if cfg.siem is not None:
            for log_type in dict.fromkeys(cfg.siem.types):
                self.lanes[f"siem/{log_type}"] = SiemBatchLane(
                    name, log_type, cfg.siem, self.api, ctx.metrics
                )
            intervals.append(cfg.siem.interval_secs)
        if cfg.siem_legacy is not None:
            self.lanes["siem_legacy"] = LegacySiemLane(cfg.siem_legacy, self.api)
            intervals.append(cfg.siem_legacy.interval_secs)
        self._stale_after = cfg.stale_after_secs or 3 * max(intervals)

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    async def run(self, ctx: SourceContext) -> None:
        await run_lanes(ctx, self.lanes)

    async def close(self) -> None:
        return None

    async def check(self) -> CheckResult:
        """Authenticate and make one small read per enabled log kind."""
        done: list[str] = []
        try:
            if self.audit is not None:
                await self.audit.check()
                done.append("audit events")
            if self.cfg.siem is not None:
                await self.api.http.request(
                    "GET",
                    self.api.base + BATCH_PATH,
                    params=[
                        ("type", self.cfg.siem.types[0]),
                        ("pageSize", "1"),
                        ("dateRangeStartsAt", _today()),
                    ],
                    headers={"Accept": "application/json"},
                )
                done.append("SIEM batch listing")
            if self.cfg.siem_legacy is not None and self.audit is None:
                # get-siem-logs hands out data, not a probe; any API 1.0 call proves the keys, and
                # the token-less request is read-only (the cursor stays where it is).
                resp = await self.api.http.request(
                    "POST",
                    self.api.base + LEGACY_PATH,
                    json={"data": [{"type": "MTA", "compress": True, "fileFormat": "json"}]},
                )
                problem = None if resp.body.startswith(b"PK") else fail_message(_json(resp.body))
                if problem is not None:
                    return CheckResult(False, f"get-siem-logs refused: {problem}")
                done.append("legacy SIEM logs")
        except AuthError as exc:
            return CheckResult(False, f"authentication failed: {exc}; {self._auth_hint()}")
        except SourceError as exc:
            return CheckResult(False, f"request to {self.cfg.base_url} failed: {exc}")
        return CheckResult(True, "ok: " + ", ".join(done))

    def _auth_hint(self) -> str:
        if self.cfg.auth.type == "oauth2":
            return "check auth.client_id/client_secret and region/api_url (API 2.0 application)"
        return "check auth.app_id/app_key/access_key/secret_key and the regional api_url (API 1.0)"


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")
