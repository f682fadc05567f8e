"""What a source implements, and the context the pipeline hands it.

A source pulls or listens and calls ``ctx.emit(records, cursor, ids)``. The pipeline maps,
de-duplicates and commits the records together with the cursor in one state-store
transaction, so a cursor is never ahead of the data it covers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from logferry.core.sink import CheckResult
from logferry.core.types import JSONValue, Record

__all__ = ["EmitResult", "Source", "SourceContext"]


@dataclass(frozen=True)
class EmitResult:
    accepted: int
    duplicates: int


class SourceContext(Protocol):
    name: str
    logger: logging.Logger
    stopping: asyncio.Event

    @property
    def cursor(self) -> JSONValue | None:
        """The cursor of the last committed batch, or ``None`` on first run or after a reset."""
        ...

    async def emit(
        self, records: Sequence[Record], cursor: JSONValue, ids: Sequence[str] | None = None
    ) -> EmitResult:
        """Commit records and the cursor that follows them; ``ids`` (one per record) dedupe.

        Give ids that ascend with time (e.g. ``f"{created_at}|{vendor_id}"``): they append to
        the right edge of the dedupe index, while random ids dirty one index page per event
        (bench/dedupe.py: ~5 µs against 33-50 µs per id).
        """
        ...

    async def wait_capacity(self) -> None:
        """Wait while any routed sink's outbox is over its byte cap (backpressure)."""
        ...

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; returns ``False`` when the pipeline is stopping."""
        ...

    def poll_succeeded(self, lag_seconds: float | None = None) -> None: ...

    def poll_failed(self, reason: str, error_type: str = "error") -> None:
        """``error_type`` is a bounded label (an exception class name), ``reason`` free text."""
        ...

    async def dead_letter(self, reason: str, payload: bytes) -> None:
        """Keep an input the source could not parse, with why, and carry on."""
        ...

    async def dead_letters(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Several (reason, payload) at once: one transaction and one log line for a batch of rejects."""
        ...


@runtime_checkable
class Source(Protocol):
    name: str

    @property
    def stale_after_secs(self) -> float:
        """Health turns red after this long without a successful poll."""
        ...

    async def run(self, ctx: SourceContext) -> None: ...

    async def check(self) -> CheckResult:
        """Authenticate and make one harmless request; say what is wrong in plain words."""
        ...

    async def close(self) -> None: ...
