"""CEF and LEEF field mappings as data: which record fields fill the header and the key=value pairs.

A mapping is a YAML file. The shipped ones (``falcon_cef``, ``generic_cef``, ``generic_leef``, in
``mappings/``) are referred to by name; any other value of the sink's ``mapping`` option is a path to
the user's own file. Values use the Falcon SIEM Connector's syntax (crowdstrike.md §5): ``'literal'`` in
single quotes, or a dotted path into the record (``event.ComputerName``); a path that finds nothing
leaves its key out. ``event_type`` names the field that picks a section from ``events``; records of
other types (or when it is not set) use ``default``::

    format: cef                      # cef | leef
    vendor: CrowdStrike              # header constants
    product: FalconHost
    version: "1.0"
    event_type: metadata.eventType
    events:
      DetectionSummaryEvent:
        signature_id: metadata.eventType   # CEF Signature ID, LEEF EventID; or a list, first found
        # wins: [signatureId, metadata.eventType, "'event'"]
        name: metadata.eventType           # CEF only
        severity: event.Severity           # CEF only
        severity_map: {"5": 10}            # optional: value as text → what is written
        extensions: {duser: event.UserName, cn3: metadata.offset, cn3Label: "'Offset'"}
    default:
      signature_id: "'event'"
      all_fields: true                     # also every other top-level field (objects as JSON)

Mapping a record never fails: values become text (objects and arrays as compact JSON), and what CEF
or LEEF cannot carry is escaped (:mod:`logferry.formats.cef`) or replaced
(:func:`~logferry.formats.leef.leef_text`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import Field, ValidationError, field_validator

from logferry.config.base import Model
from logferry.core.fieldmap import compile_mapping
from logferry.core.types import Record
from logferry.formats.kv import KEY_PATTERN
from logferry.formats.leef import leef_text

__all__ = ["SHIPPED", "MappingFile", "RecordMapper", "Section", "compact_json", "load_mapping", "value_text"]

MAPPINGS_DIR = Path(__file__).parent / "mappings"
#: Mappings that ship with logferry, by the name the ``mapping`` option accepts.
SHIPPED = tuple(sorted(p.stem for p in MAPPINGS_DIR.glob("*.yaml")))

_KEY = re.compile(KEY_PATTERN)
_NOT_KEY_CHAR = re.compile(r"[^A-Za-z0-9_.\-]")
_PATH = re.compile(r"[^.\s]+(\.[^.\s]+)*")


def _is_literal(source: str) -> bool:
    return len(source) >= 2 and source[0] == source[-1] == "'"


def _check_source(value: str) -> str:
    if not _is_literal(value) and _PATH.fullmatch(value) is None:
        raise ValueError(
            f"{value!r} is neither a 'literal' in single quotes nor a dotted path such as event.UserName"
        )
    return value


class Section(Model):
    """How one event type is written."""

    signature_id: str | list[str] = Field(
        "'event'",
        description="CEF Signature ID or LEEF EventID: 'literal' or record path, or a list of them (the "
        "first that finds a value is written).",
    )
    name: str | list[str] = Field(
        "'event'", description="CEF Name: 'literal' or record path, or a list of them (CEF only)."
    )
    severity: str | list[str] = Field(
        "'5'", description="CEF Severity (0-10): 'literal' or record path, or a list of them (CEF only)."
    )
    severity_map: dict[str, str | int] = Field(
        default_factory=dict, description="Severity value (as text) → the severity written (CEF only)."
    )
    extensions: dict[str, str] = Field(
        default_factory=dict, description="CEF extension / LEEF attribute key → 'literal' or record path."
    )
    all_fields: bool = Field(
        False,
        description="Also write every other top-level field of the record (objects and arrays as JSON; "
        "characters a key cannot hold become '_').",
    )

    @field_validator("signature_id", "name", "severity")
    @classmethod
    def _source(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("an empty list finds nothing; give at least one 'literal' or path")
            for source in value:
                _check_source(source)
            return value
        return _check_source(value)

    def header_sources(self) -> dict[str, tuple[str, ...]]:
        """Header field → the sources to try, in order."""
        fields = {"signature_id": self.signature_id, "name": self.name, "severity": self.severity}
        return {k: (v,) if isinstance(v, str) else tuple(v) for k, v in fields.items()}

    @field_validator("extensions")
    @classmethod
    def _extensions(cls, value: dict[str, str]) -> dict[str, str]:
        for key, source in value.items():
            if _KEY.fullmatch(key) is None:
                raise ValueError(f"key {key!r} must consist of A-Z, a-z, 0-9, '_', '.' and '-'")
            _check_source(source)
        return value


class MappingFile(Model):
    format: Literal["cef", "leef"] = Field(description="Body format the mapping writes.")
    vendor: str = Field(description="Device Vendor header field (text).")
    product: str = Field(description="Device Product header field (text).")
    version: str = Field(description="Device Version header field (text).")
    delimiter: str = Field(
        "\t", description="LEEF 2.0 attribute delimiter: one character such as '^'; default tab."
    )
    event_type: str | None = Field(None, description="Record path whose value picks the section in events.")
    events: dict[str, Section] = Field(default_factory=dict, description="Event type → section.")
    default: Section = Field(default_factory=Section, description="Section for all other records.")

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        # A delimiter inside a value is replaced by a space (LEEF has no escapes), so a space itself
        # cannot be one; the header names it as itself or as xHH, one byte.
        if (
            len(value) != 1
            or not (value == "\t" or "!" <= value <= "~")
            or _KEY.fullmatch(value)
            or value in "=|"
        ):
            raise ValueError(
                "must be a tab or one printable ASCII character other than a space, '=', '|' and the "
                "characters of keys (A-Z, a-z, 0-9, '_', '.', '-'), e.g. '^'"
            )
        return value

    @field_validator("event_type")
    @classmethod
    def _event_type(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("'") or _PATH.fullmatch(value) is None):
            raise ValueError(f"{value!r} is not a dotted record path such as metadata.eventType")
        return value


def load_mapping(ref: str) -> MappingFile:
    """A shipped mapping by name, or the user's YAML file; ValueError names the file and the problem."""
    path = MAPPINGS_DIR / f"{ref}.yaml" if ref in SHIPPED else Path(ref)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        shipped = ", ".join(SHIPPED)
        raise ValueError(
            f"cannot read mapping file {ref!r}: {exc.strerror or exc}; give a path to a YAML file or one "
            f"of the shipped mappings: {shipped}"
        ) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"mapping file {ref!r} is not valid YAML: {exc}") from None
    try:
        return MappingFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise ValueError(f"mapping file {ref!r}: {problems}") from None


def compact_json(value: Any) -> bytes:
    """``value`` as compact JSON on one line, whatever it holds (unknown types are written as text)."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits; the standard library writes them.
        return json.dumps(value, default=str, ensure_ascii=False, separators=(",", ":")).encode(
            errors="replace"
        )


def value_text(value: Any) -> str:
    """A record value as CEF/LEEF text: JSON spelling for booleans, objects and arrays."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return compact_json(value).decode()


class _CompiledSection:
    __slots__ = ("all_fields", "extensions", "header", "header_keys", "header_tops", "severity_map")

    def __init__(self, section: Section) -> None:
        sources = section.header_sources()
        # Every alternative of every header field is looked up in one pass, then the first found wins.
        self.header_keys = {field: [f"{field}.{i}" for i in range(len(s))] for field, s in sources.items()}
        self.header = compile_mapping(
            tuple((f"{field}.{i}", src) for field, s in sources.items() for i, src in enumerate(s))
        )
        self.extensions = compile_mapping(tuple(section.extensions.items()))
        self.severity_map = {k: str(v) for k, v in section.severity_map.items()}
        self.all_fields = section.all_fields
        # With all_fields, a top-level field the header already shows is not repeated as a pair; a
        # field the header shows only part of (event.Severity) is written whole.
        self.header_tops = frozenset(
            src for s in sources.values() for src in s if not _is_literal(src) and "." not in src
        )

    def apply(self, record: Record) -> tuple[dict[str, str], dict[str, str]]:
        found = self.header(record)
        header: dict[str, str] = {}
        for field, keys in self.header_keys.items():
            for key in keys:
                if key in found:
                    header[field] = value_text(found[key])
                    break
        severity = header.get("severity")
        if severity is not None and severity in self.severity_map:
            header["severity"] = self.severity_map[severity]
        pairs = {k: value_text(v) for k, v in self.extensions(record).items()}
        if self.all_fields:
            for key, value in record.items():
                if value is None or key in self.header_tops:
                    continue
                safe = _NOT_KEY_CHAR.sub("_", key) or "_"
                if safe not in pairs:
                    pairs[safe] = value_text(value)
        return header, pairs


class RecordMapper:
    """A loaded mapping as a function from a record to the shape ``encode_cef``/``encode_leef`` take."""

    def __init__(self, mapping: MappingFile) -> None:
        self.format = mapping.format
        self._m = mapping
        self._sections = {etype: _CompiledSection(s) for etype, s in mapping.events.items()}
        self._default = _CompiledSection(mapping.default)
        self._event_type: Callable[[Record], Record] | None = (
            compile_mapping((("t", mapping.event_type),)) if mapping.event_type else None
        )

    def __call__(self, record: Record) -> Record:
        section = self._default
        if self._event_type is not None:
            etype = self._event_type(record).get("t")
            if isinstance(etype, str):
                section = self._sections.get(etype, self._default)
        header, pairs = section.apply(record)
        m = self._m
        if self.format == "cef":
            return {
                "cef_version": 0,
                "device_vendor": m.vendor,
                "device_product": m.product,
                "device_version": m.version,
                "signature_id": header.get("signature_id", ""),
                "name": header.get("name", ""),
                "severity": header.get("severity", ""),
                "extensions": pairs,
            }
        d = m.delimiter
        return {
            "leef_version": "2.0",
            "device_vendor": leef_text(m.vendor, "|"),
            "device_product": leef_text(m.product, "|"),
            "device_version": leef_text(m.version, "|"),
            "event_id": leef_text(header.get("signature_id", ""), "|"),
            "delimiter": d,
            "attributes": {k: leef_text(v, d) for k, v in pairs.items()},
        }
