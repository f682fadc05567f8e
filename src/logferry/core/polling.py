"""Time-windowed polling shared by every pull source.

A connector supplies ``fetch(window, page_token)``: an async iterator of pages for one
``[start, end)`` window. This base owns the rest: the initial lookback, cutting the time
since the cursor into windows of at most ``window_secs``, holding back ``lag_secs`` for
late-arriving events, catching up without sleeping, backoff after failures, backpressure
and health reporting.

The cursor commits with each page and carries the unfinished work — the window in progress
and the next page token — so a restart resumes that window instead of skipping it::

    {"start": "2026-11-21T10:00:00Z", "end": "2026-11-21T10:05:00Z", "page": 3}
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from logferry.core.errors import RateLimited, SourceError
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.core.types import JSONValue, Record
from logferry.net.retry import Backoff

__all__ = [
    "Page",
    "PollingSource",
    "Window",
    "WindowPlanner",
    "WindowSettings",
    "format_time",
    "parse_time",
]


def format_time(t: datetime) -> str:
    """ISO 8601 UTC with a ``Z``; whole seconds unless the value has a fraction."""
    t = t.astimezone(UTC)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Page:
    """One vendor page: its records, their stable ids, and the token of the next page."""

    records: Sequence[Record]
    ids: Sequence[str] | None
    next_token: JSONValue | None
    rejects: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class WindowSettings:
    interval_secs: float
    window_secs: float
    lookback_secs: float
    lag_secs: float
    retention_secs: float | None = None
    min_window_secs: float = 1.0


class WindowPlanner:
    """Cuts the time since a cursor into query windows: the initial lookback, the retention
    clamp, the lag held back for late events, at most ``window_secs`` per query.

    Cursors are plain dicts (``start``, ``end``, ``page``): ``end`` set means a window is in
    progress and is resumed as is; unset means the next window starts at ``start``.
    """

    def __init__(self, settings: WindowSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def initial(self) -> dict[str, Any]:
        start = self.now() - timedelta(seconds=self.settings.lookback_secs)
        return {"start": format_time(self.clamp(start).replace(microsecond=0)), "end": None, "page": None}

    def clamp(self, start: datetime) -> datetime:
        """Never ask for data older than the vendor keeps; a gap is reported, not retried forever."""
        if self.settings.retention_secs is None:
            return start
        oldest = self.now() - timedelta(seconds=self.settings.retention_secs)
        return max(start, oldest)

    def next_window(self, cursor: dict[str, Any]) -> Window | None:
        if cursor.get("end"):
            return Window(parse_time(cursor["start"]), parse_time(cursor["end"]))
        start = self.clamp(parse_time(cursor["start"]))
        limit = self.now() - timedelta(seconds=self.settings.lag_secs)
        end = min(start + timedelta(seconds=self.settings.window_secs), limit.replace(microsecond=0))
        if (end - start).total_seconds() < self.settings.min_window_secs:
            return None
        return Window(start, end)

    def lag(self, cursor: dict[str, Any]) -> float:
        """How far behind now this cursor is, in seconds."""
        return max(0.0, (self.now() - parse_time(cursor["start"])).total_seconds())


class PollingSource(ABC):
    def __init__(self, name: str, settings: WindowSettings, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.settings = settings
        self.planner = WindowPlanner(settings, clock)

    @property
    def stale_after_secs(self) -> float:
        return 3 * self.settings.interval_secs

    @abstractmethod
    def fetch(self, window: Window, page_token: JSONValue | None) -> AsyncIterator[Page]:
        """Yield the pages of ``window`` starting at ``page_token`` (``None`` = first page)."""

    @abstractmethod
    async def check(self) -> CheckResult: ...

    async def close(self) -> None:
        return None

    def now(self) -> datetime:
        return self.planner.now()

    def next_window(self, cursor: dict[str, Any]) -> Window | None:
        return self.planner.next_window(cursor)

    async def run(self, ctx: SourceContext) -> None:
        cursor: dict[str, Any] = dict(ctx.cursor) if isinstance(ctx.cursor, dict) else self.planner.initial()
        backoff = Backoff(initial_secs=2.0, max_secs=min(300.0, self.settings.interval_secs * 2))
        while not ctx.stopping.is_set():
            window = self.next_window(cursor)
            if window is not None:
                try:
                    cursor = await self._drain(ctx, window, cursor)
                except SourceError as exc:
                    ctx.poll_failed(str(exc), type(exc).__name__)
                    after = exc.retry_after if isinstance(exc, RateLimited) else None
                    if not await ctx.sleep(backoff.next_delay(after)):
                        return
                    continue
                backoff.reset()
            ctx.poll_succeeded(self.planner.lag(cursor))
            # Behind: the next window follows at once. Caught up: wait for the next interval.
            if self.next_window(cursor) is None and not await ctx.sleep(self.settings.interval_secs):
                return

    async def _drain(self, ctx: SourceContext, window: Window, cursor: dict[str, Any]) -> dict[str, Any]:
        token = cursor.get("page") if cursor.get("end") else None
        done = {"start": format_time(window.end), "end": None, "page": None}
        pages = 0
        async for page in self.fetch(window, token):
            pages += 1
            for reason, raw in page.rejects:
                await ctx.dead_letter(reason, raw)
            await ctx.wait_capacity()
            if page.next_token is None:
                nxt = done
            else:
                nxt = {
                    "start": format_time(window.start),
                    "end": format_time(window.end),
                    "page": page.next_token,
                }
            await ctx.emit(page.records, nxt, page.ids)
            cursor = nxt
            if ctx.stopping.is_set() and page.next_token is not None:
                break
        if pages == 0:
            await ctx.emit((), done)
            cursor = done
        return cursor
