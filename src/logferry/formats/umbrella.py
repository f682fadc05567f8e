"""Cisco Umbrella S3 log exports: object keys, and gzip CSV rows decoded into typed records.

Umbrella writes one gzip CSV object per log type every ten minutes under
``<prefix>/<type>logs/<YYYY-MM-DD>/<YYYY-MM-DD>-<hh>-<mm>-<xxxx>.csv.gz``. Columns are positional and
each log version *appends* columns, so a row is named by the longest known column list cut to its
own length (older versions and missing trailing columns both fit). A row longer than every known
version comes from a version this module does not know: it becomes ``column_1 … column_n`` plus
``umbrella_unknown_version: true`` for the receiver to count, never an error. A row shorter than the
oldest known version cannot be named and raises :class:`ParseError`.

    key = parse_object_key("acme/dnslogs/2019-01-01/2019-01-01-00-00-e4e1.csv.gz")
    records, rejects = decode_gzip(body, key.log_type)

The key carries the log type but not the version (the spec names no version marker in keys or
rows), so the version is told by the column count alone.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final, cast

from logferry.core.types import Record
from logferry.formats import ParseError

__all__ = [
    "SCHEMAS",
    "UNKNOWN_VERSION_FLAG",
    "Reject",
    "Schema",
    "UmbrellaKey",
    "decode_gzip",
    "decode_row",
    "iter_gzip",
    "iter_rows",
    "parse_object_key",
]

UNKNOWN_VERSION_FLAG: Final = "umbrella_unknown_version"

Convert = Callable[[str], object]


def _int(v: str) -> object:
    # A value that is not a number stays as logged: one odd cell must not cost the row.
    if v.isdigit() and v.isascii():
        return int(v)
    return v or None


def _timestamp(v: str) -> object:
    # Umbrella writes UTC as "yyyy-MM-dd HH:mm:ss"; slicing keeps this off the datetime parser.
    if len(v) == 19 and v[10] == " " and v[4] == "-" and v[13] == ":":
        return f"{v[:10]}T{v[11:]}Z"
    return v or None


def _list(v: str) -> object:
    # List columns are comma-joined inside one field. Identities are not split: names such as
    # "Last, First (user@x)" contain commas themselves.
    return v.replace(", ", ",").split(",") if v else []


def _origin(v: str) -> object:
    # Cloud firewall origin ids come bracketed, "[211039844]".
    return _int(v.strip("[]"))


def _kv_text(v: str) -> object:
    # Audit before/after values are newline-separated "key: value" lines; other text stays as-is.
    if not v:
        return None
    out: dict[str, str] = {}
    for line in v.split("\n"):
        key, sep, value = line.partition(":")
        if not sep:
            return v
        out[key.strip()] = value.strip()
    return out


_CONVERT: dict[str, Convert] = {
    "timestamp": _timestamp,
    "first_packet_timestamp": _timestamp,
    "last_packet_timestamp": _timestamp,
    "categories": _list,
    "blocked_categories": _list,
    "identity_types": _list,
    "destination_list_ids": _list,
    "origin_id": _origin,
    "before": _kv_text,
    "after": _kv_text,
    **dict.fromkeys(
        (
            "id",
            "source_port",
            "destination_port",
            "status_code",
            "request_size",
            "response_size",
            "response_body_size",
            "packet_size",
            "rule_id",
            "ruleset_id",
            "gid",
            "sid",
            "packets_sent",
            "packets_received",
            "bytes_sent",
            "bytes_received",
        ),
        _int,
    ),
}


@dataclass(frozen=True, slots=True)
class Schema:
    """One log type's columns in order, and the column count of each known version."""

    log_type: str
    columns: tuple[str, ...]
    versions: dict[str, int]

    def __post_init__(self) -> None:
        if max(self.versions.values()) != len(self.columns):
            raise ValueError(f"{self.log_type}: the longest version must name every column")


_DNS_13 = (
    "timestamp",
    "most_granular_identity",
    "identities",
    "internal_ip",
    "external_ip",
    "action",
    "query_type",
    "response_code",
    "domain",
    "categories",
    "most_granular_identity_type",
    "identity_types",
    "blocked_categories",
)
_PROXY_23 = (
    "timestamp",
    "policy_identity",
    "internal_ip",
    "external_ip",
    "destination_ip",
    "content_type",
    "action",
    "url",
    "referer",
    "user_agent",
    "status_code",
    "request_size",
    "response_size",
    "response_body_size",
    "sha256",
    "categories",
    "av_detections",
    "puas",
    "amp_disposition",
    "amp_malware_name",
    "amp_score",
    "policy_identity_type",
    "blocked_categories",
)
_FIREWALL_14 = (
    "timestamp",
    "origin_id",
    "identity",
    "identity_type",
    "direction",
    "ip_protocol",
    "packet_size",
    "source_ip",
    "source_port",
    "destination_ip",
    "destination_port",
    "data_center",
    "rule_id",
    "verdict",
)
_FIREWALL_CCP = (
    "first_packet_timestamp",
    "last_packet_timestamp",
    "packets_sent",
    "packets_received",
    "bytes_sent",
    "bytes_received",
    "fw_event_id",
    "destination_country",
    "aws_region",
    "app_id",
    "private_app_id",
    "private_flow",
    "posture_id",
    "casi_category_ids",
    "traffic_source",
    "content_category_ids",
    "content_category_list_ids",
    "organization_id",
    "egress_ip",
    "egress",
    "event_correlation_id",
)

# Version labels are the spec's where it names one; where it only says "newer versions append" the
# label says which source shows the layout. Proxy columns the Sentinel CCP schema lists after the 35th
# are left unnamed: the spec does not confirm they follow it directly, so such rows stay raw.
SCHEMAS: Final[dict[str, Schema]] = {
    s.log_type: s
    for s in (
        Schema(
            "dns",
            (*_DNS_13, "rule_id", "destination_countries", "organization_id"),
            # 10 columns: Elastic's 2015 test data; which versions add the three CCP columns is unconfirmed.
            {"legacy": 10, "classic": 13, "ccp+rule_id": 14, "ccp+countries": 15, "ccp": 16},
        ),
        Schema(
            "proxy",
            (
                *_PROXY_23,
                "identities",
                "identity_types",
                "request_method",
                "dlp_status",
                "certificate_errors",
                "file_name",
                "ruleset_id",
                "rule_id",
                "destination_list_ids",
                "isolate_action",
                "file_action",
                "warn_status",
            ),
            {"v4": 23, "v5": 26, "v6": 32, "elastic+isolate": 33, "elastic": 35},
        ),
        Schema(
            "ip",
            (
                "timestamp",
                "identity",
                "source_ip",
                "source_port",
                "destination_ip",
                "destination_port",
                "categories",
            ),
            {"base": 7},
        ),
        Schema(
            "firewall",
            (*_FIREWALL_14, "fqdns", "destination_list_ids", *_FIREWALL_CCP),
            {"base": 14, "elastic": 16, "ccp": 37},
        ),
        Schema(
            "audit",
            ("id", "timestamp", "email", "user", "type", "action", "logged_in_from", "before", "after"),
            {"base": 9},
        ),
        Schema(
            "intrusion",
            (
                "timestamp",
                "identities",
                "identity_types",
                "gid",
                "sid",
                "message",
                "signature_list_id",
                "severity",
                "classification",
                "cves",
                "protocol",
                "session_id",
                "source_ip",
                "source_port",
                "destination_ip",
                "destination_port",
                "action",
            ),
            {"base": 17},
        ),
    )
}

# Folder names vary by product and age (cloudfirewalllogs, cdfwlogs, firewalllogs, and the docs'
# "firewallogs" typo). dlp, ravpn and ztna have no column list in the spec: their rows stay raw.
_FOLDERS: Final = {
    "dnslogs": "dns",
    "proxylogs": "proxy",
    "iplogs": "ip",
    "firewalllogs": "firewall",
    "firewallogs": "firewall",
    "cloudfirewalllogs": "firewall",
    "cdfwlogs": "firewall",
    "intrusionlogs": "intrusion",
    "auditlogs": "audit",
    "dlplogs": "dlp",
    "ravpnlogs": "ravpn",
    "vpnlogs": "ravpn",
    "ztnalogs": "ztna",
}
_HEADER_FIRST_CELLS = frozenset(("id", "timestamp", "time"))


# The common converters inlined as expressions on a cell ("$"): a call per cell costs more than the
# work itself on rows of 30 columns. Each must give what its function gives (a test checks).
_INLINE: dict[Convert, str] = {
    _int: "(int($) if $.isdigit() and $.isascii() else $ or None)",
    _timestamp: '(f"{$[:10]}T{$[11:]}Z" if len($) == 19 and $[10] == " " and $[4] == "-" and $[13] == ":" '
    "else $ or None)",
    _list: '($.replace(", ", ",").split(",") if $ else [])',
}

RowBuilder = Callable[[list[str]], Record]


def _compile(log_type: str, names: tuple[str, ...]) -> RowBuilder:
    """One layout's record as a single dict display; the names are this module's constants."""
    env: dict[str, object] = {}
    cells: list[str] = []
    items = [f"{'log_type'!r}: {log_type!r}"]
    for i, name in enumerate(names):
        convert = _CONVERT.get(name)
        if convert is None:
            items.append(f"{name!r}: f[{i}]")
        elif convert in _INLINE:
            cells.append(f"c{i} = f[{i}]")
            items.append(f"{name!r}: {_INLINE[convert].replace('$', f'c{i}')}")
        else:
            env[convert.__name__] = convert
            items.append(f"{name!r}: {convert.__name__}(f[{i}])")
    body = "".join(f"    {c}\n" for c in cells)
    source = f"def build(f):\n{body}    return {{{', '.join(items)}}}\n"
    exec(compile(source, f"<umbrella {log_type} {len(names)} columns>", "exec"), env)
    return cast(RowBuilder, env["build"])


class _Plan:
    """Per log type: a compiled record builder for every row length a known version can have."""

    __slots__ = ("builders", "min_columns")

    def __init__(self, schema: Schema | None) -> None:
        self.builders: dict[int, RowBuilder] = {}
        self.min_columns = 1
        if schema is None:
            return
        self.min_columns = min(schema.versions.values())
        for n in range(self.min_columns, len(schema.columns) + 1):
            self.builders[n] = _compile(schema.log_type, schema.columns[:n])


_PLANS: dict[str, _Plan] = {t: _Plan(s) for t, s in SCHEMAS.items()}
_RAW_PLAN = _Plan(None)


def decode_row(log_type: str, fields: list[str]) -> Record:
    """One CSV row (already split) as a record; too few columns for any known version raise."""
    plan = _PLANS.get(log_type, _RAW_PLAN)
    n = len(fields)
    build = plan.builders.get(n)
    if build is not None:
        try:
            return build(fields)
        except ValueError as exc:
            # int() refuses a digit string longer than Python's limit (4300 digits): a cell no real
            # export holds, so the row is rejected rather than kept with one column retyped.
            raise ParseError(f"{log_type} row: a cell cannot be converted: {exc}") from None
    if n < plan.min_columns:
        raise ParseError(f"{log_type} row has {n} columns; the oldest known version has {plan.min_columns}")
    rec: Record = {"log_type": log_type, UNKNOWN_VERSION_FLAG: True}
    for i, v in enumerate(fields, 1):
        rec[f"column_{i}"] = v
    return rec


@dataclass(frozen=True, slots=True)
class Reject:
    """A row that could not be decoded: where it ended in the file, why, and its cells for a dead letter."""

    line: int
    reason: str
    fields: tuple[str, ...]


def iter_rows(data: bytes) -> Iterator[tuple[int, list[str]] | Reject]:
    """Split a gzip CSV object into ``(line, cells)`` per data row, not yet decoded.

    The optional header row of v11 is skipped; a row csv cannot split is a :class:`Reject`. A
    corrupt or truncated gzip stream raises :class:`ParseError` once the rows before the damage
    are out: what follows the damage cannot be read from this copy of the object, and an S3 object
    is written whole, so fetching it again gives the same bytes. The caller keeps the rows already
    yielded and reports the rest as lost (logferry's S3 source dead-letters the object's head).
    """
    text = _text(data)
    # skipinitialspace absorbs the '", "' delimiter of the vendor samples; csv keeps quoted newlines,
    # so a multi-line audit before/after value stays in one row.
    reader = csv.reader(text, skipinitialspace=True)
    first = True
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except (OSError, EOFError, zlib.error) as exc:
            # BadGzipFile is an OSError; EOFError means the stream ends before its trailer.
            raise ParseError(f"not a complete gzip stream: {exc}") from None
        except csv.Error as exc:
            yield Reject(reader.line_num, f"CSV: {exc}", ())
            continue
        if not fields:
            continue
        if first:
            first = False
            if fields[0].strip().lower() in _HEADER_FIRST_CELLS:
                continue
        yield reader.line_num, fields


def iter_gzip(data: bytes, log_type: str) -> Iterator[Record | Reject]:
    """Decode a gzip CSV object row by row (:func:`iter_rows`, then :func:`decode_row`); a corrupt or
    truncated stream raises :class:`ParseError` after the rows before the damage."""
    for item in iter_rows(data):
        if isinstance(item, Reject):
            yield item
            continue
        line, fields = item
        try:
            yield decode_row(log_type, fields)
        except ParseError as exc:
            yield Reject(line, str(exc), tuple(fields))


def decode_gzip(data: bytes, log_type: str) -> tuple[list[Record], list[Reject]]:
    """The records and rejects of one gzip CSV object (see :func:`iter_gzip`)."""
    records: list[Record] = []
    rejects: list[Reject] = []
    for item in iter_gzip(data, log_type):
        if isinstance(item, Reject):
            rejects.append(item)
        else:
            records.append(item)
    return records, rejects


def _text(data: bytes) -> io.TextIOWrapper:
    # GzipFile inflates as it is read, so a large object never exists decompressed at once. newline=""
    # hands csv the line ends untouched, as it needs for quoted newlines. Invalid UTF-8 is replaced
    # rather than failing the object: one odd byte must not cost every row.
    raw = gzip.GzipFile(fileobj=io.BytesIO(data), mode="rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


@dataclass(frozen=True, slots=True)
class UmbrellaKey:
    """An object key: ``<prefix>/<folder>/<YYYY-MM-DD>/<YYYY-MM-DD>-<hh>-<mm>-<xxxx>.csv.gz``."""

    prefix: str
    folder: str
    log_type: str
    date: str
    time: str
    suffix: str


def parse_object_key(key: str) -> UmbrellaKey:
    """The parts of an Umbrella object key; a folder the spec does not name is its own type, raw."""
    parts = key.split("/")
    if len(parts) < 3:
        raise ParseError(f"key {key!r} is not <folder>/<YYYY-MM-DD>/<file>.csv.gz")
    folder, day, name = parts[-3:]
    if not name.endswith(".csv.gz"):
        raise ParseError(f"key {key!r}: the object is not a .csv.gz file")
    stem = name[: -len(".csv.gz")].split("-")
    if len(stem) != 6 or not _is_date(day) or "-".join(stem[:3]) != day:
        raise ParseError(f"key {key!r}: the file name is not {day}-<hh>-<mm>-<xxxx>.csv.gz")
    hh, mm, suffix = stem[3:]
    if not (len(hh) == 2 and hh.isdigit() and len(mm) == 2 and mm.isdigit() and suffix.isalnum()):
        raise ParseError(f"key {key!r}: the file name is not <date>-<hh>-<mm>-<xxxx>.csv.gz")
    log_type = _FOLDERS.get(folder, folder.removesuffix("logs"))
    return UmbrellaKey("/".join(parts[:-3]), folder, log_type, day, f"{hh}:{mm}", suffix)


def _is_date(s: str) -> bool:
    return len(s) == 10 and s[4] == s[7] == "-" and (s[:4] + s[5:7] + s[8:]).isdigit()
