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
        #: No request before this time (a vendor said when its quota refills).
        self._held = clock()
        self._lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(max_concurrent) if max_concurrent else None

    async def _take(self) -> None:
        if not self.rate and self._held <= self._clock():
            return
        async with self._lock:
            now = self._clock()
            if self._held > now:
                await self._sleep(self._held - now)
                now = self._clock()
            if not self.rate:
                return
            interval = 1.0 / self.rate
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

    def hold(self, seconds: float) -> None:
        """No request before ``seconds`` from now: the vendor said when its quota refills.

        Unlike :meth:`penalize`, holds do not add up: several requests in flight that all
        come back with the same "quota exhausted, resets in 10 s" wait 10 s, not 10 s each.
        """
        self._held = max(self._held, self._clock() + seconds)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._sem is None:
            await self._take()
            yield
            return
        async with self._sem:
            await self._take()
            yield
