"""Client-side rate limits: a request schedule plus a concurrency cap per credential.

Vendors such as meshStack ask for one request at a time per key; others publish requests
per second or minute. One limiter is shared by every request made with the same key, so
the budget holds however many windows or tasks a source runs.

The schedule is the generic cell rate algorithm (GCRA): each request gets the slot one
interval after the previous one's *scheduled* time, not after the moment it actually went.
A token bucket capped at one token loses whatever a late wake-up overshoots, which cost
~2.5% of the Office 365 budget (bench/o365.py, docs/performance.md); keeping the schedule
makes a late request's successor go sooner, so the long-run rate is the configured one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        rate_per_sec: float | None,
        burst: int = 1,
        max_concurrent: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate_per_sec
        self.burst = max(1, burst)
        self._clock = clock
        self._sleep = sleep
        #: Theoretical arrival time: when the next request is due if none runs ahead of schedule.
        self._due = clock()
        self._lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(max_concurrent) if max_concurrent else None

    async def _take(self) -> None:
        if not self.rate:
            return
        interval = 1.0 / self.rate
        async with self._lock:
            now = self._clock()
            due = max(self._due, now)
            # Up to `burst` requests may run ahead of the schedule.
            wait = due - (self.burst - 1) * interval - now
            if wait > 0:
                await self._sleep(wait)
            self._due = due + interval

    def penalize(self, seconds: float) -> None:
        """Push the schedule back by ``seconds`` after the vendor throttled us anyway."""
        if self.rate:
            self._due = max(self._due, self._clock()) + seconds

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._sem is None:
            await self._take()
            yield
            return
        async with self._sem:
            await self._take()
            yield
