"""Backoff with full jitter, shared by every retry loop in logferry.

Full jitter (a uniform draw between 0 and the exponential cap) spreads retries of many
clients that failed together; a server's ``Retry-After`` is a floor, never shortened.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from time import time

__all__ = ["Backoff", "parse_retry_after"]


@dataclass
class Backoff:
    initial_secs: float = 1.0
    max_secs: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self, retry_after: float | None = None) -> float:
        # The exponent stops growing once the cap is reached: 2**1024 would overflow a float after
        # a long outage (about two days of retries at a 300 s cap).
        cap = min(self.max_secs, self.initial_secs * (2 ** min(self.attempt, 64)))
        self.attempt += 1
        delay = self.rng.uniform(0, cap)
        if retry_after is not None:
            # Retry-After is the server's floor; jitter on top keeps clients from re-syncing.
            delay = retry_after + self.rng.uniform(0, min(1.0, cap))
        return delay

    def reset(self) -> None:
        self.attempt = 0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None
