"""Bearer tokens cached to expiry, refreshed early, one refresh in flight at a time.

Subclasses implement ``fetch()``; everything about caching is here once. Concurrent callers
during a refresh wait on one lock and re-check the cache inside it (azure-core's bearer
policy), so a token expiry under load causes one token request, not one per task.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

__all__ = ["CachedTokenProvider", "Token"]

Token = tuple[str, float]  # (access token, lifetime in seconds)

#: Refresh this long before expiry, capped at a tenth of short lifetimes.
REFRESH_MARGIN_SECS = 300.0


class CachedTokenProvider(ABC):
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._token: str | None = None
        self._refresh_at = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    @abstractmethod
    async def fetch(self) -> Token:
        """Obtain a new token from the identity provider; raise ``AuthError`` when refused."""

    async def token(self) -> str:
        if self._token is not None and self._clock() < self._refresh_at:
            return self._token
        async with self._lock:
            if self._token is not None and self._clock() < self._refresh_at:
                return self._token
            token, lifetime = await self.fetch()
            self.fetches += 1
            margin = min(REFRESH_MARGIN_SECS, lifetime / 10)
            self._token = token
            self._refresh_at = self._clock() + max(0.0, lifetime - margin)
            return token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None
