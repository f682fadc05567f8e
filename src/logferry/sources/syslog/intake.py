"""What the listeners received and the flush loop has not committed yet, and the backpressure on them.

Listeners only frame and append: one *chunk* per read (a sender, when it arrived, its frames), so the
receive path costs a list append per read, not per message. The source's flush loop takes everything
at once, parses it in one tight loop and commits it in one transaction.

Backpressure has a bound of ``high_water`` messages (or bytes) held in memory. Over it, TCP and TLS
connections stop reading (``pause_reading``): the kernel's receive window fills and senders block,
which is how syslog over TCP pushes back. UDP has no way to push back, so datagrams over the bound are
dropped and counted (``queue_full``), never silently. Connections resume as soon as the flush loop has
taken the pending chunks, so the next batch fills while the previous one commits.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from logferry.formats.framing import Frame

__all__ = ["Chunk", "Intake", "Pausable"]

#: (sender address, arrival time as Unix seconds, frames of one read).
Chunk = tuple[str, float, list[Frame]]


class Pausable(Protocol):
    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class Intake:
    def __init__(self, *, batch: int, high_water: int, high_bytes: int) -> None:
        self.batch = batch
        self.high_water = high_water
        self.high_bytes = high_bytes
        self.pending = 0
        #: Bytes behind ``pending``: long messages reach a memory bound before the message count does.
        self.pending_bytes = 0
        self._chunks: list[Chunk] = []
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._paused: set[Pausable] = set()

    @property
    def over(self) -> bool:
        return self.pending >= self.high_water or self.pending_bytes >= self.high_bytes

    def add(self, sender: str, frames: list[Frame], nbytes: int) -> None:
        self._chunks.append((sender, time.time(), frames))
        self.pending += len(frames)
        self.pending_bytes += nbytes
        self._arrived.set()
        if self.pending >= self.batch:
            self._full.set()

    def pause(self, reader: Pausable) -> None:
        """Stop ``reader`` until the flush loop has taken what is pending."""
        reader.pause_reading()
        self._paused.add(reader)

    def forget(self, reader: Pausable) -> None:
        self._paused.discard(reader)

    async def next_batch(self, flush_secs: float, stopping: asyncio.Event) -> list[Chunk]:
        """Wait for a frame, then up to ``flush_secs`` for a full batch (or the stop); take all pending."""
        if not self.pending:
            stop = asyncio.ensure_future(stopping.wait())
            arrived = asyncio.ensure_future(self._arrived.wait())
            try:
                await asyncio.wait((stop, arrived), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                arrived.cancel()
        if self.pending < self.batch and not stopping.is_set():
            stop = asyncio.ensure_future(stopping.wait())
            full = asyncio.ensure_future(self._full.wait())
            try:
                await asyncio.wait((stop, full), timeout=flush_secs, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                full.cancel()
        return self.take()

    def take(self) -> list[Chunk]:
        chunks, self._chunks = self._chunks, []
        self.pending = self.pending_bytes = 0
        self._arrived.clear()
        self._full.clear()
        paused, self._paused = self._paused, set()
        for reader in paused:
            reader.resume_reading()
        return chunks
