"""Records → JSON lines the Data Collector API accepts as columns.

The API makes a column of every top-level property and accepts only letters, digits and ``_`` in
property names; ``tenant``, ``TimeGenerated`` and ``RawData`` are reserved (azure_monitor.md §3.3).
Records come from many sources with names like ``@timestamp``, ``user.name`` or ``TimeGenerated``,
so top-level names are made valid here instead of risking a whole request being refused:

* every other character becomes ``_`` (``user.name`` → ``user_name``, ``@timestamp`` → ``_timestamp``);
* a reserved name gets a trailing ``_`` (``TimeGenerated`` → ``TimeGenerated_``);
* if a new name is already taken, ``_2``, ``_3``, … is appended; names that were valid keep theirs.

The one exception is the column ``time-generated-field`` names: it holds the configured time field
and nothing else, so with ``@timestamp`` configured, ``@timestamp`` is sent as ``_timestamp`` and a
record's own ``_timestamp`` as ``_timestamp_2`` (in every record, so the column does not move).

Nested objects and arrays are left as they are (the service stores each as one string column).
Values longer than 32 KB are truncated by the service; they are counted here so the loss is visible
(``oversized`` in :meth:`RecordEncoder.encode`), not altered: the service decides where it cuts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson

from logferry.core.types import Record

__all__ = ["FIELD_MAX_BYTES", "RESERVED", "RecordEncoder", "column_name"]

#: The API truncates field values above 32 KB (azure_monitor.md §3.4).
FIELD_MAX_BYTES = 32 * 1024
RESERVED = frozenset({"tenant", "timegenerated", "rawdata"})  # compared case-insensitively

_INVALID = re.compile(r"[^A-Za-z0-9_]")
# Keys repeat across records; the cache is cleared when full so odd data cannot grow it without bound.
_CACHE_MAX = 10_000


def column_name(key: str) -> str:
    """The property name ``key`` is sent as (before any ``_2`` for a clash)."""
    name = _INVALID.sub("_", key) or "_"
    return name + "_" if name.lower() in RESERVED else name


def _oversized_values(record: Record) -> int:
    count = 0
    for value in record.values():
        if isinstance(value, str):
            # Cheap bound first: a str never has more UTF-8 bytes than 4 per character.
            if len(value) * 4 > FIELD_MAX_BYTES and len(value.encode()) > FIELD_MAX_BYTES:
                count += 1
        elif isinstance(value, dict | list) and len(orjson.dumps(value, default=str)) > FIELD_MAX_BYTES:
            count += 1
    return count


class RecordEncoder:
    """One compact JSON line per record, with top-level names the API accepts."""

    def __init__(self, time_field: str | None = None) -> None:
        self._names: dict[str, str] = {}
        self._time_field = time_field
        #: The column the time field is sent as: what the ``time-generated-field`` header must name.
        self.time_column = column_name(time_field) if time_field is not None else None

    def encode(self, records: Sequence[Record]) -> tuple[list[bytes], int]:
        """The lines, and how many values exceed :data:`FIELD_MAX_BYTES` (the service truncates them)."""
        dumps = orjson.dumps
        lines: list[bytes] = []
        oversized = 0
        for record in records:
            line = dumps(self._renamed(record), default=str)
            # A value cannot be larger than the line that holds it, so most records need no look.
            if len(line) > FIELD_MAX_BYTES:
                oversized += _oversized_values(record)
            lines.append(line)
        return lines, oversized

    def _renamed(self, record: Record) -> Record:
        names = self._names
        if len(names) > _CACHE_MAX:
            names.clear()
        time_field, time_column = self._time_field, self.time_column
        renames: list[tuple[str, str]] = []
        for key in record:
            name = names.get(key)
            if name is None:
                name = names[key] = column_name(key)
            if name != key or (key == time_column and key != time_field):
                renames.append((key, name))
        if not renames:
            return record
        # The time field takes its column first; names that were valid keep them; renamed ones take
        # the next free suffix, never the time column.
        out: dict[str, Any] = {}
        if time_column is not None and time_field in record:
            out[time_column] = record[time_field]
        out.update((k, v) for k, v in record.items() if names[k] == k and k != time_column)
        for key, name in renames:
            if key == time_field:
                continue
            candidate, n = name, 1
            while candidate in out or candidate == time_column:
                n += 1
                candidate = f"{name}_{n}"
            out[candidate] = record[key]
        return out
