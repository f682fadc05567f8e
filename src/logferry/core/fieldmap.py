"""Field tables as data: output names from ``'literal'`` values or dotted paths into a record.

One syntax, the Falcon SIEM Connector's (``metadata.offset``, ``event.ComputerName``,
``'Offset'``), serves the CrowdStrike source's output records and the syslog sink's CEF/LEEF
mappings. A table is compiled once into a function, so a record costs a few dict lookups. Fields
missing from a record are left out rather than written as null.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from logferry.core.types import Record

__all__ = ["Mapper", "compile_mapping"]

Mapper = Callable[[dict[str, Any]], Record]


def compile_mapping(table: tuple[tuple[str, str], ...]) -> Mapper:
    """One table as a function: each envelope part a path starts in is looked up once per record."""
    entries: list[tuple[str, str | None, tuple[str, ...], str]] = []
    for key, source in table:
        if len(source) >= 2 and source[0] == source[-1] == "'":
            entries.append((key, None, (), source[1:-1]))
        else:
            top, *rest = source.split(".")
            entries.append((key, top, tuple(rest), ""))
    tops = sorted({top for _, top, _, _ in entries if top is not None})

    def apply(doc: dict[str, Any]) -> Record:
        parts = {top: doc.get(top) for top in tops}
        out: dict[str, Any] = {}
        for key, top, rest, literal in entries:
            if top is None:
                out[key] = literal
                continue
            node = parts[top]
            for step in rest:
                node = node.get(step) if isinstance(node, dict) else None
            if node is not None:
                out[key] = node
        return out

    return apply
