"""IBM LEEF 1.0 and 2.0: ``LEEF:Version|Vendor|Product|Version|EventID|[Delimiter|]attributes``.

LEEF 1.0 separates attributes by a tab. LEEF 2.0 adds a header field naming the separator, either as
the character itself (``^``) or as a hex code (``x09``, ``0x09``). LEEF defines no quoting and no
escapes, so a value runs to the next separator and may hold ``=``. The specs leave the header
escaping unconfirmed (crowdstrike.md §5: "The LEEF preset's exact header is unconfirmed"), so header
fields are taken as written, and an empty 2.0 delimiter field means a tab, the 1.0 separator.

    {"leef_version": "2.0", "device_vendor": "V", "device_product": "P", "device_version": "1.0",
     "event_id": "Login", "delimiter": "^", "attributes": {"usrName": "alice", "src": "10.0.0.1"}}
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from logferry.core.types import JSONValue, Record
from logferry.formats import ParseError

__all__ = ["encode_leef", "leef_text", "parse_leef"]

_HEX_DELIMITER = re.compile(r"0?[xX]([0-9A-Fa-f]{1,4})")
_TAB = "\t"
_LINE_BREAK = re.compile(r"\r\n?|\n")


def parse_leef(text: str) -> Record:
    """One LEEF line (without its syslog header) → record; raises ParseError for anything else."""
    if not text.startswith("LEEF:"):
        raise ParseError(f"not LEEF: expected 'LEEF:' at position 0, got {text[:10]!r}")
    text = text.rstrip("\r\n")
    parts = text.split("|", 5)
    if len(parts) < 6:
        raise ParseError(f"LEEF header has {len(parts) - 1} of its 5 '|'-terminated fields (truncated line?)")
    version = parts[0][5:]
    attrs_start = len(text) - len(parts[5])
    if version in ("1.0", "1"):
        delimiter = _TAB
    elif version in ("2.0", "2"):
        spec, bar, _ = parts[5].partition("|")
        if not bar:
            raise ParseError("LEEF 2.0 header has no delimiter field (truncated line?)")
        delimiter = _delimiter(spec, attrs_start)
        attrs_start += len(spec) + 1
    else:
        raise ParseError(f"unsupported LEEF version {version!r} (want 1.0 or 2.0)")
    return {
        "leef_version": version,
        "device_vendor": parts[1],
        "device_product": parts[2],
        "device_version": parts[3],
        "event_id": parts[4],
        "delimiter": delimiter,
        "attributes": _attributes(text, attrs_start, delimiter),
    }


def _delimiter(spec: str, pos: int) -> str:
    if len(spec) == 1:
        delimiter = spec
    elif not spec:
        delimiter = _TAB
    else:
        m = _HEX_DELIMITER.fullmatch(spec)
        if m is None:
            raise ParseError(f"LEEF 2.0 delimiter {spec!r} at position {pos} is not one character or xHH")
        delimiter = chr(int(m.group(1), 16))
    if delimiter in "=|":
        raise ParseError(f"LEEF 2.0 delimiter {delimiter!r} at position {pos} would be ambiguous")
    return delimiter


def _attributes(text: str, pos: int, delimiter: str) -> Record:
    attributes: Record = {}
    for segment in text[pos:].split(delimiter):
        # An empty segment is a doubled or trailing delimiter, which senders write; it holds nothing.
        if segment:
            key, eq, value = segment.partition("=")
            if not eq or not key:
                raise ParseError(f"expected key=value at position {pos}: {segment[:40]!r}")
            attributes[key] = value
        pos += len(segment) + 1
    return attributes


def _delimiter_field(delimiter: str) -> str:
    return delimiter if delimiter.isprintable() and delimiter != " " else f"x{ord(delimiter):02X}"


def leef_text(value: str, delimiter: str) -> str:
    """``value`` as LEEF can carry it: line breaks and ``delimiter`` (the attribute delimiter, or ``|`` for
    a header field) become spaces, since LEEF defines no escapes and the line must stay one record."""
    return _LINE_BREAK.sub(" ", value).replace(delimiter, " ")


def encode_leef(record: Mapping[str, JSONValue]) -> str:
    """The inverse of :func:`parse_leef` for records of its shape (values are written with ``str``).

    LEEF has no escapes: a ``|`` in a header field, or the delimiter in a key or value, cannot be
    written and raises ValueError, as does ``=`` in a key; :func:`leef_text` makes any text writable.
    """
    version = str(record.get("leef_version", "2.0"))
    v2 = version.startswith("2")
    delimiter = str(record.get("delimiter") or _TAB) if v2 else _TAB
    header = [str(record.get(name, "")) for name in ("device_vendor", "device_product", "device_version")]
    header.append(str(record.get("event_id", "")))
    if any("|" in field for field in header):
        raise ValueError("LEEF header fields cannot contain '|'")
    if v2:
        header.append(_delimiter_field(delimiter))
    pairs = []
    attributes: Mapping[str, JSONValue] = record.get("attributes") or {}
    for key, raw in attributes.items():
        value = str(raw)
        if not key or "=" in key or delimiter in key or delimiter in value:
            raise ValueError(f"LEEF attribute {key!r} cannot be written with delimiter {delimiter!r}")
        pairs.append(f"{key}={value}")
    return f"LEEF:{version}|{'|'.join(header)}|{delimiter.join(pairs)}"
