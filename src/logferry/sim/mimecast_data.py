"""Deterministic Mimecast data: audit events, SIEM batch files and legacy SIEM log files.

Everything is computed from (seed, index) and a time origin, so a backlog of any size costs
nothing until served and a test can compute exactly what a client must end up with. Items are
evenly spaced in time from ``origin``; with ``live`` off nothing appears after the simulator
started, with it on, items keep appearing at the same spacing as wall time passes.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import io
import math
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "AUDIT_TIME_FORMAT",
    "CG_TYPES",
    "AuditLog",
    "BatchFiles",
    "LegacyLogs",
    "Timeline",
    "corrupt_gzip",
]

AUDIT_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S+0000"
#: Cloud Gateway batch types (mimecast.md §7.1).
CG_TYPES = (
    "receipt",
    "process",
    "delivery",
    "av",
    "spam",
    "internal email protect",
    "impersonation protect",
    "url protect",
    "attachment protect",
    "journal",
)
_AUDIT_KINDS = (
    ("User Logged On", "authentication_logs", "Successful authentication for {user}"),
    ("Logon Authentication Failed", "authentication_logs", "Failed authentication for {user}"),
    ("Policy Updated", "policy_logs", "Policy 'Block executables' changed by {user}"),
    ("Search Executed", "archive_search_logs", "Archive search by {user}"),
    ("Account Updated", "account_logs", "Account settings changed by {user}"),
    ("Held Message Released", "other", "Message released by {user}"),
)
_USERS = ("john@example.com", "anna@example.com", "jörg@example.de", "li.wei@example.cn", "admin@example.com")
_APPS = ("Administration Console", "Mimecast for Outlook", "Mimecast API", "Mobile App")
_METHODS = ("Cloud", "SAML", "Domain")
_LEGACY_TYPES = ("receipt", "process", "delivery", "ttp_url", "ttp_attachment")


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()


@dataclass(frozen=True)
class Timeline:
    """``count`` backlog items spaced ``spacing`` seconds apart, ending at ``start``; more while live."""

    origin: float  # epoch seconds of item 0's slot start
    spacing: float
    backlog: int
    live: bool

    def available(self, now: float) -> int:
        """How many items exist at ``now`` (item i exists from its own time, ``time_of(i)``)."""
        if not self.live:
            return self.backlog
        return max(self.backlog, int((now - self.origin) / self.spacing + 0.5))

    def time_of(self, i: int) -> float:
        return self.origin + (i + 0.5) * self.spacing

    def first_at_or_after(self, t: float) -> int:
        return max(0, math.ceil((t - self.origin) / self.spacing - 0.5))


class AuditLog:
    """Audit events; event i happens at ``timeline.time_of(i)`` (second resolution on the wire)."""

    def __init__(self, seed: int, timeline: Timeline) -> None:
        self.seed = seed
        self.timeline = timeline

    def event_second(self, i: int) -> int:
        return int(self.timeline.time_of(i))

    def query(self, start: int, end: int, now: float, categories: frozenset[str]) -> list[int]:
        """Indices of existing events with ``start <= eventTime <= end`` (seconds, both inclusive:
        Mimecast does not say; inclusive ends make overlapping windows repeat events, which a
        client must dedupe)."""
        tl = self.timeline
        lo = tl.first_at_or_after(float(start))
        hi = min(tl.available(now), tl.first_at_or_after(float(end + 1)))
        out = [i for i in range(lo, hi) if start <= self.event_second(i) <= end]
        if categories:
            out = [i for i in out if self.kind(i)[1] in categories]
        return out

    def kind(self, i: int) -> tuple[str, str, str]:
        return _AUDIT_KINDS[_digest(self.seed, "audit", i)[0] % len(_AUDIT_KINDS)]

    def event_id(self, i: int) -> str:
        return "eNq" + base64.urlsafe_b64encode(_digest(self.seed, "audit-id", i)).decode().rstrip("=")

    def render(self, i: int) -> dict[str, Any]:
        d = _digest(self.seed, "audit", i)
        audit_type, category, info = self.kind(i)
        user = _USERS[d[1] % len(_USERS)]
        when = dt.datetime.fromtimestamp(self.event_second(i), dt.UTC)
        ip = f"198.51.100.{d[2]}"
        event_info = (
            f"{info.format(user=user)}, Date: {when:%Y-%m-%d}, Time: {when:%H:%M:%S}, IP: {ip}, "
            f"Application: {_APPS[d[3] % len(_APPS)]}, Method: {_METHODS[d[4] % len(_METHODS)]}"
        )
        return {
            "id": self.event_id(i),
            "auditType": audit_type,
            "user": user,
            "eventTime": when.strftime(AUDIT_TIME_FORMAT),
            "eventInfo": event_info,
            "category": category,
        }


class BatchFiles:
    """SIEM batch files of one Cloud Gateway type; file i holds ``records_per_file`` NDJSON events."""

    def __init__(self, seed: int, log_type: str, timeline: Timeline, records_per_file: int) -> None:
        self.seed = seed
        self.log_type = log_type
        self.timeline = timeline
        self.records_per_file = records_per_file

    def records(self, i: int) -> Iterator[dict[str, Any]]:
        tl = self.timeline
        base_ms = int((tl.origin + i * tl.spacing) * 1000)
        step_ms = max(1, int(tl.spacing * 1000) // self.records_per_file)
        for j in range(self.records_per_file):
            d = _digest(self.seed, self.log_type, i, j)
            rec: dict[str, Any] = {
                "_offset": i * self.records_per_file + j,
                "_partition": d[0] % 64,
                "accountId": "CUSB4A274",
                # A message's events share an aggregateId; processingId is per event in the simulator.
                "aggregateId": base64.urlsafe_b64encode(_digest(self.seed, "agg", i, j // 2)).decode()[:22],
                "processingId": f"{self.log_type}:{i}:{j}:" + d.hex()[:12],
                "timestamp": base_ms + j * step_ms,
                "type": self.log_type,
                "subtype": None,
            }
            if self.log_type == "delivery":
                rec.update(
                    delivered="true",
                    deliveryAttempts="1",
                    direction="Inbound",
                    emailSize=str(2000 + d[1] * 10),
                    messageId=f"<{d.hex()[:16]}@example.com>",
                    recipients=_USERS[d[2] % len(_USERS)],
                    senderEnvelope="news@example.org",
                    subject="Weekly report ✓",
                    tlsUsed="Yes",
                    tlsVersion="TLSv1.3",
                )
            elif self.log_type == "attachment protect":
                rec.update(fileExtension="pdf", fileName=f"invoice-{d[1]}.pdf", sha256=d.hex() * 2)
            yield rec

    def body(self, i: int) -> bytes:
        lines = b"".join(orjson.dumps(r) + b"\n" for r in self.records(i))
        return gzip.compress(lines, compresslevel=1, mtime=0)


def corrupt_gzip(body: bytes, i: int) -> bytes:
    """A broken version of a batch file: truncated gzip, or a valid gzip with a non-JSON line."""
    if i % 2 == 0:
        return body[: max(10, len(body) // 2)]
    text = gzip.decompress(body)
    cut = text.index(b"\n") + 1
    return gzip.compress(text[:cut] + b'{ "type" : "MTA", "data" : \n' + text[cut:], compresslevel=1, mtime=0)


class LegacyLogs:
    """``get-siem-logs`` files: file i has ``records_per_file`` records of one log type."""

    def __init__(self, seed: int, timeline: Timeline, records_per_file: int) -> None:
        self.seed = seed
        self.timeline = timeline
        self.records_per_file = records_per_file

    def log_type(self, i: int) -> str:
        return _LEGACY_TYPES[_digest(self.seed, "legacy", i)[0] % len(_LEGACY_TYPES)]

    def file_name(self, i: int) -> str:
        when = dt.datetime.fromtimestamp(self.timeline.time_of(i), dt.UTC)
        return f"{self.log_type(i)}_{when:%Y%m%d%H%M%S}_{i:08d}.log"

    def records(self, i: int) -> list[dict[str, str]]:
        tl = self.timeline
        out = []
        for j in range(self.records_per_file):
            d = _digest(self.seed, "legacy", i, j)
            when = dt.datetime.fromtimestamp(tl.origin + (i + j / self.records_per_file) * tl.spacing, dt.UTC)
            out.append(
                {
                    "datetime": when.strftime("%Y-%m-%dT%H:%M:%S+0000"),
                    "aCode": base64.urlsafe_b64encode(d).decode()[:22],
                    "acc": "C0A0",
                    "Sender": "news@example.org",
                    "Rcpt": _USERS[d[1] % len(_USERS)],
                    "IP": f"203.0.113.{d[2]}",
                    "Subject": "Quarterly numbers",
                }
            )
        return out

    def file_body(self, i: int, file_format: str) -> bytes:
        recs = self.records(i)
        if file_format == "json":
            return orjson.dumps({"type": "MTA", "data": recs})
        return b"".join(("|".join(f"{k}={v}" for k, v in r.items()) + "\r\n").encode() for r in recs)

    def zip_of(self, indices: range, file_format: str, corrupt: set[int]) -> bytes:
        """A ZIP of the files in ``indices``; those in ``corrupt`` hold a truncated JSON document
        (the response that stalled Elastic's collector for 7 days, mimecast.md §10)."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for i in indices:
                body = b'{ "type" : "MTA", "data" : ' if i in corrupt else self.file_body(i, file_format)
                z.writestr(self.file_name(i), body)
        return buf.getvalue()
