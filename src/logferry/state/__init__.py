"""Durable state: cursors, outboxes, seen ids and dead letters."""

from __future__ import annotations

from logferry.state.sqlite import SQLiteStateStore
from logferry.state.store import CommitResult, DeadLetter, Encoder, OutboxEntry, OutboxStats, StateStore

__all__ = [
    "CommitResult",
    "DeadLetter",
    "Encoder",
    "OutboxEntry",
    "OutboxStats",
    "SQLiteStateStore",
    "StateStore",
]
