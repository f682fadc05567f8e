"""Records → JSON lines for a Logs Ingestion stream.

The mapping from source fields to table columns is compiled once from the table definition
(``logferry.schemas``), so encoding a record is one mapping call and one ``orjson.dumps``: no
pydantic, no logging, no lookups of the definition. orjson escapes control characters, so a line
never holds a raw newline and lines can be stored one per row in the outbox.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from logferry.core.types import Record
from logferry.schemas import TableDefinition, compile_mapping, load_table

__all__ = ["RecordEncoder", "select_columns"]


def _fallback(value: Any) -> Any:
    # Types orjson cannot write (Decimal, set, custom objects) become text rather than failing
    # the commit: a column of the wrong type is rejected later, visibly, as one dead letter.
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)


class RecordEncoder:
    """Turns source records into one encoded line per record.

    With ``table`` the records are mapped to exactly the table's columns (``EventId`` only with
    ``include_event_id``); without it they are written unchanged for a DCR transform to shape.
    """

    def __init__(self, table: str | None = None, include_event_id: bool = False) -> None:
        self._map: Callable[[Sequence[Record]], list[Record]] | None = None
        if table is not None:
            self._map = compile_mapping(select_columns(load_table(table), include_event_id), True)

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        rows = self._map(records) if self._map is not None else records
        dumps = orjson.dumps
        return [dumps(row, default=_fallback) for row in rows]


def select_columns(table: TableDefinition, include_event_id: bool) -> TableDefinition:
    """The definition with optional columns dropped, except ``EventId`` when asked for."""
    keep = tuple(c for c in table.columns if not c.optional or (include_event_id and c.name == "EventId"))
    return dataclasses.replace(table, columns=keep)
