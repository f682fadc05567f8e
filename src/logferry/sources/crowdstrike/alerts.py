"""Falcon Alerts API polling as one more lane of the source (specs/crowdstrike.md §6).

``POST /alerts/combined/alerts/v1`` with ``{after, limit, sort: "updated_timestamp|asc", filter}``,
following ``meta.pagination.after`` while present, as Elastic's alert input does. The filter is
``updated_timestamp:>='<since>'`` rather than the ``>`` Elastic sends: whether several alerts can
share the boundary timestamp is unconfirmed, and ``>=`` cannot skip one; the repeat it fetches is
dropped by the dedupe id ``updated_timestamp|composite_id`` (an alert updated again is a new
record). The cursor keeps the pass in progress, so a restart resumes at the same page::

    {"since": "2026-11-21T10:00:00.000000000Z", "after": "<token>" | None, "newest": "<timestamp>"}
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from logferry.auth.oauth2 import vendor_error_message
from logferry.core.errors import MalformedPage, VendorAPIError
from logferry.core.polling import Cycle, MalformedStreak, parse_time, poll_forever
from logferry.core.source import SourceContext
from logferry.core.types import Record
from logferry.net.http import HttpClient

__all__ = ["ALERTS_PATH", "AlertsLane", "parse_alerts"]

ALERTS_PATH = "/alerts/combined/alerts/v1"

_log = logging.getLogger(__name__)


def parse_alerts(body: bytes) -> tuple[list[Record], list[str], list[tuple[str, bytes]], str | None]:
    """Alerts, their dedupe ids, rejected alerts (reason, raw) and the next page's ``after``;
    ``VendorAPIError`` for a page that cannot be used at all."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPage(f"alerts page is not JSON: {exc}", body) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("resources"), list):
        raise MalformedPage("alerts page has no resources list", body)
    if doc.get("errors"):
        raise VendorAPIError(f"alerts query failed: {vendor_error_message(body)}")
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    for alert in doc["resources"]:
        if not isinstance(alert, dict) or not isinstance(alert.get("updated_timestamp"), str):
            rejects.append(("alerts: alert without updated_timestamp", orjson.dumps(alert)))
            continue
        key = alert.get("composite_id") or alert.get("id")
        if not isinstance(key, str):
            key = hashlib.sha256(orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)).hexdigest()
        records.append(alert)
        ids.append(f"{alert['updated_timestamp']}|{key}")
    meta = doc.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    after = pagination.get("after") if isinstance(pagination, dict) else None
    return records, ids, rejects, after if isinstance(after, str) and after else None


class AlertsLane:
    """A lane of :func:`~logferry.core.lanes.run_lanes` that polls the Alerts API."""

    def __init__(
        self,
        api: HttpClient,
        base_url: str,
        *,
        interval_secs: float,
        initial_lookback_secs: float,
        batch_size: int,
        query: str | None,
    ) -> None:
        self.api = api
        self.url = f"{base_url}{ALERTS_PATH}"
        self.interval_secs = interval_secs
        self.initial_lookback_secs = initial_lookback_secs
        self.batch_size = batch_size
        self.query = query

    def _initial(self) -> dict[str, Any]:
        start = datetime.now(UTC) - timedelta(seconds=self.initial_lookback_secs)
        return {"since": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "after": None, "newest": None}

    async def run(self, ctx: SourceContext) -> None:
        self._cursor = dict(ctx.cursor) if isinstance(ctx.cursor, dict) else self._initial()
        streak = MalformedStreak()

        async def cycle() -> Cycle:
            try:
                await self._pass(ctx)
            except MalformedPage as exc:
                # An `after` token is only valid for the page it came with, so there is no page to
                # step over to: the page is asked for again (health red) and kept once for inspection.
                streak.give_up(dict(self._cursor))
                if streak.count == streak.attempts:
                    await ctx.dead_letter(f"alerts: {exc}", exc.raw)
                raise
            streak.reset()
            return Cycle(max(0.0, time.time() - parse_time(self._cursor["since"]).timestamp()))

        await poll_forever(ctx, cycle, self.interval_secs)

    async def _pass(self, ctx: SourceContext) -> None:
        """Every page updated since the cursor's ``since``, each committed with the next position."""
        cursor = self._cursor
        query = f"updated_timestamp:>='{cursor['since']}'"
        if self.query:
            query += f"+({self.query})"
        while not ctx.stopping.is_set():
            body: dict[str, Any] = {
                "limit": self.batch_size,
                "sort": "updated_timestamp|asc",
                "filter": query,
            }
            if cursor.get("after"):
                body["after"] = cursor["after"]
            try:
                resp = await self.api.request("POST", self.url, json=body)
            except VendorAPIError as exc:
                if exc.status != 400 or not cursor.get("after"):
                    raise
                # How long an `after` token lives is unconfirmed: one saved before a restart may be
                # refused. Read the pass again from `since`; ids drop what was delivered.
                _log.warning("alerts: saved paging token refused (%s); restarting the pass", exc)
                cursor = self._cursor = {**cursor, "after": None}
                continue
            records, ids, rejects, after = parse_alerts(resp.body)
            for reason, raw in rejects:
                await ctx.dead_letter(reason, raw)
            newest = records[-1]["updated_timestamp"] if records else cursor.get("newest")
            if after is not None:
                nxt = {"since": cursor["since"], "after": after, "newest": newest}
            else:
                nxt = {"since": newest or cursor["since"], "after": None, "newest": None}
            await ctx.wait_capacity()
            await ctx.emit(records, nxt, ids)
            cursor = self._cursor = nxt
            if after is None:
                return
