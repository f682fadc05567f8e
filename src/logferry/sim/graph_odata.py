"""The slice of OData the Microsoft simulators need: ``$filter`` clauses joined by ``and``, and time.

Microsoft APIs keep timestamps as .NET ticks (100 ns) and print seven fractional digits
(``2026-11-21T10:00:00.1234567Z``); Python's ``datetime`` stops at microseconds, so the simulators
keep integer ticks since the Unix epoch and parse and print them here. A filter is a list of
``field op value`` clauses::

    lastUpdateDateTime ge 2026-11-21T10:00:00Z and lastUpdateDateTime lt 2026-11-21T10:05:00Z
    StartDate eq datetime'2026-11-21T10:00:00Z' and EndDate eq datetime'2026-11-21T11:00:00Z'
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "TICKS_PER_SEC",
    "Clause",
    "FilterError",
    "TimeRange",
    "format_ticks",
    "now_ticks",
    "parse_filter",
    "parse_ticks",
]

TICKS_PER_SEC = 10_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

_TIME_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?(Z|[+-]\d{2}:\d{2})?$"
)
_CLAUSE_RE = re.compile(
    r"\s*([A-Za-z_][\w/]*)\s+(eq|ne|ge|gt|le|lt)\s+"
    r"(datetime'[^']*'|'(?:[^']|'')*'|[^\s()]+)\s*",
    re.IGNORECASE,
)
_AND_RE = re.compile(r"and\s", re.IGNORECASE)


class FilterError(ValueError):
    """A ``$filter`` the simulator cannot parse; the message says where."""


def now_ticks() -> int:
    return time.time_ns() // 100


def parse_ticks(text: str) -> int:
    """Ticks since the epoch from ISO 8601 with up to 7 fractional digits; no zone means UTC."""
    m = _TIME_RE.match(text.strip())
    if m is None:
        raise FilterError(f"{text!r} is not a date-time such as 2026-11-21T10:00:00Z")
    y, mo, d, h, mi, sec = (int(m.group(i) or 0) for i in range(1, 7))
    try:
        moment = dt.datetime(y, mo, d, h, mi, sec, tzinfo=dt.UTC)
    except ValueError as exc:
        raise FilterError(f"{text!r} is not a valid date-time: {exc}") from None
    fraction = int((m.group(7) or "").ljust(7, "0"))
    ticks = (moment - _EPOCH) // dt.timedelta(seconds=1) * TICKS_PER_SEC + fraction
    zone = m.group(8)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60 * TICKS_PER_SEC
        ticks -= sign * offset
    return ticks


def format_ticks(ticks: int, zone: bool = True) -> str:
    """``2026-11-21T10:00:00.1234567Z``: always seven digits, as Microsoft's services print them."""
    seconds, fraction = divmod(ticks, TICKS_PER_SEC)
    moment = _EPOCH + dt.timedelta(seconds=seconds)
    text = f"{moment:%Y-%m-%dT%H:%M:%S}.{fraction:07d}"
    return text + "Z" if zone else text


@dataclass(frozen=True)
class Clause:
    field: str
    op: str  # lower case
    value: str  # unquoted: datetime'..' and '..' lose their quotes

    @property
    def ticks(self) -> int:
        return parse_ticks(self.value)


def parse_filter(text: str) -> list[Clause]:
    """Clauses of ``a op v and b op w ...`` (one level of surrounding parentheses allowed)."""
    body = text.strip()
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    clauses: list[Clause] = []
    pos = 0
    while True:
        m = _CLAUSE_RE.match(body, pos)
        if m is None:
            raise FilterError(f"syntax error in $filter at position {pos}: {body[pos : pos + 40]!r}")
        clauses.append(Clause(m.group(1), m.group(2).lower(), _unquote(m.group(3))))
        pos = m.end()
        if pos >= len(body):
            return clauses
        conj = _AND_RE.match(body, pos)
        if conj is None:
            # `or` and functions are not what the simulated endpoints accept either.
            raise FilterError(f"only 'and' may join clauses; found {body[pos : pos + 20]!r}")
        pos = conj.end()


@dataclass(frozen=True)
class TimeRange:
    """Bounds on one time field, from its ``ge``/``gt``/``le``/``lt`` clauses (None = open)."""

    lower: int | None = None
    lower_inclusive: bool = True
    upper: int | None = None
    upper_inclusive: bool = False

    @classmethod
    def of(cls, clauses: Sequence[Clause], field: str) -> TimeRange:
        lower: int | None = None
        upper: int | None = None
        lower_inc, upper_inc = True, False
        for c in clauses:
            if c.field.lower() != field.lower():
                continue
            if c.op in ("ge", "gt"):
                lower, lower_inc = c.ticks, c.op == "ge"
            elif c.op in ("le", "lt"):
                upper, upper_inc = c.ticks, c.op == "le"
            elif c.op == "eq":
                lower = upper = c.ticks
                lower_inc = upper_inc = True
            else:
                raise FilterError(f"operator {c.op!r} is not supported on {field}")
        return cls(lower, lower_inc, upper, upper_inc)

    def first_index(self, keys: Sequence[int]) -> int:
        """Index of the first key in sorted ``keys`` inside the range's lower bound."""
        if self.lower is None:
            return 0
        if self.lower_inclusive:
            return bisect.bisect_left(keys, self.lower)
        return bisect.bisect_right(keys, self.lower)

    def end_index(self, keys: Sequence[int]) -> int:
        """Index just past the last key in sorted ``keys`` inside the range's upper bound."""
        if self.upper is None:
            return len(keys)
        if self.upper_inclusive:
            return bisect.bisect_right(keys, self.upper)
        return bisect.bisect_left(keys, self.upper)


def _unquote(raw: str) -> str:
    if raw.lower().startswith("datetime'") and raw.endswith("'"):
        return raw[9:-1]
    if len(raw) >= 2 and raw[0] == raw[-1] == "'":
        return raw[1:-1].replace("''", "'")
    return raw
