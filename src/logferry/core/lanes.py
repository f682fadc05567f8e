"""Several independent cursors inside one source: one lane per log type, feed or partition.

A Duo account has five log endpoints, a Falcon stream several partitions; each advances on its
own, yet the user configures one source and the pipeline commits one cursor per source. A lane
is anything with ``run(ctx)`` (a :class:`~logferry.core.polling.PollingSource` usually); each
gets a :class:`LaneContext` whose ``cursor`` and ``emit`` see only its own part of the source
cursor::

    {"lanes": {"authentication": {...}, "telephony": {...}}}

Emits are serialised so each commit carries every lane's latest committed position. Health is
green only when every lane has succeeded since the last report: one lane failing (a revoked
permission for one endpoint) turns the source red with that lane's reason while the others
keep delivering.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from logferry.core.source import EmitResult, SourceContext
from logferry.core.types import JSONValue, Record

__all__ = ["Lane", "LaneContext", "run_lanes"]


class Lane(Protocol):
    async def run(self, ctx: SourceContext) -> None: ...


class _Shared:
    def __init__(self, parent: SourceContext, names: Sequence[str]) -> None:
        self.parent = parent
        cursor = parent.cursor
        lanes = cursor.get("lanes") if isinstance(cursor, dict) else None
        self.cursors: dict[str, JSONValue] = dict(lanes) if isinstance(lanes, dict) else {}
        self.lock = asyncio.Lock()
        self.names = tuple(names)
        self.pending = set(names)
        self.lags: dict[str, float] = {}

    def succeeded(self, name: str, lag: float | None) -> None:
        self.pending.discard(name)
        if lag is not None:
            self.lags[name] = lag
        if not self.pending:
            self.parent.poll_succeeded(max(self.lags.values()) if self.lags else None)
            self.pending = set(self.names)
            self.lags = {}


class LaneContext:
    """The :class:`SourceContext` one lane sees."""

    def __init__(self, shared: _Shared, lane: str) -> None:
        self._shared = shared
        self.lane = lane
        parent = shared.parent
        self.name = parent.name
        self.logger: logging.Logger = parent.logger.getChild(lane)
        self.stopping = parent.stopping

    @property
    def cursor(self) -> JSONValue | None:
        return self._shared.cursors.get(self.lane)

    async def emit(
        self, records: Sequence[Record], cursor: JSONValue, ids: Sequence[str] | None = None
    ) -> EmitResult:
        shared = self._shared
        lane = self.lane
        async with shared.lock:
            combined: dict[str, Any] = {"lanes": {**shared.cursors, lane: cursor}}
            commit = asyncio.ensure_future(shared.parent.emit(records, combined, ids))

            def committed(task: asyncio.Future[EmitResult]) -> None:
                # Only once committed: a failed commit changes nothing.
                if not task.cancelled() and task.exception() is None:
                    shared.cursors[lane] = cursor

            commit.add_done_callback(committed)
            try:
                return await asyncio.shield(commit)
            except asyncio.CancelledError:
                # The store may finish this commit after all; until it has, another lane's commit
                # would carry this lane's older position, so the lock is held until it ends.
                await asyncio.wait([commit])
                raise

    async def wait_capacity(self) -> None:
        await self._shared.parent.wait_capacity()

    async def sleep(self, seconds: float) -> bool:
        return await self._shared.parent.sleep(seconds)

    def poll_succeeded(self, lag_seconds: float | None = None) -> None:
        self._shared.succeeded(self.lane, lag_seconds)

    def poll_failed(self, reason: str, error_type: str = "error") -> None:
        self._shared.parent.poll_failed(f"{self.lane}: {reason}", error_type)

    async def dead_letter(self, reason: str, payload: bytes) -> None:
        await self._shared.parent.dead_letter(f"{self.lane}: {reason}", payload)

    async def dead_letters(self, items: Sequence[tuple[str, bytes]]) -> None:
        await self._shared.parent.dead_letters([(f"{self.lane}: {r}", p) for r, p in items])


async def run_lanes(ctx: SourceContext, lanes: Mapping[str, Lane]) -> None:
    """Run every lane until the pipeline stops; an unexpected error in one stops them all
    (the pipeline restarts the source), expected vendor errors are each lane's to retry."""
    shared = _Shared(ctx, list(lanes))
    async with asyncio.TaskGroup() as group:
        for name, lane in lanes.items():
            group.create_task(lane.run(LaneContext(shared, name)), name=f"{ctx.name}/{name}")
