"""Deterministic Duo log events: a seeded backlog per log type plus events that appear as time passes.

Events are stored as (time in ms, index) and rendered to the vendor's record shape (specs/duo.md
§7) when served, so a benchmark backlog stays cheap. The same seed gives the same ids and
contents; only timestamps move with the start time. ``malformed_every`` makes every Nth event
of each type lack its id/time field, the way a vendor bug would, so clients' dead-lettering
can be tested.
"""

from __future__ import annotations

import bisect
import datetime as dt
import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["LOG_TYPES", "DuoEvent", "DuoLog", "LogType", "iso"]

LogType = Literal["authentication", "administrator", "telephony", "activity", "trust_monitor"]
LOG_TYPES: tuple[LogType, ...] = ("authentication", "administrator", "telephony", "activity", "trust_monitor")

_USERS = ("narroway", "amartin", "bchen", "cdiaz", "efischer", "gharris", "hito", "jkowalski")
_APPS = (
    ("DIY231J8BR23QK4UKBY8", "Microsoft Azure Active Directory"),
    ("DI9FD6NAKXN4B9DTCCB7", "Cisco ASA VPN"),
    ("DIRWIH0ZZPV4G88B37VQ", "Okta"),
)
_FACTORS = ("duo_push", "phone_call", "passcode", "sms_passcode", "webauthn_credential")
_RESULTS = (("success", "user_approved"), ("denied", "user_mistake"), ("fraud", "user_marked_fraud"),
            ("denied", "location_restricted"))  # fmt: skip
_CITIES = (("Ann Arbor", "Michigan", "United States"), ("Berlin", "Berlin", "Germany"),
           ("Austin", "Texas", "United States"), ("Lyon", "Auvergne-Rhône-Alpes", "France"))  # fmt: skip
_ADMIN_ACTIONS = ("admin_login", "user_update", "user_create", "group_update", "integration_update",
                  "phone_create", "customer_update", "admin_update")  # fmt: skip
_ACTIVITY_ACTIONS = ("webauthncredential_create", "user_update", "admin_login", "phone_activate")
_TM_TYPES = ("auth", "bypass_status", "device_registration")


def iso(ts_ms: int, places: int = 6) -> str:
    """``2020-02-13T18:56:20.351000+00:00``: Duo's isotimestamp shape (µs, or none for v1 logs)."""
    t = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
    return t.isoformat(timespec="microseconds" if places else "seconds")


def _uuid(seed: int, kind: str, index: int, n: int = 0) -> str:
    h = hashlib.blake2b(f"{seed}/{kind}/{index}/{n}".encode(), digest_size=16).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def _key(seed: int, kind: str, index: int, prefix: str) -> str:
    digest = hashlib.blake2b(f"{seed}/{kind}/{index}".encode(), digest_size=16).digest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(alphabet[b % 36] for b in digest[:18])


@dataclass(frozen=True)
class DuoEvent:
    """One event: its time, its vendor id (``None`` for administrator records, which have none)."""

    log_type: LogType
    ts_ms: int
    index: int
    event_id: str | None
    malformed: bool

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.ts_ms, self.event_id or f"{self.index:012d}")


@dataclass
class DuoLog:
    """All events of one log type, ascending by (time, id)."""

    log_type: LogType
    seed: int
    malformed_every: int
    events: list[DuoEvent] = field(default_factory=list)
    _keys: list[tuple[int, str]] = field(default_factory=list)

    def add(self, ts_ms: int) -> None:
        index = len(self.events)
        malformed = self.malformed_every > 0 and index % self.malformed_every == self.malformed_every - 1
        event_id = None if self.log_type == "administrator" else _uuid(self.seed, self.log_type, index)
        event = DuoEvent(self.log_type, ts_ms, index, event_id, malformed)
        pos = bisect.bisect_right(self._keys, event.sort_key)
        self._keys.insert(pos, event.sort_key)
        self.events.insert(pos, event)

    def between(self, min_ms: int, max_ms: int) -> list[DuoEvent]:
        """Events with ``min_ms <= ts <= max_ms`` (both bounds inclusive, as duo_client documents)."""
        lo = bisect.bisect_left(self._keys, (min_ms, ""))
        hi = bisect.bisect_left(self._keys, (max_ms + 1, ""))
        return self.events[lo:hi]

    def render(self, event: DuoEvent) -> dict[str, Any]:
        record = _RENDERERS[self.log_type](self.seed, event, random.Random(f"{self.seed}/{event.sort_key}"))
        if event.malformed:
            record.pop(_ID_FIELDS[self.log_type])
        return record


def _location(rng: random.Random) -> dict[str, str]:
    city, state, country = rng.choice(_CITIES)
    return {"city": city, "state": state, "country": country}


def _ip(rng: random.Random) -> str:
    return (
        f"{rng.choice((89, 81, 175, 216))}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    )


def _user(rng: random.Random, seed: int) -> tuple[str, str]:
    i = rng.randrange(len(_USERS))
    return _USERS[i], _key(seed, "user", i, "DU")


def _authentication(seed: int, e: DuoEvent, rng: random.Random) -> dict[str, Any]:
    name, key = _user(rng, seed)
    app_key, app_name = rng.choice(_APPS)
    result, reason = rng.choice(_RESULTS)
    agents: Any = rng.choice(([], None, "unknown", [{"security_agent": "cisco-amp", "version": "1"}]))
    return {
        "access_device": {
            "browser": "Chrome", "browser_version": "67.0.3396.99", "flash_version": "uninstalled",
            "hostname": None, "ip": _ip(rng), "is_encryption_enabled": rng.choice((True, False, "unknown")),
            "is_firewall_enabled": True, "is_password_set": True, "java_version": "uninstalled",
            "location": _location(rng), "os": "Mac OS X", "os_version": "10.14.1",
            "security_agents": agents, "epkey": None,
        },
        "alias": "",
        "application": {"key": app_key, "name": app_name},
        "auth_device": {
            "ip": "192.168.225.254", "location": _location(rng), "name": "My iPhone X (734-555-2342)",
        },
        "email": f"{name}@example.com",
        "event_type": rng.choice(("authentication", "authentication", "enrollment")),
        "factor": rng.choice(_FACTORS),
        "isotimestamp": iso(e.ts_ms),
        "ood_software": None,
        "reason": reason,
        "result": result,
        "timestamp": e.ts_ms // 1000,
        "trusted_endpoint_status": rng.choice(("trusted", "not trusted", "unknown")),
        "txid": e.event_id,
        "user": {"groups": ["Duo Users"], "key": key, "name": f"{name}@example.com"},
    }  # fmt: skip


def _administrator(seed: int, e: DuoEvent, rng: random.Random) -> dict[str, Any]:
    name, _ = _user(rng, seed)
    action = rng.choice(_ADMIN_ACTIONS)
    # The description is a JSON string in Duo's records; the index keeps same-second records distinct.
    if action == "admin_login":
        description = f'{{"ip_address": "{_ip(rng)}", "factor": "duo_push", "event": {e.index}}}'
    else:
        description = f'{{"event": {e.index}, "status": "Active"}}'
    return {
        "action": action,
        "description": description,
        "isotimestamp": iso(e.ts_ms, 0),
        "object": rng.choice(_USERS),
        "timestamp": e.ts_ms // 1000,
        "username": name,
    }


def _telephony(seed: int, e: DuoEvent, rng: random.Random) -> dict[str, Any]:
    return {
        "context": rng.choice(("enrollment", "authentication", "administrator login")),
        "credits": rng.choice((1, 1, 2)),
        "phone": f"+1212555{rng.randrange(10000):04d}",
        "telephony_id": e.event_id,
        "ts": iso(e.ts_ms),
        "txid": _uuid(seed, "telephony-tx", e.index),
        "type": rng.choice(("sms", "phone")),
    }


def _activity(seed: int, e: DuoEvent, rng: random.Random) -> dict[str, Any]:
    name, key = _user(rng, seed)
    app_key, app_name = rng.choice(_APPS)
    return {
        "access_device": {
            "browser": "Chrome", "browser_version": "118.0", "epkey": None, "ip": {"address": _ip(rng)},
            "location": _location(rng), "os": "Windows", "os_version": "11",
        },
        "action": {"details": None, "name": rng.choice(_ACTIVITY_ACTIONS)},
        "activity_id": e.event_id,
        "actor": {"details": f'{{"created": "{iso(e.ts_ms, 0)}"}}', "key": key, "name": name, "type": "user"},
        "akey": _key(seed, "akey", 0, "DA"),
        "application": {"key": app_key, "name": app_name, "type": "sso"},
        "old_target": None,
        "outcome": {"result": rng.choice(("SUCCESS", "SUCCESS", "FAILURE"))},
        "target": {"details": None, "key": key, "name": name, "type": "user"},
        "ts": iso(e.ts_ms),
    }  # fmt: skip


def _trust_monitor(seed: int, e: DuoEvent, rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(_TM_TYPES)
    record: dict[str, Any] = {
        "explanations": [
            {"summary": "amartin has not logged in from this location recently.", "type": "NEW_COUNTRY"}
        ],
        "from_common_netblock": True,
        "priority_event": rng.random() < 0.3,
        "priority_reasons": [],
        "sekey": e.event_id,
        "state": rng.choice(("new", "processed")),
        "state_updated_timestamp": None,
        "surfaced_timestamp": e.ts_ms,
        "triaged_as_interesting": False,
        "type": kind,
    }
    if kind == "auth":
        record["surfaced_auth"] = _authentication(seed, e, rng)
        record["triage_event_uri"] = "https://admin-xxxxxxxx.duosecurity.com/trust-monitor?sekey=" + str(
            e.event_id
        )
    return record


_RENDERERS: dict[LogType, Callable[[int, DuoEvent, random.Random], dict[str, Any]]] = {
    "authentication": _authentication,
    "administrator": _administrator,
    "telephony": _telephony,
    "activity": _activity,
    "trust_monitor": _trust_monitor,
}
# The field a malformed record lacks: the id where there is one, the time for administrator logs.
_ID_FIELDS: dict[LogType, str] = {
    "authentication": "txid",
    "administrator": "timestamp",
    "telephony": "telephony_id",
    "activity": "activity_id",
    "trust_monitor": "sekey",
}
