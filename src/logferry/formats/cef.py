"""ArcSight CEF: ``CEF:Version|Vendor|Product|Version|SignatureID|Name|Severity|Extension``.

The escaping is the one the Falcon SIEM Connector's template declares (crowdstrike.md §5): in the
header ``\\|`` and ``\\\\`` (``escape_header``); in the extension ``\\\\``, ``\\=``, ``\\n`` and ``\\r``
(``escape_ext``), pairs separated by a space (``field_delim`` empty) with no value quoting
(``val_enclosure`` empty). Extension values may hold spaces: a value ends at the space before the
next ``key=``. Any other backslash sequence is kept as written, since only those escapes are defined.

A record keeps the header under fixed names and the extension as its own object, so an extension key
called ``name`` cannot shadow the header field and :func:`encode_cef` can rebuild the line::

    {"cef_version": 0, "device_vendor": "CrowdStrike", "device_product": "FalconHost",
     "device_version": "1.0", "signature_id": "DetectionSummaryEvent", "name": "DetectionSummaryEvent",
     "severity": "2", "extensions": {"duser": "alice", "msg": "a b"}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from logferry.core.types import JSONValue, Record
from logferry.formats import ParseError
from logferry.formats.kv import KEY_PATTERN, KVParser

__all__ = ["HEADER_FIELDS", "encode_cef", "parse_cef"]

HEADER_FIELDS = ("device_vendor", "device_product", "device_version", "signature_id", "name", "severity")

_EXT_UNESCAPE = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}
_EXT_ESCAPED = re.compile(r"\\([\\=nr])")
_EXT_TO_ESCAPE = re.compile(r"[\\=\n\r]")
_EXT_ESCAPE = {"\\": "\\\\", "=": "\\=", "\n": "\\n", "\r": "\\r"}
_KEY = re.compile(KEY_PATTERN)
_HEADER_BREAK = re.compile(r"\r\n?|\n")
_HEADER_SPECIAL = re.compile(r"[\\|\r\n]")


def _unescape_ext(value: str) -> str:
    return _EXT_ESCAPED.sub(lambda m: _EXT_UNESCAPE[m.group(1)], value)


_EXTENSION = KVParser(quote=None, unescape=_unescape_ext)


def parse_cef(text: str) -> Record:
    """One CEF line (without its syslog header) → record; raises ParseError for anything else."""
    if not text.startswith("CEF:"):
        raise ParseError(f"not CEF: expected 'CEF:' at position 0, got {text[:10]!r}")
    text = text.rstrip("\r\n")
    parts = text.split("|", 7)
    if len(parts) == 8:
        ext_start = len(text) - len(parts[7])
        if "\\" in text[:ext_start]:
            parts, ext_start = _split_escaped_header(text)
    else:
        parts, ext_start = _split_escaped_header(text)
    version = parts[0][4:]
    if not (version.isdigit() and version.isascii()):
        raise ParseError(f"CEF version {version!r} is not a number")
    record: Record = {"cef_version": int(version)}
    for name, value in zip(HEADER_FIELDS, parts[1:], strict=False):
        record[name] = value
    # Positions in extension errors count from the start of the line.
    record["extensions"] = _EXTENSION.parse(text, ext_start)
    return record


def _split_escaped_header(text: str) -> tuple[list[str], int]:
    """The slow path for headers holding ``\\|`` or ``\\\\``; also reports truncated headers."""
    fields: list[str] = []
    chars: list[str] = []
    i, n = 0, len(text)
    while i < n and len(fields) < 7:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "|\\":
            chars.append(text[i + 1])
            i += 2
            continue
        if c == "|":
            fields.append("".join(chars))
            chars.clear()
        else:
            chars.append(c)
        i += 1
    if len(fields) < 7:
        raise ParseError(f"CEF header has {len(fields)} of its 7 '|'-terminated fields (truncated line?)")
    return fields, i


def _escape_header(value: str) -> str:
    if _HEADER_SPECIAL.search(value) is None:  # the common case: nothing to escape
        return value
    # CEF allows line breaks only in extension values; a header keeps its line unbroken with a space.
    return _HEADER_BREAK.sub(" ", value.replace("\\", "\\\\").replace("|", "\\|"))


def _escape_ext(value: str) -> str:
    return _EXT_TO_ESCAPE.sub(lambda m: _EXT_ESCAPE[m.group(0)], value)


def encode_cef(record: Mapping[str, JSONValue]) -> str:
    """The inverse of :func:`parse_cef` for records of its shape (values are written with ``str``).

    CEF cannot carry trailing spaces in an extension value (the separator absorbs them), so they are
    dropped, nor a line break in a header field, which becomes a space; keys that are not
    ``[A-Za-z0-9_.-]+`` raise ValueError, as no reader could split them.
    """
    head = "|".join(_escape_header(str(record.get(name, ""))) for name in HEADER_FIELDS)
    pairs = []
    extensions: Mapping[str, JSONValue] = record.get("extensions") or {}
    for key, value in extensions.items():
        if _KEY.fullmatch(key) is None:
            raise ValueError(f"CEF extension key {key!r} is not [A-Za-z0-9_.-]+")
        pairs.append(f"{key}={_escape_ext(str(value)).rstrip(' ')}")
    return f"CEF:{record.get('cef_version', 0)}|{head}|{' '.join(pairs)}"
