"""Output records: the Falcon SIEM Connector's field mapping, as data (specs/crowdstrike.md §5).

The SIEM Connector names each event's fields through per-event-type mapping sections whose values
are either a ``'literal'`` or a JSON path into the envelope (``metadata.offset``,
``event.ComputerName``). The same tables are written here in the same syntax and compiled once
into getters, so a record costs a few dict lookups. ``__header.0/1/2`` (Signature ID, Name,
Severity) become ``signatureId``, ``name`` and ``severity``. Fields missing from an event are left
out rather than written as null. Event types without a section pass through as their envelope,
so nothing is lost for types the connector's tables do not cover.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from logferry.core.types import Record

__all__ = ["MAPPINGS", "Mapper", "compile_mapping", "mapper_for"]

Mapper = Callable[[dict[str, Any]], Record]

_HEADER = (
    ("signatureId", "metadata.eventType"),
    ("name", "metadata.eventType"),
)
_COMMON = (
    ("cn3", "metadata.offset"),
    ("cn3Label", "'Offset'"),
    ("rt", "metadata.eventCreationTime"),
)
_AUDIT = (
    *_HEADER,
    ("duser", "event.UserId"),
    ("destinationTranslatedAddress", "event.UserIp"),
    ("deviceProcessName", "event.ServiceName"),
    ("outcome", "event.Success"),
    *_COMMON,
)

#: Output key → source (``'literal'`` or a dotted path), per event type, in output order.
MAPPINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "DetectionSummaryEvent": (
        *_HEADER,
        ("severity", "event.Severity"),
        ("cat", "event.Tactic"),
        ("externalId", "event.SensorId"),
        ("cn1", "event.ParentProcessId"),
        ("cn2", "event.ProcessId"),
        ("dhost", "event.ComputerName"),
        ("duser", "event.UserName"),
        ("msg", "event.DetectDescription"),
        ("fname", "event.FileName"),
        ("filePath", "event.FilePath"),
        ("fileHash", "event.MD5String"),
        ("dntdom", "event.MachineDomain"),
        ("cs5", "event.CommandLine"),
        ("cs6", "event.FalconHostLink"),
        ("tactic", "event.Tactic"),
        ("technique", "event.Technique"),
        ("objective", "event.Objective"),
        ("patternDisposition", "event.PatternDispositionDescription"),
        ("outcome", "event.PatternDispositionValue"),
        *_COMMON,
    ),
    "AuthActivityAuditEvent": _AUDIT,
    "UserActivityAuditEvent": _AUDIT,
}


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


def _passthrough(doc: dict[str, Any]) -> Record:
    return doc


def mapper_for(output_format: str, tables: Mapping[str, tuple[tuple[str, str], ...]] = MAPPINGS) -> Mapper:
    """The record builder for ``output_format`` (``siem`` or ``raw``)."""
    if output_format == "raw":
        return _passthrough
    compiled = {etype: compile_mapping(table) for etype, table in tables.items()}

    def siem(doc: dict[str, Any]) -> Record:
        meta = doc.get("metadata")
        etype = meta.get("eventType") if isinstance(meta, dict) else None
        mapping = compiled.get(etype) if isinstance(etype, str) else None
        return doc if mapping is None else mapping(doc)

    return siem
