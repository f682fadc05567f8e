"""Deterministic Falcon event stream data for the CrowdStrike simulator (specs/crowdstrike.md §4).

Every partition is an append-only log whose offsets increase by one per event from
``first_offset``. Event ``i`` of a partition is a pure function of ``(seed, partition, i)``, so a
backlog of millions costs no memory and a test can compute exactly what exists. Live events
appear at ``live_rate`` per second per partition after the simulator starts.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["EVENT_TYPES", "EventLog"]

#: The types the simulator emits, in rotation; the shapes follow specs/crowdstrike.md §4.
EVENT_TYPES = (
    "DetectionSummaryEvent",
    "AuthActivityAuditEvent",
    "UserActivityAuditEvent",
    "RemoteResponseSessionStartEvent",
)
_TACTICS = (("Execution", "Command and Scripting Interpreter"), ("Persistence", "Registry Run Keys"))


@dataclass
class EventLog:
    seed: int
    partitions: int
    backlog: int
    backlog_secs: float
    live_rate: float
    first_offset: int
    started: float

    def __post_init__(self) -> None:
        self.cid = hashlib.sha256(f"cid-{self.seed}".encode()).hexdigest()[:32]
        self.live = self.live_rate > 0
        self._live_from = self.started
        self._base = self.backlog  # event times stay put when pause() folds live events into it

    def pause(self) -> None:
        """Stop producing live events (counts become exact)."""
        self.backlog = self.count(time.time())
        self.live = False

    def count(self, now: float) -> int:
        """Events that exist in each partition at ``now``."""
        if not self.live:
            return self.backlog
        return self.backlog + max(0, math.floor((now - self._live_from) * self.live_rate))

    def next_live_at(self, index: int) -> float | None:
        """When event ``index`` appears (``None``: never, the log is not live)."""
        if not self.live:
            return None
        return self._live_from + (index - self.backlog + 1) / self.live_rate

    def offset(self, index: int) -> int:
        return self.first_offset + index

    def index_from(self, offset: int | None, inclusive: bool) -> int:
        """The first index a stream opened at ``offset`` serves."""
        if offset is None:
            return 0
        return max(0, offset - self.first_offset + (0 if inclusive else 1))

    def created_ms(self, index: int) -> int:
        if index < self._base or self.live_rate <= 0:
            spacing = self.backlog_secs / max(1, self._base)
            return int((self.started - self.backlog_secs + index * spacing) * 1000)
        return int((self._live_from + (index - self._base + 1) / self.live_rate) * 1000)

    def event_type(self, partition: int, index: int) -> str:
        return EVENT_TYPES[(index + partition) % len(EVENT_TYPES)]

    def event(self, partition: int, index: int) -> dict[str, Any]:
        etype = self.event_type(partition, index)
        created = self.created_ms(index)
        offset = self.offset(index)
        host = f"host-{partition}-{index % 97:02d}"
        body: dict[str, Any]
        if etype == "DetectionSummaryEvent":
            tactic, technique = _TACTICS[index % len(_TACTICS)]
            sensor = hashlib.md5(host.encode()).hexdigest()
            body = {
                "ProcessStartTime": created // 1000 - 5,
                "ProcessEndTime": 0,
                "ProcessId": 1000 + index,
                "ParentProcessId": 900 + index,
                "ComputerName": host,
                "UserName": f"user{index % 13}",
                "DetectName": "Suspicious Activity",
                "DetectDescription": f"A process ran a suspicious command (detection {index})",
                "Severity": 1 + index % 5,
                "SeverityName": ("Informational", "Low", "Medium", "High", "Critical")[index % 5],
                "FileName": "powershell.exe",
                "FilePath": "\\Device\\HarddiskVolume2\\Windows\\System32\\WindowsPowerShell\\v1.0",
                "CommandLine": f"powershell.exe -enc {index:08x}",
                "SHA256String": hashlib.sha256(str(index).encode()).hexdigest(),
                "MD5String": hashlib.md5(str(index).encode()).hexdigest(),
                "MachineDomain": "corp.example",
                "NetworkAccesses": [
                    {
                        "AccessType": 0,
                        "AccessTimestamp": created // 1000,
                        "Protocol": "TCP",
                        "LocalAddress": "10.0.0.5",
                        "LocalPort": 49152 + index % 1000,
                        "RemoteAddress": "203.0.113.7",
                        "RemotePort": 443,
                        "ConnectionDirection": 0,
                        "IsIPV6": False,
                    }
                ],
                "FalconHostLink": f"https://falcon.crowdstrike.com/activity/detections/detail/{sensor}/{index}",
                "SensorId": sensor,
                "DetectId": f"ldt:{sensor}:{index}",
                "LocalIP": "10.0.0.5",
                "Tactic": tactic,
                "Technique": technique,
                "Objective": "Falcon Detection Method",
                "PatternDispositionDescription": "Detection, standard detection.",
                "PatternDispositionValue": 0,
                "PatternId": 10000 + index % 50,
                "MitreAttack": [{"Tactic": tactic, "Technique": technique, "PatternID": 10000 + index % 50}],
            }
        elif etype == "AuthActivityAuditEvent":
            body = {
                "UserId": f"api-client-{self.seed}",
                "UserIp": "198.51.100.20",
                "OperationName": "streamStarted",
                "ServiceName": "Crowdstrike Streaming API",
                "Success": True,
                "UTCTimestamp": created // 1000,
                "AuditKeyValues": [{"Key": "partition", "ValueString": str(partition)}],
                "Attributes": {"partition": str(partition), "offset": str(offset)},
            }
        elif etype == "UserActivityAuditEvent":
            body = {
                "UserId": f"analyst{index % 7}@corp.example",
                "UserIp": "198.51.100.21",
                "OperationName": "detection_update",
                "ServiceName": "detections",
                "Success": True,
                "UTCTimestamp": created // 1000,
                "AuditKeyValues": [{"Key": "new_state", "ValueString": "in_progress"}],
                "Attributes": {},
            }
        else:
            body = {
                "SessionId": f"rtr-{partition}-{index}",
                "HostnameField": host,
                "UserName": f"responder{index % 3}@corp.example",
                "StartTimestamp": created // 1000,
            }
        return {
            "metadata": {
                "customerIDString": self.cid,
                "offset": offset,
                "eventType": etype,
                "eventCreationTime": created,
                "version": "1.0",
            },
            "event": body,
        }

    def line(self, partition: int, index: int) -> bytes:
        return orjson.dumps(self.event(partition, index)) + b"\n"
