"""The state-store contract: one transaction holds a batch, its cursor and its seen ids.

Nothing here is SQLite-specific, so a PostgreSQL store can implement the same contract for
several logferry instances sharing work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from logferry.core.routing import RecordFilter
from logferry.core.types import JSONValue, Record

__all__ = [
    "CommitResult",
    "DeadLetter",
    "Encoder",
    "OutboxEntry",
    "OutboxStats",
    "StateStore",
]

Encoder = Callable[[Sequence[Record]], list[bytes]]


@dataclass(frozen=True)
class CommitResult:
    """What one commit did. ``accepted`` counts new records once for the source, whichever sinks
    took them; ``outbox_bytes``/``outbox_events`` are per sink that got a row (a sink whose filter
    matched nothing is absent); ``unrouted`` counts accepted records that no sink took."""

    accepted: int
    duplicates: int
    outbox_bytes: dict[str, int]
    outbox_events: dict[str, int]
    unrouted: int = 0


@dataclass(frozen=True)
class OutboxEntry:
    """One committed batch for one sink; ``lines`` excludes those already delivered."""

    id: int
    lines: list[bytes]
    offset: int


@dataclass(frozen=True)
class OutboxStats:
    entries: int
    events: int
    bytes: int


@dataclass(frozen=True)
class DeadLetter:
    id: int
    component: str
    stage: str
    sink: str | None
    reason: str
    payload: bytes
    created_at: float


class StateStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def commit(
        self,
        source: str,
        cursor: JSONValue,
        records: Sequence[Record],
        ids: Sequence[str] | None,
        encoders: Mapping[str, Encoder],
        dedupe_ttl_secs: float,
        filters: Mapping[str, RecordFilter] | None = None,
    ) -> CommitResult:
        """Atomically: drop records whose id was seen, encode the rest for each sink into its
        outbox, remember their ids for ``dedupe_ttl_secs``, and store ``cursor``.

        A sink named in ``filters`` gets only the new records its filter accepts, and no outbox
        row at all when it accepts none; the ids of every new record are remembered either way,
        so a record no sink took is still a duplicate the next time it comes."""
        ...

    async def get_cursor(self, source: str) -> JSONValue | None: ...

    async def reset_source(self, source: str) -> None:
        """Forget a source's cursor and seen ids; it starts over from its initial lookback."""
        ...

    async def outbox_read(
        self, sink: str, max_entries: int, max_bytes: int, after_id: int = 0
    ) -> list[OutboxEntry]:
        """The oldest entries in order, stopping once their payloads reach ``max_bytes``
        (at least one entry), so a large backlog is never read into memory at once."""
        ...

    async def outbox_ack(
        self,
        sink: str,
        done_through: int,
        partial: tuple[int, int] | None,
        rejected: Sequence[tuple[str, bytes]] = (),
    ) -> int:
        """Delete entries ``id <= done_through``, record ``partial=(id, lines delivered)``,
        and dead-letter ``rejected`` (reason, line) in the same transaction. Returns the
        payload bytes freed."""
        ...

    async def outbox_stats(self) -> dict[str, OutboxStats]: ...

    async def add_dead_letter(
        self, component: str, stage: str, reason: str, payload: bytes, sink: str | None = None
    ) -> None: ...

    async def add_dead_letters(
        self, component: str, stage: str, items: Sequence[tuple[str, bytes]], sink: str | None = None
    ) -> None:
        """Several (reason, payload) in one transaction."""
        ...

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    async def replay_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        """Move sink dead letters back into their sink's outbox; returns how many moved."""
        ...

    async def cursors(self) -> dict[str, JSONValue]: ...

    async def prune_seen(self) -> int: ...
