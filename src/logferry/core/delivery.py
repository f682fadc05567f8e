"""One delivery loop per sink: drain the outbox, act on each ``Resolution``, then ack.

The loop reads committed outbox entries in order, packs their lines into requests under
the sink's limits, and deletes entries only after the destination confirmed them (or the
lines were dead-lettered with the destination's reason). Retries never give up — the
outbox holds the data and other sinks are not affected — and wait with full jitter, never
less than the destination's ``Retry-After`` (itself capped at ``max_backoff_secs``). A split
halves a request (413, or a 400 that one bad record may have caused) until the bad record
stands alone and is dead-lettered; a destination that names the bad record (``reject_one``)
has the lines before it counted as delivered and only those after it sent again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from logferry.core.batcher import pack, request_size
from logferry.core.sink import Action, Resolution, Sink
from logferry.net.retry import Backoff
from logferry.observe.events import (
    EventsDeadLettered,
    SinkEventsDelivered,
    SinkRequestSent,
    SinkRetryScheduled,
)
from logferry.observe.metrics import Metrics, status_class
from logferry.observe.redact import redact
from logferry.state.store import StateStore

__all__ = ["DeliveryLoop", "SinkHealth"]

READ_ENTRIES = 256
#: Entries are whole source pages; reading by bytes bounds memory however large the backlog.
READ_MAX_BYTES = 16 * 1024 * 1024
IDLE_POLL_SECS = 1.0
#: A sink turns unhealthy after failing this long without one success.
UNHEALTHY_AFTER_SECS = 30.0

_log = logging.getLogger("logferry.delivery")


@dataclass
class SinkHealth:
    last_success: float | None = None
    failing_since: float | None = None
    last_error: str | None = None
    delivered: int = 0
    dead_lettered: int = 0
    requests: int = 0
    retries: int = 0

    def healthy(self, now: float) -> tuple[bool, str | None]:
        if self.failing_since is not None and now - self.failing_since >= UNHEALTHY_AFTER_SECS:
            return False, f"delivery failing for {now - self.failing_since:.0f}s: {self.last_error}"
        return True, None


@dataclass
class DeliveryLoop:
    name: str
    sink: Sink
    store: StateStore
    metrics: Metrics
    max_backoff_secs: float
    on_freed: Callable[[str, int, int], Awaitable[None]]
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    health: SinkHealth = field(default_factory=SinkHealth)

    async def run(self) -> None:
        backoff = Backoff(initial_secs=0.5, max_secs=self.max_backoff_secs)
        while not self.stopping.is_set():
            entries = await self.store.outbox_read(self.name, READ_ENTRIES, READ_MAX_BYTES)
            if not entries:
                self.wake.clear()
                await self._wait(IDLE_POLL_SECS, self.wake)
                continue
            lines: list[bytes] = []
            ends: list[tuple[int, int, int]] = []  # (entry id, end index in `lines`, entry offset)
            for e in entries:
                lines.extend(e.lines)
                ends.append((e.id, len(lines), e.offset))
            for i, j in pack(self.sink.limits, lines):
                rejected = await self._deliver(lines[i:j], backoff)
                if rejected is None:  # stopping mid-request: leave the rest in the outbox
                    return
                await self._ack(ends, j, rejected, j - i)

    async def _ack(
        self, ends: list[tuple[int, int, int]], upto: int, rejected: list[tuple[str, bytes]], events: int
    ) -> None:
        done_through = 0
        partial: tuple[int, int] | None = None
        start = 0
        for entry_id, end, offset in ends:
            if end <= upto:
                done_through = entry_id
            elif start < upto:
                partial = (entry_id, offset + upto - start)
                break
            else:
                break
            start = end
        freed = await self.store.outbox_ack(self.name, done_through, partial, rejected)
        await self.on_freed(self.name, freed, events)

    async def _deliver(self, lines: list[bytes], backoff: Backoff) -> list[tuple[str, bytes]] | None:
        """Send ``lines`` until every one is delivered or dead-lettered; ``None`` if stopped."""
        todo: deque[list[bytes]] = deque([lines])
        rejected: list[tuple[str, bytes]] = []
        limits = self.sink.limits
        while todo:
            chunk = todo.popleft()
            size = request_size(limits, chunk)
            if len(chunk) == 1 and size > limits.max_bytes:
                rejected.append(
                    (f"record of {size} bytes exceeds the sink's max_bytes {limits.max_bytes}", chunk[0])
                )
                continue
            res = await self._send(chunk)
            self.health.requests += 1
            SinkRequestSent(self.name, res.status, size).emit(self.metrics)
            if res.action is Action.DELIVERED:
                self._delivered(len(chunk), backoff)
            elif len(chunk) > 1 and (
                res.action is Action.SPLIT
                or (res.action is Action.REJECT and res.index is not None and not 0 <= res.index < len(chunk))
            ):
                # An index outside the request is the destination (or the sink) confused: halving still
                # isolates the bad record, where rejecting the whole request would dead-letter good ones.
                _log.debug("sink %s: %d lines split in two: %s", self.name, len(chunk), res.reason)
                mid = len(chunk) // 2
                todo.appendleft(chunk[mid:])
                todo.appendleft(chunk[:mid])
            elif res.action is Action.REJECT and res.index is not None and 0 <= res.index < len(chunk):
                if res.index:
                    self._delivered(res.index, backoff)
                rejected.append((res.reason, chunk[res.index]))
                if res.index + 1 < len(chunk):
                    todo.appendleft(chunk[res.index + 1 :])
            elif res.action in (Action.SPLIT, Action.REJECT):
                rejected.extend((res.reason, line) for line in chunk)
            else:
                self.health.retries += 1
                self.health.last_error = res.reason
                if self.health.failing_since is None:
                    self.health.failing_since = time.time()
                # A Retry-After of hours (or "inf") would stall the sink beyond what the user allowed.
                after = None if res.after is None else min(res.after, self.max_backoff_secs)
                delay = backoff.next_delay(after)
                SinkRetryScheduled(
                    self.name, status_class(res.status), round(delay, 2), backoff.attempt, res.reason
                ).emit(self.metrics)
                todo.appendleft(chunk)
                if not await self._wait(delay):
                    return None
        if rejected:
            self.health.dead_lettered += len(rejected)
            EventsDeadLettered(self.name, "deliver", len(rejected), rejected[0][0]).emit(self.metrics)
        return rejected

    async def _send(self, chunk: list[bytes]) -> Resolution:
        try:
            return await self.sink.send(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A sink must answer with a Resolution; one that raises has a bug or met an input it did not
            # expect. Ending this task would stop the sink for good while the outbox fills: retry instead,
            # so a fix (or the destination changing back) resumes delivery.
            _log.exception("sink %s: send raised instead of answering; retrying", self.name)
            return Resolution.retry(redact(f"sink error: {type(exc).__name__}: {exc}"))

    def _delivered(self, n: int, backoff: Backoff) -> None:
        backoff.reset()
        self.health.last_success = time.time()
        self.health.failing_since = None
        self.health.delivered += n
        SinkEventsDelivered(self.name, n).emit(self.metrics)

    async def _wait(self, seconds: float, event: asyncio.Event | None = None) -> bool:
        """Sleep ``seconds`` (or until ``event``); ``False`` when the loop is stopping."""
        waiters = [asyncio.ensure_future(self.stopping.wait())]
        if event is not None:
            waiters.append(asyncio.ensure_future(event.wait()))
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        return not self.stopping.is_set()
