"""Output records: the Falcon SIEM Connector's field mapping, as data (specs/crowdstrike.md §5).

The SIEM Connector names each event's fields through per-event-type mapping sections whose values
are either a ``'literal'`` or a JSON path into the envelope (``metadata.offset``,
``event.ComputerName``). Those sections are kept once, in the syslog sink's shipped ``falcon_cef``
mapping (which writes the same fields as CEF), and compiled here into getters, so a record costs a
few dict lookups. ``__header.0/1/2`` (Signature ID, Name, Severity) become ``signatureId``, ``name``
and ``severity``; a section without a severity gives none. Fields missing from an event are left
out rather than written as null. Event types without a section pass through as their envelope,
so nothing is lost for types the connector's tables do not cover.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logferry.core.fieldmap import Mapper, compile_mapping
from logferry.core.types import Record
from logferry.formats.mapping import Section, load_mapping

__all__ = ["MAPPINGS", "Mapper", "mapper_for"]

#: The connector's header fields by the names the source's records give them.
_HEADER_NAMES = {"signature_id": "signatureId", "name": "name", "severity": "severity"}


def _table(section: Section) -> tuple[tuple[str, str], ...]:
    header = section.header_sources()
    named = [
        (out, header[field][0]) for field, out in _HEADER_NAMES.items() if field in section.model_fields_set
    ]
    return (*named, *section.extensions.items())


#: Output key → source (``'literal'`` or a dotted path), per event type, in output order.
MAPPINGS: dict[str, tuple[tuple[str, str], ...]] = {
    etype: _table(section) for etype, section in load_mapping("falcon_cef").events.items()
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
