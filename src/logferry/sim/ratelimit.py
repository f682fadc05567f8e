"""Server-side rate limits the simulators enforce the way vendors do: reject, never queue.

A simulator must really answer 429 when a client overdrives it, so that the client's limiter and
retry logic are exercised against the same numbers the vendor publishes.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["KeyedLimiter", "Rejected", "SlidingWindow", "retry_after_secs"]


class Rejected(Exception):
    """The request is over a limit; ``retry_after`` is the advised wait in whole seconds."""

    def __init__(self, reason: str, retry_after: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class SlidingWindow:
    """At most ``limit`` admitted events in any ``window_secs``; rejected attempts do not count."""

    def __init__(self, limit: int, window_secs: float) -> None:
        self.limit = limit
        self.window_secs = window_secs
        self._times: deque[float] = deque()

    def admit(self, now: float) -> float | None:
        """Record an event at ``now`` and return None, or return seconds until one would be admitted."""
        times = self._times
        horizon = now - self.window_secs
        while times and times[0] <= horizon:
            times.popleft()
        if len(times) >= self.limit:
            return times[0] - horizon
        times.append(now)
        return None


class KeyedLimiter:
    """Per-credential limits: concurrent requests and requests per second (0 disables either)."""

    def __init__(self, max_concurrent: int, max_per_second: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_per_second = max_per_second
        self._in_flight: dict[str, int] = {}
        self._windows: dict[str, SlidingWindow] = {}

    def acquire(self, key: str, now: float) -> None:
        """Take one request slot for ``key`` at monotonic time ``now``, or raise ``Rejected``.

        Every successful ``acquire`` must be paired with a ``release`` once the response is done.
        """
        in_flight = self._in_flight.get(key, 0)
        if self.max_concurrent and in_flight >= self.max_concurrent:
            raise Rejected(f"more than {self.max_concurrent} concurrent request(s) for this key", 1)
        if self.max_per_second:
            window = self._windows.setdefault(key, SlidingWindow(self.max_per_second, 1.0))
            if window.admit(now) is not None:
                raise Rejected(f"more than {self.max_per_second} requests per second for this key", 1)
        self._in_flight[key] = in_flight + 1

    def release(self, key: str) -> None:
        self._in_flight[key] -= 1


def retry_after_secs(wait: float) -> int:
    """A Retry-After value (whole seconds, at least 1) covering ``wait``."""
    return max(1, math.ceil(wait))
