"""Where the Sentinel simulator keeps accepted rows: SQLite, one ``executemany`` per request.

Rows are stored as the JSON the client sent (re-encoded once with orjson), in arrival order, so
tests can compare exactly what reached the "workspace". With ``store_rows`` off only the counts are
kept, for benchmarks that push millions of rows.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson

__all__ = ["RowStore"]


class RowStore:
    def __init__(self, db_path: str = ":memory:", store_rows: bool = True) -> None:
        self.store_rows = store_rows
        self.accepted: Counter[str] = Counter()
        self._db: sqlite3.Connection | None = None
        if store_rows:
            self._db = sqlite3.connect(db_path, isolation_level=None)
            # A test fixture, not a system of record: durability is not worth the fsyncs.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS rows (seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, "
                "body BLOB NOT NULL)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS rows_by_table ON rows (tbl, seq)")
            for table, count in self._db.execute("SELECT tbl, COUNT(*) FROM rows GROUP BY tbl"):
                self.accepted[table] = count

    def add(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        if self._db is not None:
            self._db.execute("BEGIN")  # one transaction per request
            try:
                self._db.executemany(
                    "INSERT INTO rows (tbl, body) VALUES (?, ?)", [(table, orjson.dumps(r)) for r in rows]
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        self.accepted[table] += len(rows)

    def rows_json(self, table: str, limit: int | None = None, offset: int = 0) -> bytes:
        """Stored rows of ``table`` in arrival order, as one JSON array."""
        if self._db is None:
            raise LookupError("rows are not stored (store_rows is off)")
        cursor = self._db.execute(
            "SELECT body FROM rows WHERE tbl = ? ORDER BY seq LIMIT ? OFFSET ?",
            (table, -1 if limit is None else limit, offset),
        )
        return b"[" + b",".join(body for (body,) in cursor) + b"]"

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
