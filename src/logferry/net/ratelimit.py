"""Client-side rate limits: a token bucket plus a concurrency cap per credential.

Vendors such as meshStack ask for one request at a time per key; others publish requests
per second or minute. One limiter is shared by every request made with the same key, so
the budget holds however many windows or tasks a source runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self,
        rate_per_sec: float | None,
        burst: int = 1,
        max_concurrent: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate_per_sec
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._clock = clock
        self._last = clock()
        self._lock = asyncio.Lock()
        self._sem = asyncio.Semaphore(max_concurrent) if max_concurrent else None

    async def _take(self) -> None:
        if not self.rate:
            return
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
                self._last = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
                await asyncio.sleep(wait)

    def penalize(self, seconds: float) -> None:
        """Spend the budget for ``seconds`` after the vendor throttled us anyway."""
        if self.rate:
            self._tokens = min(self._tokens, 0.0) - seconds * self.rate

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._sem is None:
            await self._take()
            yield
            return
        async with self._sem:
            await self._take()
            yield
