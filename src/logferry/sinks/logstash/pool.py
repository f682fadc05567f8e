"""Several Logstash hosts: which one to try next, and how long a failed one sits out.

Failover (``loadbalance: false``) stays on one host until it fails, then moves to the next in
the list. Load balancing takes turns, one request per host. Either way a host that failed is
tried after the healthy ones until its backoff (1 s doubling to 60 s, as Filebeat's
``backoff.init``/``backoff.max``) has passed, and a request still tries every host before
giving up, so an outage of all hosts but one never holds delivery back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from logferry.sinks.logstash.client import BeatsConnection

__all__ = ["BACKOFF_INIT_SECS", "BACKOFF_MAX_SECS", "Host", "HostPool"]

BACKOFF_INIT_SECS = 1.0
BACKOFF_MAX_SECS = 60.0


@dataclass(eq=False)
class Host:
    host: str
    port: int
    conn: BeatsConnection | None = None
    failures: int = 0
    down_until: float = 0.0

    @property
    def label(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def abort(self) -> None:
        """Drop the connection after a failure (see :meth:`BeatsConnection.abort`)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.abort()

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.close()


class HostPool:
    def __init__(
        self,
        addresses: list[tuple[str, int]],
        *,
        loadbalance: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hosts = [Host(h, p) for h, p in addresses]
        self.loadbalance = loadbalance
        self._clock = clock
        self._next = 0

    def order(self) -> list[Host]:
        """The hosts to try for one request, best first."""
        n = len(self.hosts)
        start = self._next
        if self.loadbalance:
            self._next = (start + 1) % n
        rotated = self.hosts[start:] + self.hosts[:start]
        now = self._clock()
        resting = sorted((h for h in rotated if h.down_until > now), key=lambda h: h.down_until)
        return [h for h in rotated if h.down_until <= now] + resting

    def succeeded(self, host: Host) -> None:
        host.failures = 0
        host.down_until = 0.0
        if not self.loadbalance:
            self._next = self.hosts.index(host)

    def failed(self, host: Host) -> None:
        host.failures += 1
        backoff = min(BACKOFF_MAX_SECS, BACKOFF_INIT_SECS * 2 ** min(host.failures - 1, 16))
        host.down_until = self._clock() + backoff
        i = self.hosts.index(host)
        if not self.loadbalance and self._next == i:
            self._next = (i + 1) % len(self.hosts)

    async def close(self) -> None:
        await asyncio.gather(*(h.close() for h in self.hosts))
