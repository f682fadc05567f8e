"""Cisco Secure Endpoint events source: passes over ``/v1/events`` newest first, no event skipped.

The API has only an inclusive ``start_date`` and answers newest first with offset paging, so it
cannot be cut into closed ``[start, end)`` windows. Collection is a sequence of *passes*: a pass
reads every page for ``start_date`` and ends where the API says there is no next page.

* **The cursor moves only when a pass completes**, to the newest event date on the pass's first
  page (``newest``), read when the pass began. Every event with that date or later is in the
  next pass again (``start_date`` is inclusive), so an event arriving mid-pass, or sharing the
  newest second, is never skipped; what was already delivered is dropped by id.
* **Records commit page by page** together with the pass in progress (its ``newest`` and the
  next page URL). A crash mid-pass resumes at that page. Events that arrived meanwhile were
  added at the top, which only pushes already-read events to higher offsets: the resumed pass
  reads some twice (dropped by id), never skips one. A very long pass (a backlog of many pages)
  therefore keeps everything it read, and its end still moves the cursor no further than what
  existed at its start.
* **An answer that is not an events page** is asked for again with backoff; one that stays broken
  for :data:`~logferry.core.polling.MALFORMED_ATTEMPTS` attempts is dead-lettered and stepped over,
  and that pass then ends without moving ``start_date``: the next pass reads its events again.
* ``overlap_secs`` starts each pass a little before the cursor for events that show up late with
  an older date (whether the vendor does this is unconfirmed; the overlap is the safe choice).

Cursor::

    {"start_date": "2026-11-21T10:00:00Z",
     "pass": {"newest": 1763719200, "next": "https://…/v1/events?…&offset=500", "event_types": [...]}}

:class:`~logferry.core.polling.PollingSource` commits ``window.end`` when a window completes;
this API needs "the newest date seen at the start of the pass" instead, so a pass is this
source's own cycle, run by the shared :func:`~logferry.core.polling.poll_forever` loop.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from logferry.config.base import BuildContext
from logferry.core.errors import AuthError, MalformedPage, SourceError
from logferry.core.polling import Cycle, MalformedStreak, format_time, parse_time, poll_forever
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.net.http import BasicAuth, HttpClient, RateLimitHeaders
from logferry.sources.secure_endpoint.api import EventsApi, skip_page
from logferry.sources.secure_endpoint.config import SecureEndpointConfig

__all__ = ["SecureEndpointSource"]


class SecureEndpointSource:
    def __init__(self, name: str, cfg: SecureEndpointConfig, ctx: BuildContext) -> None:
        self.name = name
        self.cfg = cfg
        self._stale_after = cfg.stale_after_secs or max(3 * cfg.interval_secs, 900.0)
        limiter = ctx.limiter(
            ("cisco_secure_endpoint", cfg.base_url, cfg.client_id), cfg.requests_per_hour / 3600.0, 1
        )
        http = HttpClient(
            ctx.session(cfg.tls.settings()),
            auth=BasicAuth(cfg.client_id, cfg.api_key.reveal()),
            limiter=limiter,
            # Both spellings: the docs say X-Rate-Limit-*, the servers send x-ratelimit-* (spec §5).
            rate_headers=RateLimitHeaders(),
            timeout_secs=cfg.timeout_secs,
            component=name,
            metrics=ctx.metrics,
        )
        self.api = EventsApi(http, cfg.base_url, cfg.page_size, cfg.event_types)
        #: The cursor of the last committed page.
        self._cursor: dict[str, Any] = {}
        self._malformed = MalformedStreak()

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    async def close(self) -> None:
        return None

    # --- running -------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        self._cursor = self._load(ctx.cursor)

        async def cycle() -> Cycle:
            # A failure mid-pass leaves self._cursor at the last committed page: the retry
            # resumes there instead of reading the pass again from the top.
            await self._pass(ctx, self._cursor)
            return Cycle(self._lag())

        await poll_forever(ctx, cycle, self.cfg.interval_secs)

    def _lag(self) -> float:
        return max(0.0, (datetime.now(UTC) - parse_time(self._cursor["start_date"])).total_seconds())

    async def _pass(self, ctx: SourceContext, cursor: dict[str, Any]) -> None:
        """Read one pass (or the rest of a saved one), committing each page with its cursor."""
        start = parse_time(cursor["start_date"])
        saved = cursor.get("pass")
        if isinstance(saved, dict) and self._resumable(saved):
            url, newest, first = saved["next"], saved.get("newest"), False
            stepped_over = saved.get("stepped_over") is True
        else:
            url, newest, first = (
                self.api.first_url(start - timedelta(seconds=self.cfg.overlap_secs)),
                None,
                True,
            )
            stepped_over = False
        while True:
            page = await self.api.page(url)
            nxt = page.next_url
            if not page.usable:
                # Not an events page at all (an HTML error page with status 200, a truncated body):
                # asked for again with backoff, so a passing glitch costs nothing; one that stays
                # broken is dead-lettered and stepped over instead of stalling the source. The pass
                # then ends without moving start_date, so the next pass reads those events again.
                (reason, raw), *_ = page.rejects
                if not self._malformed.give_up(url):
                    raise MalformedPage(reason, raw)
                stepped_over = True
                reason = f"{reason}; stepped over after {self._malformed.attempts} attempts"
                page = replace(page, rejects=[(reason, raw)])
                nxt = skip_page(url, self.cfg.page_size)
            self._malformed.reset()
            for reason, raw in page.rejects:
                await ctx.dead_letter(reason, raw)
            if first and page.usable:
                newest, first = page.newest, False
            following = self._after(start, None if stepped_over else newest, nxt, stepped_over)
            await ctx.wait_capacity()
            await ctx.emit(page.records, following, page.ids)
            self._cursor = following
            if nxt is None or ctx.stopping.is_set():
                return
            # A long pass is progress, not silence: health stays green while lag shows how far behind.
            ctx.poll_succeeded(self._lag())
            url = nxt

    def _after(
        self, start: datetime, newest: int | None, nxt: str | None, stepped_over: bool
    ) -> dict[str, Any]:
        if nxt is not None:
            in_pass = {"newest": newest, "next": nxt, "event_types": self.cfg.event_types}
            if stepped_over:
                in_pass["stepped_over"] = True
            return {"start_date": format_time(start), "pass": in_pass}
        if newest is not None:
            # Never backwards: with the overlap, the newest event can predate the cursor.
            start = max(start, datetime.fromtimestamp(newest, UTC))
        return {"start_date": format_time(start), "pass": None}

    def _resumable(self, saved: dict[str, Any]) -> bool:
        """A saved pass is resumed only if it was for the same filters and its link is on the API."""
        return (
            isinstance(saved.get("next"), str)
            and saved.get("event_types") == self.cfg.event_types
            and self.api.can_follow(saved["next"])
        )

    def _load(self, saved: object) -> dict[str, Any]:
        if isinstance(saved, dict) and isinstance(saved.get("start_date"), str):
            return dict(saved)
        start = datetime.now(UTC) - timedelta(seconds=self.cfg.initial_lookback_secs)
        return {"start_date": format_time(start.replace(microsecond=0)), "pass": None}

    # --- check ---------------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        where = self.cfg.base_url
        try:
            await self.api.http.request("GET", f"{where}/v1/version")
        except AuthError as exc:
            return CheckResult(
                False,
                f"credentials refused by {where} ({exc}); check client_id and api_key, and that region "
                "(or api_url) is the console the API credential was created in",
            )
        except SourceError as exc:
            return CheckResult(False, f"cannot reach {where}: {exc}")
        try:
            page = await self.api.page(self.api.first_url(datetime.now(UTC) - timedelta(minutes=1)))
        except AuthError as exc:
            return CheckResult(False, f"event access refused ({exc}); the API credential needs read scope")
        except SourceError as exc:
            return CheckResult(False, f"event request failed: {exc}")
        if not page.usable:
            return CheckResult(False, f"unexpected response from {where}/v1/events: {page.rejects[0][0]}")
        return CheckResult(True, f"credentials accepted by {where}; event query ok")
