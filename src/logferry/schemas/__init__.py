"""Destination table definitions, kept as data so a new table needs no code.

Each ``<Table>.yaml`` beside this module names the table, its DCR stream, its typed
columns and, per column, the dotted path of the source field that fills it::

    table: meshStackEventLogs_CL
    stream: Custom-meshStackEventLogs_CL
    columns:
      - {name: TimeGenerated, type: datetime}
    mapping:
      TimeGenerated: metadata.createdAt

``compile_mapping`` turns a definition into one function that maps a whole list of
records, so the hot path does no per-record lookups of the definition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "COLUMN_TYPES",
    "Column",
    "TableDefinition",
    "available_tables",
    "compile_mapping",
    "load_table",
]

#: Log Analytics column types a definition may use.
COLUMN_TYPES = frozenset({"string", "int", "long", "real", "boolean", "datetime", "dynamic", "guid"})

Record = dict[str, Any]
Mapper = Callable[[Sequence[Record]], list[Record]]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    optional: bool = False


@dataclass(frozen=True)
class TableDefinition:
    table: str
    stream: str
    columns: tuple[Column, ...]
    mapping: dict[str, tuple[str, ...]]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def output_columns(self, include_optional: bool) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if include_optional or not c.optional)


def available_tables() -> list[str]:
    return sorted(
        p.name.removesuffix(".yaml")
        for p in resources.files(__package__).iterdir()
        if p.name.endswith(".yaml")
    )


@cache
def load_table(name: str) -> TableDefinition:
    """Load a shipped table definition by table name (``meshStackEventLogs_CL``)."""
    if name not in available_tables():
        raise KeyError(f"no table definition named {name!r}; known: {', '.join(available_tables())}")
    raw = yaml.safe_load(resources.files(__package__).joinpath(f"{name}.yaml").read_text("utf-8"))
    columns = tuple(
        Column(name=c["name"], type=c["type"], optional=bool(c.get("optional", False)))
        for c in raw["columns"]
    )
    for c in columns:
        if c.type not in COLUMN_TYPES:
            raise ValueError(f"{name}: column {c.name} has unknown type {c.type!r}")
    mapping = {col: tuple(path.split(".")) for col, path in raw.get("mapping", {}).items()}
    unknown = set(mapping) - {c.name for c in columns}
    if unknown:
        raise ValueError(f"{name}: mapping names columns the table lacks: {sorted(unknown)}")
    return TableDefinition(table=raw["table"], stream=raw["stream"], columns=columns, mapping=mapping)


def _getter(path: tuple[str, ...]) -> Callable[[Record], Any]:
    if len(path) == 1:
        (k,) = path

        def get1(r: Record) -> Any:
            return r.get(k)

        return get1

    def get(r: Record) -> Any:
        v: Any = r
        for k in path:
            if not isinstance(v, dict):
                return None
            v = v.get(k)
        return v

    return get


def compile_mapping(table: TableDefinition, include_optional: bool = False) -> Mapper:
    """Return a function mapping source records to rows of ``table``.

    Missing source fields become absent columns (Log Analytics stores them as empty),
    never ``null`` strings.
    """
    getters = [
        (c.name, _getter(table.mapping[c.name]))
        for c in table.output_columns(include_optional)
        if c.name in table.mapping
    ]

    def map_records(records: Sequence[Record]) -> list[Record]:
        out = []
        for r in records:
            row = {}
            for name, get in getters:
                v = get(r)
                if v is not None:
                    row[name] = v
            out.append(row)
        return out

    return map_records
