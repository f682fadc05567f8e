"""Deterministic Defender alerts that change over time, as Graph ``alerts_v2`` or MDE ``/api/alerts``.

An alert exists in one *version* at a time: ``lastUpdateDateTime`` is the moment of its latest
change, and a query on that field sees only the current version (a client that read version 1
finds version 2 later, in the window holding its new time). The log of versions is append-only
and ordered by time, because new alerts and updates only ever happen "now"; a superseded version
stays in the log and is skipped by queries.

The same seed gives the same alerts in the same order with the same updates; only the timestamps
follow the start time. Backlog alerts are spread over ``backlog_secs`` before the start; live alerts
and live updates become due at evenly spaced moments, and are created only once due, so a client
never sees an alert from the future.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .graph_odata import TICKS_PER_SEC, TimeRange, format_ticks

__all__ = ["Alert", "AlertStore", "render_graph", "render_mde"]

#: Status after each update; a resolved alert is not updated again.
_STATUS_FLOW = ("new", "inProgress", "resolved")
_DOTNET_EPOCH_TICKS = 621_355_968_000_000_000
_MDE_STATUS = {"new": "New", "inProgress": "InProgress", "resolved": "Resolved"}


@dataclass(frozen=True)
class _Kind:
    title: str
    category: str
    severity: str
    detection_source: str  # Graph enum
    mde_detection_source: str  # MDE API wording
    mitre: tuple[str, ...]
    threat: str | None
    command: str
    file_name: str


_KINDS = (
    _Kind("Suspicious PowerShell command line", "Execution", "medium", "microsoftDefenderForEndpoint",
          "WindowsDefenderAtp", ("T1059.001",), None,
          "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQA", "powershell.exe"),
    _Kind("'Mimikatz' credential theft tool", "CredentialAccess", "high", "antivirus", "WindowsDefenderAv",
          ("T1003", "T1003.001"), "Mimikatz", "mimi.exe sekurlsa::logonpasswords", "mimi.exe"),
    _Kind("Suspicious process injection observed", "DefenseEvasion", "medium",
          "microsoftDefenderForEndpoint", "WindowsDefenderAtp", ("T1055",), None,
          "rundll32.exe C:\\Users\\Public\\update.dll,Start", "rundll32.exe"),
    _Kind("Ransomware behavior detected in the file system", "Ransomware", "high", "antivirus",
          "WindowsDefenderAv", ("T1486",), "Ransom:Win32/LockBit", "vssadmin.exe delete shadows /all /quiet",
          "vssadmin.exe"),
    _Kind("Anomalous scheduled task created", "Persistence", "low", "microsoftDefenderForEndpoint",
          "WindowsDefenderAtp", ("T1053.005",), None,
          "schtasks.exe /create /sc minute /mo 5 /tn Updater /tr C:\\ProgramData\\u.exe", "schtasks.exe"),
    _Kind("Suspicious connection to a known command and control server", "CommandAndControl", "medium",
          "customTi", "CustomerTI", ("T1071.001",), None, "svchost.exe -k netsvcs", "svchost.exe"),
    _Kind("Emotet malware was detected", "Malware", "informational", "antivirus", "WindowsDefenderAv",
          ("T1204.002",), "Trojan:Win32/Emotet", "WINWORD.EXE /n invoice_0423.docm", "invoice_0423.docm"),
)  # fmt: skip
_HOSTS = ("ws-fin-001", "ws-hr-014", "srv-sql-02", "lap-dev-117", "srv-dc-01", "ws-ops-033")
_USERS = ("anna.berg", "ben.okafor", "chloe.martin", "svc-backup", "farid.haddad", "greta.lind")
_DOMAIN = "contoso"
_ANALYSTS = ("secops@contoso.com", "tier2@contoso.com", "Automation")
_CLASSIFICATIONS = (
    ("truePositive", "malware", "TruePositive", "Malware"),
    ("falsePositive", "notMalicious", "FalsePositive", "NotMalicious"),
    ("informationalExpectedActivity", "securityTesting", "InformationalExpectedActivity", "SecurityTesting"),
)


@dataclass
class Alert:
    """One alert and its current version."""

    n: int
    salt: int
    created: int  # ticks
    updated: int  # ticks of the current version (lastUpdateDateTime)
    version: int = 0
    status: str = "new"
    assigned_to: str | None = None
    resolved: int | None = None

    @property
    def id(self) -> str:
        # Defender's ids start with "da" and the .NET ticks of creation: "da637551227677560813_-961444813".
        return f"da{self.created + _DOTNET_EPOCH_TICKS}_{self.salt % 2_000_000_000 - 1_000_000_000}"


@dataclass
class AlertStore:
    seed: int
    backlog: int
    backlog_secs: float
    live_rate: float
    update_rate: float
    start: int  # ticks
    alerts: list[Alert] = field(default_factory=list)
    # The version log: (ticks, alert index, version), ascending by ticks.
    _log_ticks: list[int] = field(default_factory=list)
    _log: list[tuple[int, int]] = field(default_factory=list)
    _sorted: bool = False
    _live_made: int = 0
    _updates_made: int = 0
    updates_applied: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:alerts")
        span = int(self.backlog_secs * TICKS_PER_SEC)
        offsets = sorted(rng.randrange(max(1, span)) for _ in range(self.backlog))
        for offset in offsets:
            created = self.start - span + offset
            salt = rng.getrandbits(64)
            self._add(Alert(len(self.alerts), salt, created, created))
        # Backlog alerts appear in created order; a few were already worked on before the start.
        for alert in self.alerts[: self.backlog // 5]:
            step = random.Random(alert.salt).randrange(1, max(2, min(span, 600 * TICKS_PER_SEC)))
            if alert.created + step < self.start:
                self._apply_update(alert, alert.created + step)
        order = sorted(range(len(self._log)), key=lambda i: (self._log_ticks[i], self._log[i]))
        self._log_ticks = [self._log_ticks[i] for i in order]
        self._log = [self._log[i] for i in order]
        self._sorted = True

    def __len__(self) -> int:
        return len(self.alerts)

    @property
    def versions(self) -> int:
        return len(self._log)

    def advance(self, now: int) -> None:
        """Create the live alerts and updates that are due at ``now`` (ticks), in time order."""
        while True:
            next_alert = self._due(self._live_made, self.live_rate)
            next_update = self._due(self._updates_made, self.update_rate)
            due = min(next_alert, next_update)
            if due > now:
                return
            if next_alert <= next_update:
                self._live_made += 1
                rng = random.Random(f"{self.seed}:live:{self._live_made}")
                # Sub-second digits keep the seven-digit precision visible in live data too.
                self._add(Alert(len(self.alerts), rng.getrandbits(64), due, due))
            else:
                self._updates_made += 1
                target = self._pick(random.Random(f"{self.seed}:update:{self._updates_made}"))
                if target is not None:
                    self._apply_update(target, due)

    def update_now(self, count: int, now: int) -> list[Alert]:
        """Move the ``count`` oldest unresolved alerts one step along new → inProgress → resolved."""
        picked = [a for a in self.alerts if a.status != "resolved"][:count]
        for alert in picked:
            self.update(alert, now)
        return picked

    def update(self, alert: Alert, now: int) -> None:
        """One change to ``alert`` at ``now`` (after anything that was due before it)."""
        self.advance(now)
        self._apply_update(alert, now)

    def query(self, time_field: str, bounds: TimeRange, keep: Callable[[Alert], bool]) -> list[Alert]:
        """Current versions whose ``time_field`` (``updated``/``created``) is in ``bounds``, oldest first."""
        if time_field == "updated":
            lo, hi = bounds.first_index(self._log_ticks), bounds.end_index(self._log_ticks)
            out = []
            for n, version in self._log[lo:hi]:
                alert = self.alerts[n]
                if alert.version == version and keep(alert):
                    out.append(alert)
            return out
        created = [a.created for a in self.alerts]
        lo, hi = bounds.first_index(created), bounds.end_index(created)
        return [a for a in self.alerts[lo:hi] if keep(a)]

    # --- internals ------------------------------------------------------------------------------

    def _due(self, made: int, rate: float) -> int:
        if rate <= 0:
            return 1 << 62
        return self.start + int((made + 1) * TICKS_PER_SEC / rate)

    def _pick(self, rng: random.Random) -> Alert | None:
        # Analysts work on recent alerts: look back over the newest hundred for an open one.
        recent = [a for a in self.alerts[-100:] if a.status != "resolved"]
        return rng.choice(recent) if recent else None

    def _add(self, alert: Alert) -> None:
        self.alerts.append(alert)
        self._log_version(alert)

    def _apply_update(self, alert: Alert, when: int) -> None:
        rng = random.Random(f"{alert.salt}:{alert.version + 1}")
        alert.version += 1
        # A last digit that is never zero, so a client that rounds to microseconds is caught.
        alert.updated = when - when % 10 + rng.randrange(1, 10)
        alert.status = _STATUS_FLOW[min(_STATUS_FLOW.index(alert.status) + 1, len(_STATUS_FLOW) - 1)]
        alert.assigned_to = rng.choice(_ANALYSTS)
        self.updates_applied += 1
        self._log_version(alert)
        if alert.status == "resolved":
            alert.resolved = alert.updated

    def _log_version(self, alert: Alert) -> None:
        if self._sorted and self._log_ticks and alert.updated <= self._log_ticks[-1]:
            # Live versions append to the sorted log, each strictly after the last.
            alert.updated = self._log_ticks[-1] + 1
        self._log_ticks.append(alert.updated)
        self._log.append((alert.n, alert.version))


def _picks(alert: Alert) -> tuple[_Kind, str, str, random.Random]:
    rng = random.Random(alert.salt)
    return rng.choice(_KINDS), rng.choice(_HOSTS), rng.choice(_USERS), rng


def _hex(rng: random.Random, chars: int) -> str:
    return f"{rng.getrandbits(chars * 4):0{chars}x}"


def _guid(rng: random.Random) -> str:
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _file(rng: random.Random, name: str) -> dict[str, Any]:
    digest = hashlib.sha256(name.encode()).hexdigest()
    return {
        "sha1": digest[:40],
        "sha256": digest,
        "fileName": name,
        "filePath": "C:\\Windows\\System32" if name.endswith(".exe") else "C:\\Users\\Public\\Downloads",
        "fileSize": rng.randrange(20_000, 5_000_000),
        "filePublisher": "Microsoft Corporation" if name.endswith(".exe") else None,
        "signer": None,
        "issuer": None,
    }


def render_graph(alert: Alert, tenant_id: str) -> dict[str, Any]:
    """The alert as Graph ``#microsoft.graph.security.alert`` (alerts_v2)."""
    kind, host, user, rng = _picks(alert)
    device_id = _hex(rng, 40)
    incident = 10_000 + alert.n // 3
    created = format_ticks(alert.created)
    evidence_time = format_ticks(alert.created - 30 * TICKS_PER_SEC)
    account = {
        "accountName": user,
        "domainName": _DOMAIN,
        "userSid": f"S-1-5-21-{rng.randrange(10**9)}-{rng.randrange(10**9)}-{1000 + _USERS.index(user)}",
        "azureAdUserId": _guid(rng),
        "userPrincipalName": f"{user}@{_DOMAIN}.com",
        "displayName": user.replace(".", " ").title(),
    }
    base: dict[str, Any] = {
        "createdDateTime": evidence_time,
        "verdict": "suspicious",
        "remediationStatus": "none",
        "remediationStatusDetails": None,
        "roles": [],
        "tags": [],
    }
    evidence = [
        {
            "@odata.type": "#microsoft.graph.security.deviceEvidence",
            **base,
            "verdict": "unknown",
            "firstSeenDateTime": format_ticks(alert.created - 86_400 * 90 * TICKS_PER_SEC),
            "mdeDeviceId": device_id,
            "azureAdDeviceId": _guid(rng),
            "deviceDnsName": f"{host}.{_DOMAIN}.local",
            "osPlatform": "Windows11" if host.startswith(("ws", "lap")) else "WindowsServer2022",
            "osBuild": 22631,
            "version": "23H2",
            "healthStatus": "active",
            "riskScore": kind.severity if kind.severity in ("low", "medium", "high") else "none",
            "rbacGroupId": 75,
            "rbacGroupName": "UnassignedGroup",
            "onboardingStatus": "onboarded",
            "defenderAvStatus": "updated",
            "loggedOnUsers": [{"accountName": user, "domainName": _DOMAIN.upper()}],
            "ipInterfaces": [f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"],
            "vmMetadata": None,
        },
        {
            "@odata.type": "#microsoft.graph.security.processEvidence",
            **base,
            "processId": rng.randrange(1000, 30000),
            "parentProcessId": rng.randrange(500, 1000),
            "processCommandLine": kind.command,
            "processCreationDateTime": evidence_time,
            "parentProcessCreationDateTime": format_ticks(alert.created - 3600 * TICKS_PER_SEC),
            "detectionStatus": "detected",
            "mdeDeviceId": device_id,
            "imageFile": _file(rng, kind.command.split()[0]),
            "parentProcessImageFile": _file(rng, "explorer.exe"),
            "userAccount": account,
        },
        {
            "@odata.type": "#microsoft.graph.security.fileEvidence",
            **base,
            "verdict": "malicious" if kind.threat else "suspicious",
            "detectionStatus": "prevented" if kind.threat else "detected",
            "mdeDeviceId": device_id,
            "fileDetails": _file(rng, kind.file_name),
        },
    ]
    classification = _classification(alert)
    return {
        "@odata.type": "#microsoft.graph.security.alert",
        "id": alert.id,
        "providerAlertId": alert.id,
        "incidentId": str(incident),
        "status": alert.status,
        "severity": kind.severity,
        "classification": classification[0] if classification else None,
        "determination": classification[1] if classification else None,
        "serviceSource": "microsoftDefenderForEndpoint",
        "detectionSource": kind.detection_source,
        "productName": "Microsoft Defender for Endpoint",
        "detectorId": _guid(random.Random(kind.title)),
        "tenantId": tenant_id,
        "title": kind.title,
        "description": f"{kind.title} on {host}. Review the process tree and the evidence.",
        "recommendedActions": "1. Isolate the device if unexpected.\n2. Collect an investigation package.",
        "category": kind.category,
        "assignedTo": alert.assigned_to,
        "alertWebUrl": f"https://security.microsoft.com/alerts/{alert.id}?tid={tenant_id}",
        "incidentWebUrl": f"https://security.microsoft.com/incidents/{incident}?tid={tenant_id}",
        "actorDisplayName": None,
        "threatDisplayName": kind.threat,
        "threatFamilyName": kind.threat.split("/")[-1] if kind.threat else None,
        "mitreTechniques": list(kind.mitre),
        "createdDateTime": created,
        "lastUpdateDateTime": format_ticks(alert.updated),
        "resolvedDateTime": format_ticks(alert.resolved) if alert.resolved else None,
        "firstActivityDateTime": evidence_time,
        "lastActivityDateTime": format_ticks(alert.created - 5 * TICKS_PER_SEC),
        "comments": [],
        "evidence": evidence,
        "systemTags": [],
    }


def render_mde(alert: Alert, tenant_id: str, expand_evidence: bool) -> dict[str, Any]:
    """The alert as the MDE API ``/api/alerts`` prints it; ``evidence`` only with ``$expand``."""
    kind, host, user, rng = _picks(alert)
    device_id = _hex(rng, 40)
    created = format_ticks(alert.created)
    evidence_time = format_ticks(alert.created - 30 * TICKS_PER_SEC)
    classification = _classification(alert)
    rendered: dict[str, Any] = {
        "id": alert.id,
        "incidentId": 10_000 + alert.n // 3,
        "investigationId": alert.n if kind.detection_source == "antivirus" else None,
        "assignedTo": alert.assigned_to,
        "severity": kind.severity.capitalize(),
        "status": _MDE_STATUS[alert.status],
        "classification": classification[2] if classification else None,
        "determination": classification[3] if classification else None,
        "investigationState": "Running" if alert.status != "resolved" else "Benign",
        "detectionSource": kind.mde_detection_source,
        "detectorId": _guid(random.Random(kind.title)),
        "category": kind.category,
        "threatFamilyName": kind.threat.split("/")[-1] if kind.threat else None,
        "title": kind.title,
        "description": f"{kind.title} on {host}. Review the process tree and the evidence.",
        "alertCreationTime": created,
        "firstEventTime": evidence_time,
        "lastEventTime": format_ticks(alert.created - 5 * TICKS_PER_SEC),
        "lastUpdateTime": format_ticks(alert.updated),
        "resolvedTime": format_ticks(alert.resolved) if alert.resolved else None,
        "machineId": device_id,
        "computerDnsName": f"{host}.{_DOMAIN}.local",
        "rbacGroupName": "UnassignedGroup",
        "aadTenantId": tenant_id,
        "threatName": kind.threat,
        "mitreTechniques": list(kind.mitre),
        "relatedUser": {"userName": user, "domainName": _DOMAIN.upper()},
        "loggedOnUsers": [{"accountName": user, "domainName": _DOMAIN.upper()}],
        "comments": [],
    }
    if expand_evidence:
        image = _file(rng, kind.command.split()[0])
        dropped = _file(rng, kind.file_name)
        user_sid = f"S-1-5-21-{rng.randrange(10**9)}-{1000 + _USERS.index(user)}"
        rendered["evidence"] = [
            _mde_evidence(
                "User", evidence_time, accountName=user, domainName=_DOMAIN.upper(), userSid=user_sid,
                aadUserId=_guid(rng), userPrincipalName=f"{user}@{_DOMAIN}.com",
            ),
            _mde_evidence(
                "Process", evidence_time, **_mde_file(image), processId=rng.randrange(1000, 30000),
                processCommandLine=kind.command, processCreationTime=evidence_time,
                parentProcessId=rng.randrange(500, 1000), parentProcessFileName="explorer.exe",
                parentProcessCreationTime=format_ticks(alert.created - 3600 * TICKS_PER_SEC),
                parentProcessFilePath="C:\\Windows", detectionStatus="Detected",
            ),
            _mde_evidence(
                "File", evidence_time, **_mde_file(dropped),
                detectionStatus="Prevented" if kind.threat else "Detected",
            ),
        ]  # fmt: skip
    return rendered


#: Every MDE evidence item carries all of these; the ones that do not apply to its type are null.
_MDE_EVIDENCE_FIELDS = (
    "sha1", "sha256", "fileName", "filePath", "processId", "processCommandLine", "processCreationTime",
    "parentProcessId", "parentProcessCreationTime", "parentProcessFileName", "parentProcessFilePath",
    "ipAddress", "url", "registryKey", "registryHive", "registryValueType", "registryValue",
    "accountName", "domainName", "userSid", "aadUserId", "userPrincipalName", "detectionStatus",
)  # fmt: skip


def _mde_evidence(entity_type: str, created: str, **fields: Any) -> dict[str, Any]:
    return {
        "entityType": entity_type,
        "evidenceCreationTime": created,
        **dict.fromkeys(_MDE_EVIDENCE_FIELDS),
        **fields,
    }


def _mde_file(details: dict[str, Any]) -> dict[str, Any]:
    return {k: details[k] for k in ("sha1", "sha256", "fileName", "filePath")}


def _classification(alert: Alert) -> tuple[str, str, str, str] | None:
    if alert.status != "resolved":
        return None
    return random.Random(alert.salt ^ 0x5EED).choice(_CLASSIFICATIONS)
