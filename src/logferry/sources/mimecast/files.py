"""Parsing SIEM log files: gzip NDJSON batch files and legacy ZIPs of key=value or JSON logs.

Bad input never stalls the source (mimecast.md §10: a truncated SIEM response held Elastic's
collector on one token for 7 days). A damaged file is handed back as a reject (it goes to the
dead letters with the reason) together with every record that could still be read, and the
caller moves on to the next file.

Record ids hash the record's own bytes: whether ``processingId`` or ``aggregateId`` is unique
per event is unconfirmed (§7.4), and a hash only ever merges byte-identical records, which are
the replays a crash or an overlapping listing produces.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from typing import Any

import orjson

from logferry.core.types import Record

__all__ = ["Parsed", "legacy_log_type", "parse_batch_file", "parse_legacy_zip"]

Parsed = tuple[list[Record], list[str], list[tuple[str, bytes]]]
_CHUNK = 1 << 16


def _fingerprint(raw: bytes) -> str:
    return hashlib.blake2b(raw, digest_size=12).hexdigest()


def _inflate(body: bytes) -> tuple[bytes, str | None]:
    """The gzip's content, or as much of it as precedes the damage and what went wrong."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    try:
        for i in range(0, len(body), _CHUNK):
            out += d.decompress(body[i : i + _CHUNK])
        out += d.flush()
    except zlib.error as exc:
        return bytes(out), f"corrupt gzip ({exc})"
    if not d.eof:
        return bytes(out), "truncated gzip (no end of stream)"
    return bytes(out), None


def parse_batch_file(body: bytes, log_type: str) -> Parsed:
    """Records of one batch file (gzip NDJSON); ids are ``timestamp|fingerprint``."""
    text, damage = _inflate(body)
    rejects: list[tuple[str, bytes]] = []
    if damage is not None:
        # The bytes after the last newline belong to a line the damage cut short.
        text = text[: text.rfind(b"\n") + 1]
        kept = text.count(b"\n")
        rejects.append((f"{log_type} batch file: {damage}; kept the {kept} complete lines before it", body))
    records: list[Record] = []
    ids: list[str] = []
    for n, line in enumerate(text.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            rejects.append((f"{log_type} batch file line {n} is not JSON: {exc}", line))
            continue
        if not isinstance(rec, dict):
            rejects.append((f"{log_type} batch file line {n} is not a JSON object", line))
            continue
        ts = rec.get("timestamp")
        stamp = f"{ts:014d}" if isinstance(ts, int) and not isinstance(ts, bool) and ts >= 0 else "0" * 14
        records.append(rec)
        ids.append(f"{stamp}|{_fingerprint(line)}")
    return records, ids, rejects


def legacy_log_type(file_name: str) -> str:
    """The log type a legacy file's name starts with; ``ttp_*`` types keep two segments (§6)."""
    base = file_name.rsplit("/", 1)[-1]
    parts = base.split("_")
    return "_".join(parts[:2]) if parts[0] == "ttp" and len(parts) > 1 else parts[0].split(".")[0]


def _key_value(text: str, name: str, log_type: str) -> Parsed:
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    # Records start a line with datetime=; the same text inside a value (a URL's query) is data.
    head, *chunks = re.split(r"(?m)^[ \t]*datetime=", text)
    if head.strip():
        rejects.append((f"legacy file {name}: text before the first datetime= record", head.encode()))
    for chunk in chunks:
        line = "datetime=" + chunk.strip()
        rec: dict[str, Any] = {}
        for pair in line.split("|"):
            key, sep, value = pair.partition("=")
            if not sep or not key:
                rec = {}
                break
            rec[key] = value
        if not rec:
            rejects.append(
                (f"legacy file {name}: a record is not a |-separated list of key=value", line.encode())
            )
            continue
        rec["logType"] = log_type
        records.append(rec)
        ids.append(f"{rec['datetime']}|{_fingerprint(line.encode())}")
    return records, ids, rejects


def _json_file(raw: bytes, name: str, log_type: str) -> Parsed:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return [], [], [(f"legacy file {name} is not JSON: {exc}", raw)]
    data = doc.get("data") if isinstance(doc, dict) else None
    if not isinstance(data, list):
        return [], [], [(f"legacy file {name} has no data list", raw)]
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    for item in data:
        encoded = orjson.dumps(item)
        if not isinstance(item, dict):
            rejects.append((f"legacy file {name}: an entry is not a JSON object", encoded))
            continue
        records.append({**item, "logType": log_type})
        ids.append(f"{item.get('datetime', '')}|{_fingerprint(encoded)}")
    return records, ids, rejects


def parse_legacy_zip(body: bytes, file_format: str) -> Parsed:
    """Records of every file in a ``get-siem-logs`` ZIP, each tagged with its ``logType``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(body))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        return [], [], [(f"get-siem-logs answer is not a readable ZIP: {exc}", body)]
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    for info in members:
        if info.is_dir():
            continue
        try:
            raw = archive.read(info)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
            rejects.append((f"legacy file {info.filename} cannot be extracted: {exc}", body))
            continue
        log_type = legacy_log_type(info.filename)
        if file_format == "json":
            parsed = _json_file(raw, info.filename, log_type)
        else:
            parsed = _key_value(raw.decode("utf-8", "replace"), info.filename, log_type)
        records.extend(parsed[0])
        ids.extend(parsed[1])
        rejects.extend(parsed[2])
    return records, ids, rejects
