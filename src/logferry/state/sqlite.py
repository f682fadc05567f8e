"""The embedded state store: one SQLite file in WAL mode, driven from one worker thread.

Every call is one transaction run wholly on the worker thread, so the event loop never
blocks on disk and no transaction spans an ``await``. WAL with ``synchronous=NORMAL``
survives a killed process without losing a committed transaction; ``full`` also survives
power loss at the cost of an fsync per commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import compress
from pathlib import Path
from typing import Any, TypeVar

import orjson

from logferry.core.errors import StateError
from logferry.core.routing import RecordFilter
from logferry.core.types import JSONValue, Record
from logferry.state.store import CommitResult, DeadLetter, Encoder, OutboxEntry, OutboxStats

__all__ = ["SQLiteStateStore"]

T = TypeVar("T")

#: Ordered schema migrations; the store records how many have run.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE cursors (source TEXT PRIMARY KEY, cursor BLOB NOT NULL, updated_at REAL NOT NULL);
    CREATE TABLE seen (
        source TEXT NOT NULL, id TEXT NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (source, id)
    ) WITHOUT ROWID;
    CREATE INDEX seen_expiry ON seen (expires_at);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sink TEXT NOT NULL, source TEXT NOT NULL,
        events INTEGER NOT NULL, bytes INTEGER NOT NULL, created_at REAL NOT NULL,
        payload BLOB NOT NULL
    );
    CREATE INDEX outbox_sink ON outbox (sink, id);
    CREATE TABLE outbox_progress (id INTEGER PRIMARY KEY, delivered INTEGER NOT NULL);
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        component TEXT NOT NULL, stage TEXT NOT NULL, sink TEXT, reason TEXT NOT NULL,
        payload BLOB NOT NULL, created_at REAL NOT NULL
    );
    """,
)

#: SQLite's default limit on host parameters is 999 in old builds; stay under it.
_IN_CHUNK = 500
#: Outbox payloads are ~1 MB blobs; 64 KiB pages cut their overflow chains 16-fold.
PAGE_SIZE = 65536


class SQLiteStateStore:
    def __init__(self, path: str | Path, synchronous: str = "normal") -> None:
        self.path = Path(path)
        self.synchronous = synchronous.upper()
        self._db: sqlite3.Connection | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="logferry-state")

    # -- plumbing -----------------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._tx, fn)

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        if db is None:
            raise StateError("state store is not open")
        try:
            db.execute("BEGIN IMMEDIATE")
            result = fn(db)
            db.execute("COMMIT")
            return result
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._open)

    def _open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # Takes effect only on a new, empty database, before WAL mode is set.
            db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.synchronous}")
            db.execute("PRAGMA busy_timeout=10000")
            db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > len(MIGRATIONS):
                raise StateError(
                    f"{self.path} has schema version {version}, newer than this logferry knows "
                    f"({len(MIGRATIONS)}); upgrade logferry"
                )
            for i in range(version, len(MIGRATIONS)):
                db.execute("BEGIN IMMEDIATE")
                # Statement by statement: executescript() would commit mid-migration.
                for stmt in MIGRATIONS[i].split(";"):
                    if stmt.strip():
                        db.execute(stmt)
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                    (str(i + 1),),
                )
                db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state store {self.path}: {exc}") from exc
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            db = self._db
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    # -- the hot path -------------------------------------------------------------------
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
        def tx(db: sqlite3.Connection) -> CommitResult:
            now = time.time()
            kept: Sequence[Record] = records
            new_ids: list[str] = []
            if ids is not None:
                seen = _seen(db, source, ids, now)
                kept_list: list[Record] = []
                batch_ids: set[str] = set()
                for rec, rid in zip(records, ids, strict=True):
                    if rid in seen or rid in batch_ids:
                        continue
                    batch_ids.add(rid)
                    kept_list.append(rec)
                    new_ids.append(rid)
                kept = kept_list
                if new_ids:
                    exp = now + dedupe_ttl_secs
                    db.executemany(
                        "INSERT OR REPLACE INTO seen (source, id, expires_at) VALUES (?, ?, ?)",
                        [(source, i, exp) for i in new_ids],
                    )
            added: dict[str, int] = {}
            events: dict[str, int] = {}
            unrouted = 0
            if kept:
                selected: Mapping[str, Sequence[Record]]
                if filters:
                    selected, unrouted = _route(kept, encoders, filters)
                else:
                    selected = dict.fromkeys(encoders, kept)
                rows = []
                for sink, recs in selected.items():
                    if not recs:
                        continue
                    payload = b"\n".join(encoders[sink](recs))
                    rows.append((sink, source, payload, len(recs), len(payload), now))
                    added[sink] = len(payload)
                    events[sink] = len(recs)
                db.executemany(
                    "INSERT INTO outbox (sink, source, payload, events, bytes, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            db.execute(
                "INSERT INTO cursors (source, cursor, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(source) DO UPDATE SET cursor=excluded.cursor, updated_at=excluded.updated_at",
                (source, orjson.dumps(cursor), now),
            )
            return CommitResult(len(kept), len(records) - len(kept), added, events, unrouted)

        return await self._run(tx)

    async def outbox_read(
        self, sink: str, max_entries: int, max_bytes: int, after_id: int = 0
    ) -> list[OutboxEntry]:
        def tx(db: sqlite3.Connection) -> list[OutboxEntry]:
            rows = db.execute(
                "SELECT o.id, o.bytes, COALESCE(p.delivered, 0), o.payload FROM outbox o "
                "LEFT JOIN outbox_progress p ON p.id = o.id "
                "WHERE o.sink=? AND o.id>? ORDER BY o.id LIMIT ?",
                (sink, after_id, max_entries),
            )
            out: list[OutboxEntry] = []
            total = 0
            for entry_id, size, delivered, payload in rows:
                out.append(OutboxEntry(entry_id, payload.split(b"\n")[delivered:], delivered))
                total += size
                if total >= max_bytes:
                    break
            return out

        return await self._run(tx)

    async def outbox_ack(
        self,
        sink: str,
        done_through: int,
        partial: tuple[int, int] | None,
        rejected: Sequence[tuple[str, bytes]] = (),
    ) -> int:
        def tx(db: sqlite3.Connection) -> int:
            (freed,) = db.execute(
                "SELECT COALESCE(SUM(bytes), 0) FROM outbox WHERE sink=? AND id<=?", (sink, done_through)
            ).fetchone()
            db.execute(
                "DELETE FROM outbox_progress WHERE id IN (SELECT id FROM outbox WHERE sink=? AND id<=?)",
                (sink, done_through),
            )
            db.execute("DELETE FROM outbox WHERE sink=? AND id<=?", (sink, done_through))
            if partial is not None:
                # Progress lives in its own table: updating the outbox row would rewrite its payload.
                db.execute(
                    "INSERT INTO outbox_progress (id, delivered) VALUES (?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET delivered=excluded.delivered",
                    partial,
                )
            if rejected:
                now = time.time()
                db.executemany(
                    "INSERT INTO dead_letters (component, stage, sink, reason, payload, created_at) "
                    "VALUES (?, 'deliver', ?, ?, ?, ?)",
                    [(sink, sink, reason, line, now) for reason, line in rejected],
                )
            return int(freed)

        return await self._run(tx)

    # -- everything else ----------------------------------------------------------------
    async def get_cursor(self, source: str) -> JSONValue | None:
        def tx(db: sqlite3.Connection) -> JSONValue | None:
            row = db.execute("SELECT cursor FROM cursors WHERE source=?", (source,)).fetchone()
            return orjson.loads(row[0]) if row else None

        return await self._run(tx)

    async def cursors(self) -> dict[str, JSONValue]:
        def tx(db: sqlite3.Connection) -> dict[str, JSONValue]:
            return {s: orjson.loads(c) for s, c in db.execute("SELECT source, cursor FROM cursors")}

        return await self._run(tx)

    async def reset_source(self, source: str) -> None:
        def tx(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM cursors WHERE source=?", (source,))
            db.execute("DELETE FROM seen WHERE source=?", (source,))

        await self._run(tx)

    async def outbox_stats(self) -> dict[str, OutboxStats]:
        def tx(db: sqlite3.Connection) -> dict[str, OutboxStats]:
            rows = db.execute(
                "SELECT o.sink, COUNT(*), COALESCE(SUM(o.events - COALESCE(p.delivered, 0)), 0), "
                "COALESCE(SUM(o.bytes), 0) FROM outbox o LEFT JOIN outbox_progress p ON p.id = o.id "
                "GROUP BY o.sink"
            )
            return {r[0]: OutboxStats(r[1], r[2], r[3]) for r in rows}

        return await self._run(tx)

    async def add_dead_letter(
        self, component: str, stage: str, reason: str, payload: bytes, sink: str | None = None
    ) -> None:
        await self.add_dead_letters(component, stage, [(reason, payload)], sink)

    async def add_dead_letters(
        self, component: str, stage: str, items: Sequence[tuple[str, bytes]], sink: str | None = None
    ) -> None:
        def tx(db: sqlite3.Connection) -> None:
            now = time.time()
            db.executemany(
                "INSERT INTO dead_letters (component, stage, sink, reason, payload, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(component, stage, sink, reason, payload, now) for reason, payload in items],
            )

        await self._run(tx)

    async def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        def tx(db: sqlite3.Connection) -> list[DeadLetter]:
            rows = db.execute(
                "SELECT id, component, stage, sink, reason, payload, created_at FROM dead_letters "
                "ORDER BY id LIMIT ?",
                (limit,),
            )
            return [DeadLetter(*r) for r in rows]

        return await self._run(tx)

    async def replay_dead_letters(self, ids: Sequence[int] | None = None) -> int:
        def tx(db: sqlite3.Connection) -> int:
            query = "SELECT id, sink, component, payload FROM dead_letters WHERE sink IS NOT NULL"
            params: list[Any] = []
            if ids is not None:
                query += f" AND id IN ({','.join('?' * len(ids))})"
                params = list(ids)
            rows = db.execute(query, params).fetchall()
            now = time.time()
            db.executemany(
                "INSERT INTO outbox (sink, source, payload, events, bytes, created_at) "
                "VALUES (?, ?, ?, 1, ?, ?)",
                [(sink, f"replay:{comp}", payload, len(payload), now) for _id, sink, comp, payload in rows],
            )
            db.executemany("DELETE FROM dead_letters WHERE id=?", [(r[0],) for r in rows])
            return len(rows)

        return await self._run(tx)

    async def prune_seen(self) -> int:
        def tx(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM seen WHERE expires_at<=?", (time.time(),)).rowcount

        return await self._run(tx)


def _route(
    kept: Sequence[Record], encoders: Mapping[str, Encoder], filters: Mapping[str, RecordFilter]
) -> tuple[dict[str, Sequence[Record]], int]:
    """Each sink's share of ``kept`` (in order), and how many records no sink takes."""
    selected: dict[str, Sequence[Record]] = {}
    # Only when every sink filters can a record go nowhere; otherwise skip the bookkeeping.
    taken: list[bool] | None = [False] * len(kept) if all(s in filters for s in encoders) else None
    for sink in encoders:
        keep = filters.get(sink)
        if keep is None:
            selected[sink] = kept
            continue
        hits = list(map(keep, kept))
        selected[sink] = list(compress(kept, hits))
        if taken is not None:
            taken = [a or b for a, b in zip(taken, hits, strict=True)]
    return selected, taken.count(False) if taken is not None else 0


def _seen(db: sqlite3.Connection, source: str, ids: Sequence[str], now: float) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(ids), _IN_CHUNK):
        chunk = ids[i : i + _IN_CHUNK]
        found.update(
            r[0]
            for r in db.execute(
                "SELECT id FROM seen WHERE source=? AND expires_at>? "
                f"AND id IN ({','.join('?' * len(chunk))})",
                (source, now, *chunk),
            )
        )
    return found
