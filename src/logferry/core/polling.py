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
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from logferry.core.errors import MalformedPage, RateLimited, SourceError
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.core.types import JSONValue, Record
from logferry.net.retry import Backoff

__all__ = [
    "MALFORMED_ATTEMPTS",
    "Cycle",
    "MalformedStreak",
    "Page",
    "PollingSource",
    "Window",
    "WindowPlanner",
    "WindowSettings",
    "format_time",
    "parse_time",
    "poll_forever",
    "report_failure",
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
            start = parse_time(cursor["start"])
            if self.clamp(start) == start:
                return Window(start, parse_time(cursor["end"]))
            # A window left in progress for longer than the vendor keeps data (a long outage):
            # resuming it would be refused for ever; plan afresh from the oldest data still kept.
        start = self.clamp(parse_time(cursor["start"]))
        limit = self.now() - timedelta(seconds=self.settings.lag_secs)
        end = min(start + timedelta(seconds=self.settings.window_secs), limit.replace(microsecond=0))
        if (end - start).total_seconds() < self.settings.min_window_secs:
            return None
        return Window(start, end)

    def lag(self, cursor: dict[str, Any]) -> float:
        """How far behind now this cursor is, in seconds."""
        return max(0.0, (self.now() - parse_time(cursor["start"])).total_seconds())


#: Attempts at one position before a malformed answer is dead-lettered and stepped over. With the
#: poll backoff (2, 4, 8, 16 s, jittered) a passing proxy error page has half a minute to clear.
MALFORMED_ATTEMPTS = 5


class MalformedStreak:
    """Counts :class:`MalformedPage` answers in a row at one position of a cursor."""

    def __init__(self, attempts: int = MALFORMED_ATTEMPTS) -> None:
        self.attempts = attempts
        self._at: object = None
        #: Malformed answers in a row at the current position.
        self.count = 0

    def give_up(self, position: object) -> bool:
        """Record one more malformed answer at ``position``; whether to step over it now."""
        if position != self._at:
            self._at, self.count = position, 0
        self.count += 1
        return self.count >= self.attempts

    def reset(self) -> None:
        self._at, self.count = None, 0


@dataclass(frozen=True)
class Cycle:
    """What one poll cycle achieved: how far behind now the cursor is, and whether more work is
    already waiting (a backlog: the next cycle follows at once instead of after the interval)."""

    lag_secs: float | None = None
    more: bool = False


async def report_failure(
    ctx: SourceContext, exc: SourceError, backoff: Backoff, reason: str | None = None
) -> bool:
    """Report ``exc`` (health turns red with ``reason``, by default the error itself) and wait the
    next backoff step, never less than the vendor's ``Retry-After``. ``False`` when stopping."""
    ctx.poll_failed(str(exc) if reason is None else reason, type(exc).__name__)
    after = exc.retry_after if isinstance(exc, RateLimited) else None
    return await ctx.sleep(backoff.next_delay(after))


async def poll_forever(
    ctx: SourceContext,
    cycle: Callable[[], Awaitable[Cycle]],
    interval_secs: float,
    *,
    initial_backoff_secs: float = 2.0,
) -> None:
    """Run ``cycle`` until the pipeline stops: the loop every pull source (or lane) shares.

    A :class:`SourceError` is reported (health turns red with its reason) and the cycle retried
    after a jittered backoff that honours the vendor's ``Retry-After``; a success is reported
    with the cycle's lag; a caught-up source sleeps ``interval_secs``. The cycle keeps its own
    position, so a retry resumes where the last commit left off.
    """
    backoff = Backoff(initial_secs=initial_backoff_secs, max_secs=min(300.0, interval_secs * 2))
    while not ctx.stopping.is_set():
        try:
            done = await cycle()
        except SourceError as exc:
            if not await report_failure(ctx, exc, backoff):
                return
            continue
        backoff.reset()
        ctx.poll_succeeded(done.lag_secs)
        if not done.more and not await ctx.sleep(interval_secs):
            return


class PollingSource(ABC):
    def __init__(self, name: str, settings: WindowSettings, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.settings = settings
        self.planner = WindowPlanner(settings, clock)
        #: The cursor of the last committed page of the window being drained.
        self._committed: dict[str, Any] = {}

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
        streak = MalformedStreak()

        async def cycle() -> Cycle:
            nonlocal cursor
            window = self.next_window(cursor)
            if window is not None:
                try:
                    cursor = await self._drain(ctx, window, cursor)
                except SourceError as exc:
                    # The retry resumes after the last committed page, not from the window's start.
                    cursor = self._committed
                    position = (cursor.get("start"), cursor.get("end"), cursor.get("page"))
                    if not isinstance(exc, MalformedPage) or not streak.give_up(position):
                        raise
                    reason = (
                        f"{exc}; after {streak.attempts} attempts the rest of the window "
                        f"{format_time(window.start)}..{format_time(window.end)} is skipped"
                    )
                    await ctx.dead_letter(reason, exc.raw)
                    cursor = {"start": format_time(window.end), "end": None, "page": None}
                    await ctx.emit((), cursor)
                streak.reset()
            # Behind: the next window follows at once. Caught up: wait for the next interval.
            return Cycle(self.planner.lag(cursor), more=self.next_window(cursor) is not None)

        await poll_forever(ctx, cycle, self.settings.interval_secs)

    async def _drain(self, ctx: SourceContext, window: Window, cursor: dict[str, Any]) -> dict[str, Any]:
        token = cursor.get("page") if cursor.get("end") else None
        self._committed = cursor
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
            cursor = self._committed = nxt
            if page.next_token is not None:
                if ctx.stopping.is_set():
                    break
                # A long window at a slow vendor pace is progress, not silence.
                ctx.poll_succeeded(self.planner.lag(cursor))
        if pages == 0:
            await ctx.emit((), done)
            cursor = done
        return cursor
