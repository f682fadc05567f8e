"""Turning one Kafka message value into records: pure, no I/O, one job.

* ``json`` (the default): a JSON object is one record; a JSON array is one record per element.
  With ``unwrap_records`` an object ``{"records": [...]}`` — the envelope Azure diagnostic
  settings write to Event Hubs, many log events per message — becomes one record per entry.
* ``text``: the value, decoded as UTF-8, is one record ``{"message": "..."}`` (a topic of plain log
  lines is legitimate on a Kafka cluster).

Whatever cannot become a record is returned as a reject ``(reason, payload)`` for the dead-letter
store. A bad entry inside an envelope rejects only that entry: one broken record must not hold back
the rest of the message (specs/event_hubs.md §7).

Each record keeps the position it had in the message (``index``; ``None`` for a message that is
one record), so a record's id stays the same whichever filter is applied and however often the
message is read again.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

import orjson

from logferry.core.types import Record

__all__ = ["Decoded", "Envelope", "MessageFormat", "category_of"]

MessageFormat = Literal["json", "text"]

#: Azure writes ``category``; some services' records spell it ``Category`` (specs/event_hubs.md §3).
_CATEGORY_KEYS = ("category", "Category")


def category_of(record: Record) -> str | None:
    for key in _CATEGORY_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            return value
    return None


@dataclass
class Decoded:
    """Records with their position in the message, and what had to be dead-lettered."""

    records: list[tuple[int | None, Record]] = field(default_factory=list)
    rejects: list[tuple[str, bytes]] = field(default_factory=list)
    #: Records dropped on purpose by the ``categories`` filter (counted, not dead-lettered).
    filtered: int = 0


@dataclass(frozen=True)
class Envelope:
    format: MessageFormat = "json"
    unwrap_records: bool = False
    #: Keep only records whose category is one of these (lower case); empty keeps everything.
    categories: Collection[str] = ()

    def decode(self, value: bytes | None) -> Decoded:
        out = Decoded()
        if value is None:
            # A tombstone (null value) carries no event: compacted topics use them to delete keys.
            return out
        if self.format == "text":
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                out.rejects.append((f"message is not UTF-8 text: {exc}", value))
                return out
            self._keep(out, None, {"message": text})
            return out
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            out.rejects.append((f"message is not JSON ({exc}); set format: text for plain text lines", value))
            return out
        if isinstance(doc, dict):
            entries = doc.get("records") if self.unwrap_records else None
            if isinstance(entries, list):
                self._entries(out, entries, "records[{}]")
            else:
                self._keep(out, None, doc)
        elif isinstance(doc, list):
            self._entries(out, doc, "element {}")
        else:
            out.rejects.append((f"message is a JSON {type(doc).__name__}, not an object or array", value))
        return out

    def _entries(self, out: Decoded, entries: list[object], where: str) -> None:
        for i, entry in enumerate(entries):
            if isinstance(entry, dict):
                self._keep(out, i, entry)
            else:
                reason = f"{where.format(i)} is a JSON {type(entry).__name__}, not an object"
                out.rejects.append((reason, orjson.dumps(entry)))

    def _keep(self, out: Decoded, index: int | None, record: Record) -> None:
        if self.categories:
            category = category_of(record)
            if category is None or category.lower() not in self.categories:
                out.filtered += 1
                return
        out.records.append((index, record))
