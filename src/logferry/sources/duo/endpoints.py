"""The five Duo log endpoints: their paths, query parameters and page shapes (specs/duo.md §4, §6, §7).

Each parser turns one response body into records, ascending dedupe ids, rejects and the raw
continuation the endpoint hands back. Nothing here raises on vendor data: a page or record that
is not what the spec describes becomes a reject (dead letter) and collection moves on; an answer
that is not a log page at all raises :class:`MalformedPage` (retried, then stepped over).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from logferry.core.errors import MalformedPage
from logferry.core.types import Record

from .config import LogType

__all__ = ["ENDPOINTS", "Endpoint", "Parsed", "parse"]


@dataclass(frozen=True)
class Endpoint:
    path: str
    #: Where the records are: a key of ``response``, or None when ``response`` is the list itself.
    items: str | None
    #: The query parameter that carries the continuation back.
    offset_param: str | None


ENDPOINTS: dict[LogType, Endpoint] = {
    "authentication": Endpoint("/admin/v2/logs/authentication", "authlogs", "next_offset"),
    "administrator": Endpoint("/admin/v1/logs/administrator", None, None),
    "telephony": Endpoint("/admin/v2/logs/telephony", "items", "next_offset"),
    "activity": Endpoint("/admin/v2/logs/activity", "items", "next_offset"),
    # Trust Monitor is v1 and takes the previous metadata.next_offset as `offset` (§6 notes).
    "trust_monitor": Endpoint("/admin/v1/trust_monitor/events", "events", "offset"),
}


@dataclass
class Parsed:
    records: list[Record]
    ids: list[str]
    rejects: list[tuple[str, bytes]]
    #: The continuation as the next request sends it (``"ts,id"``), None when the query is done.
    next_offset: str | None
    #: Record times (seconds) for the administrator log, which pages by time.
    times: list[int]
    #: The administrator answer went past ``until``; what lay beyond was left for the next window.
    beyond: bool = False


def _id(log_type: LogType, rec: dict[str, Any]) -> tuple[str, int | None] | None:
    """The record's dedupe id (ascending with time) and, for administrator records, its time."""
    if log_type == "authentication":
        ts, key = rec.get("timestamp"), rec.get("txid")
    elif log_type == "telephony":
        ts, key = rec.get("ts"), rec.get("telephony_id")
    elif log_type == "activity":
        ts, key = rec.get("ts"), rec.get("activity_id")
    elif log_type == "trust_monitor":
        ts, key = rec.get("surfaced_timestamp"), rec.get("sekey")
    else:
        ts = rec.get("timestamp")
        if not isinstance(ts, int) or isinstance(ts, bool):
            return None
        # Administrator records carry no id: the record's own content is its identity.
        digest = hashlib.sha256(orjson.dumps(rec, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
        return f"{ts:011d}|{digest}", ts
    if isinstance(ts, bool) or not isinstance(ts, int | str) or not isinstance(key, str) or not key:
        return None
    stamp = f"{ts:014d}" if isinstance(ts, int) else ts
    return f"{stamp}|{key}", None


def _offset(metadata: Any) -> str | None:
    value = metadata.get("next_offset") if isinstance(metadata, dict) else None
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        # The authentication log hands back ["ts", "txid"]; it is sent back comma-joined.
        return ",".join(str(v) for v in value)
    if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
        return str(value)
    return None


def parse(log_type: LogType, body: bytes, until: int | None = None) -> Parsed:
    """``until`` (seconds): the administrator log has no maxtime, so its answer is cut at the first
    record of that second or later; the next window reads those records (and rejects) itself."""
    endpoint = ENDPOINTS[log_type]
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedPage(f"Duo {log_type} page is not JSON: {exc}", body) from None
    if not isinstance(doc, dict) or doc.get("stat") != "OK" or "response" not in doc:
        raise MalformedPage(f"Duo {log_type} page is not a stat=OK envelope", body)
    response = doc["response"]
    if endpoint.items is None:
        raw, metadata = response, None
    elif isinstance(response, dict):
        raw = response.get(endpoint.items)
        # v2 logs keep metadata inside response; generic endpoints at the top level (§4).
        metadata = doc.get("metadata") or response.get("metadata")
    else:
        raw, metadata = None, None
    if not isinstance(raw, list):
        where = f"response.{endpoint.items}" if endpoint.items else "response"
        raise MalformedPage(f"Duo {log_type} page has no {where} list", body)
    out = Parsed([], [], [], _offset(metadata), [])
    for rec in raw:
        ident = _id(log_type, rec) if isinstance(rec, dict) else None
        if until is not None and ident is not None and ident[1] is not None and ident[1] >= until:
            out.beyond = True
            break
        if ident is None:
            out.rejects.append((f"Duo {log_type} record lacks its id or time", orjson.dumps(rec)))
            continue
        out.records.append(rec)
        out.ids.append(ident[0])
        if ident[1] is not None:
            out.times.append(ident[1])
    return out
