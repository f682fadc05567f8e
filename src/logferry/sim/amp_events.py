"""The Cisco Secure Endpoint simulator's event store: a seeded backlog, live events, realistic records.

Records follow specs/cisco_secure_endpoint.md §3.1 (the field set of the vendor's API docs and
Elastic's test data). Ids are int64 values that grow with time, as the vendor's do. The store
keeps events oldest first; the API serves them newest first.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import itertools
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, overload

__all__ = ["EVENT_TYPES", "Event", "EventFilter", "EventStore", "format_date"]

#: (id, name, relative frequency) of the event types the spec names (§4, from Cisco's AMP04 sample).
EVENT_TYPES: tuple[tuple[int, str, int], ...] = (
    (1090519054, "Threat Detected", 30),
    (553648143, "Threat Quarantined", 20),
    (553648147, "Retrospective Detection", 4),
    (1107296274, "Cloud IOC", 25),
    (2164260880, "Quarantine Failure", 3),
    (553648130, "Policy Update", 18),
)
_TYPE_CUMULATIVE = tuple(itertools.accumulate(w for _, _, w in EVENT_TYPES))
_DETECTIONS = (
    "W32.Overdrive.RET",
    "W32.12081E6CA3-95.SBX.TG",
    "W32.Auto:a78c29.in03.Talos",
    "Win.Trojan.Qakbot",
)
_IOCS = (
    ("W32.WScriptExecuteFakeExtension.ioc", "WScript ran a file with a fake benign extension."),
    ("W32.Bitsadmin.ioc", "Bitsadmin was used to create a persistent download job."),
    ("W32.PowershellEncodedCommand.ioc", "PowerShell ran a base64-encoded command."),
)
_FILES = ("BIT657.tmp", "MspthrdHash.exe", "invoice.pdf.exe", "setup_x64.exe", "update.js")
_PARENTS = ("svchost.exe", "explorer.exe", "WScript.exe", "powershell.exe")
_SEVERITIES = ("Low", "Medium", "High", "Critical")


def format_date(seconds: int) -> str:
    """The vendor's ``date`` form: ISO 8601 in UTC with ``+00:00``."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass(frozen=True, slots=True)
class Event:
    ts_ns: int
    id: int
    kind: int  # index into EVENT_TYPES
    computer: int
    salt: int

    @property
    def seconds(self) -> int:
        return self.ts_ns // 1_000_000_000

    @property
    def type_id(self) -> int:
        return EVENT_TYPES[self.kind][0]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.salt.to_bytes(16, "big")).hexdigest()


@dataclass(frozen=True)
class EventFilter:
    """``/v1/events`` filters: OR within one criterion, AND across criteria (spec §3)."""

    event_types: frozenset[int] = frozenset()
    connectors: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    detection_sha256: str | None = None
    application_sha256: str | None = None

    def active(self) -> bool:
        return bool(
            self.event_types
            or self.connectors
            or self.groups
            or self.detection_sha256
            or self.application_sha256
        )


@dataclass(frozen=True)
class _Computer:
    guid: str
    hostname: str
    external_ip: str
    user: str
    group: str
    ip: str
    mac: str


class EventStore:
    def __init__(
        self,
        seed: int,
        backlog_events: int,
        backlog_secs: float,
        live_rate: float,
        now_ns: int,
        computers: int,
    ) -> None:
        rng = random.Random(seed)
        groups = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(max(1, computers // 10))]
        self.computers = [_new_computer(rng, i, groups) for i in range(max(1, computers))]
        self.groups = groups
        self._rng = rng
        self._ids: set[int] = set()
        span = max(1, int(backlog_secs * 1e9))
        backlog = [self._new(now_ns - span + rng.randrange(span)) for _ in range(backlog_events)]
        backlog.sort(key=_order)
        self._events: list[Event] = backlog
        self._secs: list[int] = [e.seconds for e in backlog]
        self.live_rate = live_rate
        self.live = live_rate > 0
        self._anchor_ns = now_ns
        self._live_made = 0

    def __len__(self) -> int:
        return len(self._events)

    def advance(self, now_ns: int) -> None:
        """Create the live events that have become due by ``now_ns``."""
        if not self.live:
            return
        due = int((now_ns - self._anchor_ns) * self.live_rate / 1e9)
        while self._live_made < due:
            self._live_made += 1
            self.add(min(now_ns, self._anchor_ns + round(self._live_made * 1e9 / self.live_rate)))

    def set_live(self, live: bool, now_ns: int) -> None:
        self.advance(now_ns)
        if live and not self.live:
            self._anchor_ns, self._live_made = now_ns, 0
        self.live = live and self.live_rate > 0

    def add(self, ts_ns: int) -> Event:
        """One new event at ``ts_ns`` (live generation and inserts between pages)."""
        event = self._new(ts_ns)
        if self._events and _order(event) < _order(self._events[-1]):
            i = bisect.bisect_left(self._events, _order(event), key=_order)
            self._events.insert(i, event)
            self._secs.insert(i, event.seconds)
        else:
            self._events.append(event)
            self._secs.append(event.seconds)
        return event

    def select(self, start_secs: int | None, flt: EventFilter) -> Sequence[Event]:
        """Events at or after ``start_secs`` (inclusive) passing ``flt``, newest first."""
        lo = 0 if start_secs is None else bisect.bisect_left(self._secs, start_secs)
        if not flt.active():
            # A view, not a copy: a large backlog is paged thousands of times.
            return _NewestFirst(self._events, lo)
        return [e for e in reversed(self._events[lo:]) if self._matches(e, flt)]

    def all_events(self) -> Sequence[Event]:
        return self._events

    def render(self, e: Event, origin: str) -> dict[str, Any]:
        type_id, type_name, _ = EVENT_TYPES[e.kind]
        c = self.computers[e.computer]
        picks = random.Random(e.salt)
        seconds, nanos = divmod(e.ts_ns, 1_000_000_000)
        record: dict[str, Any] = {
            "id": e.id,
            "timestamp": seconds,
            "timestamp_nanoseconds": nanos,
            "date": format_date(seconds),
            "event_type": type_name,
            "event_type_id": type_id,
        }
        if type_name in ("Threat Detected", "Retrospective Detection"):
            record["detection"] = picks.choice(_DETECTIONS)
        if type_name != "Policy Update":
            record["detection_id"] = str(e.id + 1)
        record["connector_guid"] = c.guid
        record["group_guids"] = [c.group]
        if type_name != "Policy Update":
            record["severity"] = picks.choice(_SEVERITIES)
        if type_name == "Cloud IOC":
            record["start_timestamp"] = seconds
            record["start_date"] = format_date(seconds)
        if type_name == "Quarantine Failure":
            record["error"] = {"error_code": 3221225524, "description": "Object name not found"}
        computer: dict[str, Any] = {
            "connector_guid": c.guid,
            "hostname": c.hostname,
            "external_ip": c.external_ip,
        }
        if type_name == "Threat Detected":
            computer["user"] = c.user
        computer["active"] = True
        computer["network_addresses"] = [{"ip": c.ip, "mac": c.mac}]
        computer["links"] = {
            "computer": f"{origin}/v1/computers/{c.guid}",
            "trajectory": f"{origin}/v1/computers/{c.guid}/trajectory",
            "group": f"{origin}/v1/groups/{c.group}",
        }
        record["computer"] = computer
        if type_name == "Cloud IOC":
            short, description = picks.choice(_IOCS)
            record["cloud_ioc"] = {"description": description, "short_description": short}
        if type_name != "Policy Update":
            record["file"] = self._file(e, picks, type_name)
        return record

    # --- internals -----------------------------------------------------------------------------

    def _file(self, e: Event, picks: random.Random, type_name: str) -> dict[str, Any]:
        sha = e.sha256
        identity = {"sha256": sha, "sha1": sha[:40], "md5": sha[:32]}
        name = picks.choice(_FILES)
        parent_sha = hashlib.sha256(sha.encode()).hexdigest()
        return {
            "disposition": "Clean" if type_name == "Cloud IOC" else "Malicious",
            "file_name": name,
            "file_path": f"\\\\?\\C:\\Users\\Public\\{name}",
            "identity": identity,
            "parent": {
                "process_id": picks.randrange(300, 9000),
                "disposition": "Clean",
                "file_name": picks.choice(_PARENTS),
                "identity": {"sha256": parent_sha, "sha1": parent_sha[:40], "md5": parent_sha[:32]},
            },
        }

    def _new(self, ts_ns: int) -> Event:
        rng = self._rng
        # Vendor ids are int64 that grow with time: milliseconds in the high bits, a sequence below.
        while True:
            event_id = ((ts_ns // 1_000_000) << 22) | rng.getrandbits(22)
            if event_id not in self._ids:
                break
        self._ids.add(event_id)
        kind = bisect.bisect(_TYPE_CUMULATIVE, rng.random() * _TYPE_CUMULATIVE[-1])
        return Event(ts_ns, event_id, kind, rng.randrange(len(self.computers)), rng.getrandbits(128))

    def _matches(self, e: Event, f: EventFilter) -> bool:
        c = self.computers[e.computer]
        type_name = EVENT_TYPES[e.kind][1]
        return (
            (not f.event_types or e.type_id in f.event_types)
            and (not f.connectors or c.guid in f.connectors)
            and (not f.groups or c.group in f.groups)
            and (
                f.application_sha256 is None
                or (type_name != "Policy Update" and e.sha256 == f.application_sha256)
            )
            and (
                f.detection_sha256 is None
                or (
                    type_name in ("Threat Detected", "Retrospective Detection")
                    and e.sha256 == f.detection_sha256
                )
            )
        )


class _NewestFirst(Sequence[Event]):
    """``events[lo:]`` reversed, without copying; only slices and lengths are needed."""

    def __init__(self, events: list[Event], lo: int) -> None:
        self._events = events
        self._lo = lo
        self._n = len(events)

    def __len__(self) -> int:
        return self._n - self._lo

    @overload
    def __getitem__(self, i: int) -> Event: ...

    @overload
    def __getitem__(self, i: slice) -> list[Event]: ...

    def __getitem__(self, i: int | slice) -> Event | list[Event]:
        if isinstance(i, slice):
            start, stop, _ = i.indices(len(self))
            if stop <= start:
                return []
            chunk = self._events[self._n - stop : self._n - start]
            chunk.reverse()
            return chunk
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self._events[self._n - 1 - (i % len(self))]


def _order(e: Event) -> tuple[int, int]:
    return (e.ts_ns, e.id)


def _new_computer(rng: random.Random, i: int, groups: list[str]) -> _Computer:
    mac = ":".join(f"{rng.randrange(256):02x}" for _ in range(6))
    return _Computer(
        guid=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        hostname=f"WS-{i:04d}.corp.example",
        external_ip=f"198.51.100.{rng.randrange(1, 255)}",
        user=f"user{i:03d}@corp.example",
        group=groups[rng.randrange(len(groups))],
        ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        mac=mac,
    )
