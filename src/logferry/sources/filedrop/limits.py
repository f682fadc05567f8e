"""Upload limits of the SSH drop: a byte rate per connection and a quota on the whole spool.

Both are checked as bytes arrive, so an upload over a limit fails at once with an SFTP error (the
client sees it and the partial file is discarded) instead of filling the disk first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["ByteRate", "SpoolQuota"]


class ByteRate:
    """``bytes_per_sec`` on average, with bursts of up to ``burst_secs`` worth of bytes.

    The schedule is the generic cell rate algorithm, as :mod:`logferry.net.ratelimit` uses for
    requests, weighted by the size of each write: every write moves the theoretical arrival time on
    by ``n / rate`` and waits while that time runs more than a burst ahead of now. Waiting in the
    write handler stops the connection reading, so SSH flow control slows the sender down.
    """

    def __init__(
        self, bytes_per_sec: float, burst_secs: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = bytes_per_sec
        self.burst_secs = burst_secs
        self._clock = clock
        self._tat = clock()

    def delay(self, n: int) -> float:
        """Book ``n`` bytes; how long to wait before writing them."""
        now = self._clock()
        self._tat = max(self._tat, now) + n / self.rate
        return max(0.0, self._tat - self.burst_secs - now)

    async def take(self, n: int) -> None:
        wait = self.delay(n)
        if wait > 0:
            await asyncio.sleep(wait)


class SpoolQuota:
    """Bytes held in the spool (uploads in progress, files waiting, files being read).

    ``used`` is re-measured from the disk on every scan (see :meth:`measure`) and grows with every
    write in between, so it never drifts far from the truth whatever happened to files meanwhile.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.used = 0

    def reserve(self, n: int) -> bool:
        """Take ``n`` more bytes if they fit."""
        if self.used + n > self.max_bytes:
            return False
        self.used += n
        return True

    def release(self, n: int) -> None:
        self.used = max(0, self.used - n)

    def measure(self, used: int) -> None:
        self.used = used
