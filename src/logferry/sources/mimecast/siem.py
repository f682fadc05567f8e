"""SIEM batch API lane (``GET /siem/v1/batch/events/cg``): one Cloud Gateway log type.

Facts (mimecast.md §7.1): the first listing names ``type`` and ``dateRangeStartsAt``; later ones
pass ``nextPage`` (the previous ``@nextPage``). A listing's ``value`` holds pre-signed URLs of
gzip NDJSON files on another host, downloaded without credentials; an expired URL answers 403
or 404 (400 from some stores). ``isCaughtUp`` says whether to wait before listing again.

Commit points (the cursor is the vendor's token)::

    {"next": "<nextPage that produced this listing>" | null, "start": "2026-11-21",
     "done": ["/path/of/a/file/already/committed", ...]}

Each downloaded file commits its records together with its path in ``done``; once every file of
the listing is done, ``next`` advances to ``@nextPage`` and ``done`` empties. A crash between
download and commit re-lists with the same token and downloads that one file again (its records
dedupe); no file is ever skipped because ``@nextPage`` moved first. Re-listing also refreshes
expired URLs: a file whose fresh URL has expired too is counted as skipped, never retried forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from yarl import URL

from logferry.core.errors import VendorAPIError
from logferry.core.polling import Cycle, poll_forever
from logferry.core.source import SourceContext
from logferry.core.types import Record
from logferry.observe.events import SourceItemsSkipped
from logferry.observe.metrics import Metrics
from logferry.sources.mimecast.api import MimecastApi
from logferry.sources.mimecast.config import SiemBatchConfig
from logferry.sources.mimecast.files import parse_batch_file

__all__ = ["BATCH_PATH", "EXPIRED_STATUSES", "SiemBatchLane"]

BATCH_PATH = "/siem/v1/batch/events/cg"
#: What a pre-signed store answers for an expired URL (403/404 per §7.1; some stores say 400).
EXPIRED_STATUSES = (400, 403, 404)


class _Expired(Exception):
    """A file URL of the current listing no longer works; list again for fresh URLs."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class SiemBatchLane:
    def __init__(
        self,
        source: str,
        log_type: str,
        cfg: SiemBatchConfig,
        api: MimecastApi,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.log_type = log_type
        self.cfg = cfg
        self.api = api
        self.metrics = metrics
        self._clock = clock
        #: Files whose URL expired once already: a second expiry right after re-listing skips them.
        self._expired_once: set[str] = set()
        self.cursor: dict[str, Any] = {}

    def _initial(self) -> dict[str, Any]:
        start = datetime.fromtimestamp(self._clock(), UTC) - timedelta(days=self.cfg.initial_lookback_days)
        return {"next": None, "start": start.strftime("%Y-%m-%d"), "done": []}

    async def run(self, ctx: SourceContext) -> None:
        saved = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        self.cursor = {**self._initial(), **saved}

        async def cycle() -> Cycle:
            while True:
                try:
                    caught_up = await self._listing(ctx)
                except _Expired:
                    continue  # list again at once: fresh URLs for the files not yet done
                return Cycle(lag_secs=0.0 if caught_up else None, more=not caught_up)

        await poll_forever(ctx, cycle, self.cfg.interval_secs)

    async def _commit(
        self, ctx: SourceContext, records: list[Record], cursor: dict[str, Any], ids: list[str]
    ) -> None:
        await ctx.wait_capacity()
        await ctx.emit(records, cursor, ids)
        self.cursor = cursor  # only once committed: a failed commit changes nothing

    async def _listing(self, ctx: SourceContext) -> bool:
        """List once from the committed cursor and download every file not yet done; returns
        ``isCaughtUp``."""
        cursor = self.cursor
        params = [("type", self.log_type), ("pageSize", str(self.cfg.page_size))]
        if cursor.get("next"):
            params.append(("nextPage", str(cursor["next"])))
        else:
            params.append(("dateRangeStartsAt", str(cursor["start"])))
        resp = await self.api.http.request(
            "GET", self.api.base + BATCH_PATH, params=params, headers={"Accept": "application/json"}
        )
        try:
            doc = resp.json()
            files = doc["value"]
            nxt = doc.get("@nextPage")
            caught_up = doc.get("isCaughtUp") is True
            if not isinstance(files, list) or not all(isinstance(f, dict) for f in files):
                raise TypeError("value is not a list of objects")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Not the body: a listing holds pre-signed URLs, which work as credentials until they expire.
            raise VendorAPIError(f"{self.log_type}: unexpected batch listing ({exc})") from None
        fetched = 0
        for item in files:
            url = item.get("url")
            if not isinstance(url, str) or not url:
                continue
            key = URL(url).path
            if key not in self.cursor["done"]:
                await self._file(ctx, key, url)
                fetched += 1
        self._expired_once.clear()
        if not isinstance(nxt, str) or not nxt or nxt == cursor.get("next"):
            # No new position: keep `done`, so listing the same page again downloads nothing twice,
            # and wait for the interval unless this listing brought files.
            return caught_up or fetched == 0
        await self._commit(ctx, [], {"next": nxt, "start": cursor["start"], "done": []}, [])
        return caught_up

    async def _file(self, ctx: SourceContext, key: str, url: str) -> None:
        done = {**self.cursor, "done": sorted({*self.cursor["done"], key})}
        # Byte for byte: the storage service signed the query exactly as it handed it out.
        resp = await self.api.files.request("GET", URL(url, encoded=True), passthrough=EXPIRED_STATUSES)
        if resp.status in EXPIRED_STATUSES:
            if key not in self._expired_once:
                self._expired_once.add(key)
                raise _Expired(key)
            SourceItemsSkipped(
                self.source, "expired", f"{self.log_type} {key} (HTTP {resp.status} right after re-listing)"
            ).emit(self.metrics)
            await self._commit(ctx, [], done, [])
            return
        records, ids, rejects = parse_batch_file(resp.body, self.log_type)
        for reason, raw in rejects:
            await ctx.dead_letter(f"{reason} ({key})", raw)
        await self._commit(ctx, records, done, ids)
