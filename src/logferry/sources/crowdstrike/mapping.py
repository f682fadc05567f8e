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

from collections.abc import Mapping
from typing import Any

from logferry.core.fieldmap import Mapper, compile_mapping
from logferry.core.types import Record

__all__ = ["MAPPINGS", "Mapper", "mapper_for"]

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
