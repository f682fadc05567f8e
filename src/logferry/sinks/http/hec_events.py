"""Records → Splunk HEC event envelopes, one JSON object per line.

An envelope is ``{"time": epoch seconds, "host", "source", "sourcetype", "index", "event": record,
"fields": {...}}``. The record is serialised once and spliced into the envelope as bytes, so the
optional dedupe id (a SHA-1 of exactly those bytes) costs a hash, not a second ``dumps``; the
metadata part is serialised once per sink. HEC wants ``time`` as epoch seconds: a record's time
field may hold epoch seconds, milliseconds, microseconds or nanoseconds (numbers or numeric text,
told apart by magnitude) or ISO-8601 text; anything else, or no time field, stamps the commit time.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from logferry.core.routing import field_getter
from logferry.core.types import Record
from logferry.sinks.sentinel.encoder import RecordEncoder

__all__ = ["EventEncoder", "epoch_secs"]

#: (upper bound, divisor): an epoch value below 1e11 is seconds (1e11 s is the year 5138), below 1e14
#: milliseconds, below 1e17 microseconds, below 1e20 nanoseconds. Larger ones are not times.
_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))


def epoch_secs(value: Any) -> float | None:
    """``value`` as epoch seconds (millisecond precision), or ``None`` if it is not a time."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        if "-" in value[1:] or ":" in value:  # a date; raising ValueError from float() costs ~2 µs
            return _iso_secs(value)
        try:
            number = float(value)
        except ValueError:
            return None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        return None
    if not math.isfinite(number) or number < 0:
        return None
    for bound, divisor in _UNITS:
        if number < bound:
            return round(number / divisor, 3)
    return None


def _iso_secs(text: str) -> float | None:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # vendor APIs without an offset mean UTC
    return round(parsed.timestamp(), 3)


def _indexed_value(value: Any) -> Any:
    """A value HEC accepts as an indexed field: text, a number, or a list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return value
    if isinstance(value, list) and all(
        isinstance(v, str | int | float) and not isinstance(v, bool) for v in value
    ):
        return value
    # HEC refuses nested values in fields (code 15); their JSON text is still searchable.
    return orjson.dumps(value, default=str).decode()


class EventEncoder:
    """Builds the HEC line of each record for one sink's settings."""

    def __init__(
        self,
        *,
        meta: Mapping[str, str],
        time_field: str | None = None,
        fields: Mapping[str, str] | None = None,
        id_field: str | None = None,
    ) -> None:
        self._meta = b"," + orjson.dumps(dict(meta))[1:-1] if meta else b""
        self._time = field_getter(time_field) if time_field else None
        self._fields: list[tuple[str, Callable[[Record], Any]]] = [
            (name, field_getter(path)) for name, path in (fields or {}).items()
        ]
        self._id_field = id_field
        self._dumps = RecordEncoder().encode

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        now = orjson.dumps(round(time.time(), 3))
        dumps, join, get_time, meta = orjson.dumps, b"".join, self._time, self._meta
        with_fields = bool(self._fields) or self._id_field is not None
        lines: list[bytes] = []
        for record, event in zip(records, self._dumps(records), strict=True):
            stamp = now
            if get_time is not None:
                secs = epoch_secs(get_time(record))
                if secs is not None:
                    stamp = dumps(secs)
            fields = self._indexed_fields(record, event) if with_fields else None
            if fields:
                lines.append(
                    join((b'{"time":', stamp, meta, b',"event":', event, b',"fields":', dumps(fields), b"}"))
                )
            else:
                lines.append(join((b'{"time":', stamp, meta, b',"event":', event, b"}")))
        return lines

    def _indexed_fields(self, record: Record, event: bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, get in self._fields:
            value = get(record)
            if value is not None:
                out[name] = _indexed_value(value)
        if self._id_field is not None:
            out[self._id_field] = hashlib.sha1(event, usedforsecurity=False).hexdigest()
        return out
