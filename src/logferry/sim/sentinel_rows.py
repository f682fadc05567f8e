"""Checking uploaded rows against a table definition, as strictly as a mapping bug deserves.

Azure accepts rows whose properties the DCR does not declare and drops them silently, and type
mismatches only show up in DCR error logs (azure_monitor.md §1.3). The simulator refuses both with a
400 naming the record, the column and the problem, so a wrong mapping fails a test instead of
quietly losing a column. The whole request is refused, as Azure refuses whole requests.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from logferry.schemas import TableDefinition

__all__ = ["RowRejected", "RowValidator"]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class RowRejected(Exception):
    """The body is not acceptable for the table; the message is for the 400 response."""


def _is_datetime(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        dt.datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


def _is_guid(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    try:
        uuid.UUID(v)
    except ValueError:
        return False
    return True


def _int_in(bounds: tuple[int, int]) -> Callable[[Any], bool]:
    lo, hi = bounds
    return lambda v: type(v) is int and lo <= v <= hi


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "string": (lambda v: isinstance(v, str), "a string"),
    "datetime": (_is_datetime, "an ISO-8601 datetime string"),
    "int": (_int_in(_INT32), "a 32-bit integer"),
    "long": (_int_in(_INT64), "a 64-bit integer"),
    "real": (lambda v: type(v) in (int, float), "a number"),
    "boolean": (lambda v: isinstance(v, bool), "true or false"),
    "dynamic": (lambda v: True, "any JSON value"),
    "guid": (_is_guid, "a GUID string"),
}


class RowValidator:
    """Validates a decoded request body for one table; compiled once per table."""

    def __init__(self, table: TableDefinition) -> None:
        self.table = table
        self._checks = {c.name: (*_CHECKS[c.type], c.type) for c in table.columns}

    def validate(self, rows: Any) -> list[dict[str, Any]]:
        """``rows`` if every record fits the table; otherwise ``RowRejected`` for the first problem."""
        if not isinstance(rows, list):
            raise RowRejected(f"The request body must be a JSON array of objects, not a JSON {_kind(rows)}.")
        checks = self._checks
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise RowRejected(f"Record {index} must be a JSON object, not a JSON {_kind(row)}.")
            for name, value in row.items():
                check = checks.get(name)
                if check is None:
                    raise RowRejected(
                        f"Record {index}: column '{name}' is not a column of table {self.table.table} "
                        f"(stream {self.table.stream})."
                    )
                ok, expected, type_name = check
                # Null is an empty cell in Log Analytics, allowed for every type.
                if value is not None and not ok(value):
                    raise RowRejected(
                        f"Record {index}: column '{name}' has type {type_name} and needs {expected}; "
                        f"got {_kind(value)} {_preview(value)}."
                    )
        return rows


def _kind(v: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if v is None else names.get(type(v), type(v).__name__)


def _preview(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."
