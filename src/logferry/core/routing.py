"""Which records a sink takes from its inputs: the ``where`` condition, compiled once.

A sink's ``where`` maps field names to accepted values, e.g. ``{category: [AuditLogs]}``: a
record is taken when, for every listed field, its value is one of that field's values (AND
across fields, OR within one field's list). Field names are top-level keys; a name with dots
(``properties.category``) is looked up as written first and then as a path into nested objects,
so keys that themselves hold dots (``@odata.type``) still work.

Values are compared by their JSON text: YAML's ``4`` matches both the number 4 and the string
``"4"`` (syslog key=value fields are always strings, vendor JSON often is not), ``true`` matches
the boolean and the string ``"true"``. A missing field, ``null``, a float, an object or an array
never matches.

The condition is applied to source records before the sink maps them to its own shape, inside
the commit transaction, right after de-duplication. A sink without ``where`` takes everything
and costs nothing: the commit skips the filtering path entirely when no sink of a source has one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from logferry.core.types import Record

__all__ = ["RecordFilter", "WhereValue", "compile_where", "field_getter", "value_text", "where_problems"]

#: One accepted value as the user writes it: a JSON string, integer or boolean.
WhereValue = str | int | bool
RecordFilter = Callable[[Record], bool]

_MISSING = object()


def value_text(value: Any) -> str | None:
    """The text a value is compared by, or ``None`` for values that never match."""
    cls = value.__class__
    if cls is str:
        return str(value)
    if cls is bool:
        return "true" if value else "false"
    if cls is int:
        return str(value)
    return None


def where_problems(where: Mapping[Any, Any]) -> list[str]:
    """Every problem with a raw ``where`` mapping, each naming the field and the fix."""
    problems: list[str] = []
    for key, values in where.items():
        if not isinstance(key, str) or not key or any(not part for part in key.split(".")):
            problems.append(
                f"{key!r} is not a field name; use a record field such as 'category' or a dotted path "
                "such as 'properties.category'"
            )
            continue
        if not isinstance(values, list):
            problems.append(f"{key}: give a list of accepted values, e.g. {key}: [AuditLogs]")
            continue
        if not values:
            problems.append(f"{key}: the list is empty, so no record would match; list at least one value")
        for i, v in enumerate(values):
            if v.__class__ not in (str, int, bool):
                shown = "null" if v is None else repr(v)
                problems.append(
                    f"{key}[{i}]: {shown} is not a string, integer or true/false; write it in quotes to "
                    "match that text"
                )
    return problems


def field_getter(key: str) -> Callable[[Record], Any]:
    if "." not in key:
        return lambda rec: rec.get(key)
    path = key.split(".")

    def get(rec: Record) -> Any:
        value: Any = rec.get(key, _MISSING)
        if value is not _MISSING:
            return value
        value = rec
        for part in path:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value

    return get


def compile_where(where: Mapping[str, Sequence[WhereValue]] | None) -> RecordFilter | None:
    """A predicate for a validated ``where``; ``None`` when it takes every record."""
    if not where:
        return None
    tests: list[tuple[Callable[[Record], Any], frozenset[str]]] = []
    for key, values in where.items():
        accepted = frozenset(t for t in map(value_text, values) if t is not None)
        tests.append((field_getter(key), accepted))

    if len(tests) == 1:
        ((get, accepted),) = tests

        def one(rec: Record) -> bool:
            v = get(rec)
            # Strings are the common case: test them without the conversion call.
            return (v in accepted) if v.__class__ is str else value_text(v) in accepted

        return one

    def all_of(rec: Record) -> bool:
        for get, accepted in tests:
            v = get(rec)
            if not ((v in accepted) if v.__class__ is str else value_text(v) in accepted):
                return False
        return True

    return all_of
