"""Audit events (``POST /api/audit/get-audit-events``) in time windows, one lane of the source.

Facts (mimecast.md §5): windows on ``startDateTime``/``endDateTime`` (ISO 8601, lookback 60
days), ``meta.pagination.pageToken`` = the previous response's ``next``, which is present only
while more pages exist; errors may come as HTTP 200 with a non-empty ``fail`` array, which is a
failure, not an empty page. Whether window ends are inclusive is unconfirmed, so consecutive
windows share their boundary second and records dedupe on ``eventTime|id``.

Each record gains the fields Sentinel's Mimecast Audit connector added (§9.1), which the
``MimecastAudit_CL`` table maps: ``mimecastEventId``, ``mimecastEventCategory``, ``app``, ``src``,
``method`` (parsed from ``eventInfo``) and ``time_generated`` (``eventTime`` in UTC).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from logferry.core.errors import MalformedPage, VendorAPIError
from logferry.core.polling import Page, PollingSource, Window, WindowSettings, format_time
from logferry.core.sink import CheckResult
from logferry.core.types import JSONValue, Record
from logferry.sources.mimecast.api import MimecastApi
from logferry.sources.mimecast.config import AUDIT_RETENTION_SECS, AuditConfig

__all__ = ["AUDIT_PATH", "AuditLane", "enrich", "parse_audit_page", "parse_event_time"]

AUDIT_PATH = "/api/audit/get-audit-events"
#: The layout Sentinel's connectors send (``2024-01-01T00:00:00+0000``).
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"
_log = logging.getLogger(__name__)


def parse_event_time(value: str) -> datetime:
    """``eventTime`` in either layout Mimecast uses (``…+0000`` or ``….fffZ``), as UTC."""
    try:
        parsed = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def enrich(rec: dict[str, Any], when: datetime) -> dict[str, Any]:
    """Add the legacy Sentinel parser's fields (``audit_parser.py``) without touching the rest."""
    category = str(rec.get("category") or "")
    parts: dict[str, str] = {}
    for part in str(rec.get("eventInfo") or "").split(","):
        key, sep, value = part.strip().partition(": ")
        if sep:
            parts[key] = value.strip()
    return {
        **rec,
        "mimecastEventId": "audit_" + category.removesuffix("_logs") if category else "audit_other",
        "mimecastEventCategory": "audit",
        "app": parts.get("Application", "unknown"),
        "src": parts.get("IP", "unknown"),
        "method": parts.get("Method", "unknown"),
        "time_generated": format_time(when),
    }


def parse_audit_page(doc: Any) -> tuple[list[Record], list[str], list[tuple[str, bytes]], str | None]:
    """Records, ids (``time|id``, ascending with time), rejects and the next page token."""
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        raise MalformedPage("audit page has no data list", orjson.dumps(doc))
    meta = doc.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    nxt = pagination.get("next") if isinstance(pagination, dict) else None
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    for rec in data:
        event_id = rec.get("id") if isinstance(rec, dict) else None
        event_time = rec.get("eventTime") if isinstance(rec, dict) else None
        if not isinstance(event_id, str) or not event_id or not isinstance(event_time, str):
            rejects.append(("audit event lacks id or eventTime", orjson.dumps(rec)))
            continue
        try:
            when = parse_event_time(event_time)
        except ValueError:
            rejects.append(
                (f"audit event has an unreadable eventTime {event_time[:40]!r}", orjson.dumps(rec))
            )
            continue
        records.append(enrich(rec, when))
        ids.append(f"{format_time(when)}|{event_id}")
    return records, ids, rejects, nxt if isinstance(nxt, str) and nxt else None


class AuditLane(PollingSource):
    def __init__(self, name: str, cfg: AuditConfig, api: MimecastApi) -> None:
        super().__init__(
            name,
            WindowSettings(
                interval_secs=cfg.interval_secs,
                window_secs=cfg.window_secs,
                lookback_secs=cfg.initial_lookback_secs,
                lag_secs=cfg.lag_secs,
                retention_secs=AUDIT_RETENTION_SECS,
            ),
        )
        self.cfg = cfg
        self.api = api

    def _body(self, window: Window, token: str | None, page_size: int) -> dict[str, Any]:
        pagination: dict[str, Any] = {"pageSize": page_size}
        if token:
            pagination["pageToken"] = token
        query: dict[str, Any] = {
            "startDateTime": window.start.strftime(TIME_FORMAT),
            "endDateTime": window.end.strftime(TIME_FORMAT),
        }
        if self.cfg.categories:
            query["categories"] = list(self.cfg.categories)
        if self.cfg.query:
            query["query"] = self.cfg.query
        # The query goes along with the token too (Elastic, Sentinel v2): a token alone works for
        # some clients (gravwell), but the full request is the one every client agrees on.
        return {"meta": {"pagination": pagination}, "data": [query]}

    async def fetch(self, window: Window, page_token: JSONValue | None) -> AsyncIterator[Page]:
        token = page_token if isinstance(page_token, str) else None
        try:
            doc = await self.api.post(AUDIT_PATH, self._body(window, token, self.cfg.page_size))
        except VendorAPIError as exc:
            if token is None:
                raise
            # A token saved before a restart may have expired (unconfirmed how long they live):
            # read the window again from its start; ids dedupe what was already delivered.
            _log.warning("audit page token from the cursor refused (%s); restarting the window", exc)
            token = None
            doc = await self.api.post(AUDIT_PATH, self._body(window, None, self.cfg.page_size))
        while True:
            records, ids, rejects, nxt = parse_audit_page(doc)
            if nxt == token:
                nxt = None  # a token that names itself would loop forever
            yield Page(records, ids, nxt, rejects)
            if nxt is None:
                return
            token = nxt
            doc = await self.api.post(AUDIT_PATH, self._body(window, token, self.cfg.page_size))

    async def check(self) -> CheckResult:
        end = self.now().replace(microsecond=0)
        await self.api.post(AUDIT_PATH, self._body(Window(end - timedelta(minutes=1), end), None, 1))
        return CheckResult(True, "audit events readable")

    def __repr__(self) -> str:
        return f"AuditLane({self.name!r})"
