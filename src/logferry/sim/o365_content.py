"""Deterministic Office 365 audit content for the simulator: blobs on a timeline, records in them.

Blob ``k`` of a (tenant, content type) becomes available at ``origin + k * interval + offset``;
its records depend only on (seed, tenant, content type, k), so listing and downloading need no
stored state and a 7-day backlog of tens of thousands of blobs costs nothing until asked for.
Record shapes follow the Management API schema's common fields (``CreationTime`` without a time
zone suffix, ``Id``, ``Operation``, ``OrganizationId``, ``RecordType``, …) plus a few fields per
workload; some blobs repeat a record of the previous blob (the API does not de-duplicate), and
SecurityComplianceCenter alerts carry a ``Data`` string with a duplicated JSON key, as real ones do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import random
import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["CONTENT_TYPES", "BlobRef", "ContentTimeline", "api_time"]

CONTENT_TYPES = (
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
)
_USERS = ("adele.vance", "alex.wilber", "megan.bowen", "nestor.wilke", "lidia.holloway", "svc-backup")
_IPS = ("203.0.113.7", "198.51.100.23", "192.0.2.141", "2001:db8::1f", "203.0.113.88")


def api_time(t: dt.datetime) -> str:
    """The API's CreationTime / contentCreated form: UTC, no suffix on CreationTime."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class BlobRef:
    tenant: str
    content_type: str
    k: int

    @property
    def ct_index(self) -> int:
        return CONTENT_TYPES.index(self.content_type)


class ContentTimeline:
    def __init__(
        self,
        *,
        seed: int,
        origin: float,
        interval_secs: float,
        records_per_blob: int,
        duplicate_ratio: float,
        expired_ratio: float,
        retention_secs: float,
    ) -> None:
        self.seed = seed
        self.origin = origin
        self.interval = interval_secs
        self.records_per_blob = records_per_blob
        self.duplicate_ratio = duplicate_ratio
        self.expired_ratio = expired_ratio
        self.retention = retention_secs
        self._key = hashlib.sha256(f"o365-sim:{seed}".encode()).digest()

    # --- timeline ------------------------------------------------------------------------------

    def offset(self, content_type: str) -> float:
        # Content types publish out of phase, as the real workloads do.
        return self.interval * CONTENT_TYPES.index(content_type) / len(CONTENT_TYPES)

    def created(self, ref: BlobRef) -> float:
        return self.origin + ref.k * self.interval + self.offset(ref.content_type)

    def expires(self, ref: BlobRef) -> float:
        if self._rng(ref, "expired").random() < self.expired_ratio:
            return self.created(ref) + 1.0  # listed already expired, like the Elastic mock's third blob
        return self.created(ref) + self.retention

    def blobs_between(self, tenant: str, content_type: str, start: float, end: float, now: float) -> range:
        """Indices of blobs with ``start <= contentCreated < end`` that exist at ``now``."""
        off = self.origin + self.offset(content_type)
        first = max(0, math.ceil((start - off) / self.interval))
        stop = max(first, math.ceil((min(end, now + 1e-9) - off) / self.interval))
        # A blob created exactly at `now` exists; one created after it does not.
        while stop > first and off + (stop - 1) * self.interval > now:
            stop -= 1
        return range(first, stop)

    def available(self, ref: BlobRef, now: float) -> bool:
        return ref.k >= 0 and self.created(ref) <= now

    # --- identifiers ---------------------------------------------------------------------------

    def content_id(self, ref: BlobRef) -> str:
        stamp = dt.datetime.fromtimestamp(self.created(ref), dt.UTC).strftime("%Y%m%d%H")
        return f"{stamp}${ref.tenant.replace('-', '')}${ref.ct_index}${ref.k}${self._digest(ref)}"

    def parse_content_id(self, content_id: str) -> BlobRef | None:
        """The blob a content id names, or None if it was not issued by this timeline."""
        parts = content_id.split("$")
        if len(parts) != 5 or not parts[2].isdigit() or not parts[3].isdigit():
            return None
        ct_index, k = int(parts[2]), int(parts[3])
        if ct_index >= len(CONTENT_TYPES):
            return None
        try:
            tenant = str(uuid.UUID(parts[1]))
        except ValueError:
            return None
        ref = BlobRef(tenant, CONTENT_TYPES[ct_index], k)
        return ref if hmac.compare_digest(parts[4], self._digest(ref)) else None

    def _digest(self, ref: BlobRef) -> str:
        msg = f"{ref.tenant}|{ref.content_type}|{ref.k}".encode()
        return hmac.new(self._key, msg, hashlib.sha256).hexdigest()[:32]

    # --- records -------------------------------------------------------------------------------

    def records(self, ref: BlobRef) -> list[dict[str, Any]]:
        rng = self._rng(ref, "records")
        created = self.created(ref)
        out = [self._record(ref, rng, created, i) for i in range(self.records_per_blob)]
        if ref.k > 0 and self._rng(ref, "dup").random() < self.duplicate_ratio:
            out.append(self.records_nodup(BlobRef(ref.tenant, ref.content_type, ref.k - 1))[0])
        return out

    def records_nodup(self, ref: BlobRef) -> list[dict[str, Any]]:
        rng = self._rng(ref, "records")
        created = self.created(ref)
        return [self._record(ref, rng, created, i) for i in range(self.records_per_blob)]

    def unique_ids(self, tenant: str, content_type: str, start: float, end: float, now: float) -> set[str]:
        """Every record Id served in blobs created in ``[start, end)`` (tests compare against it)."""
        ids: set[str] = set()
        for k in self.blobs_between(tenant, content_type, start, end, now):
            ids.update(r["Id"] for r in self.records(BlobRef(tenant, content_type, k)))
        return ids

    def _rng(self, ref: BlobRef, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}:{ref.tenant}:{ref.content_type}:{ref.k}:{purpose}")

    def _record(self, ref: BlobRef, rng: random.Random, created: float, i: int) -> dict[str, Any]:
        # Events reach the feed 60-90 minutes after they happen (no SLA).
        when = dt.datetime.fromtimestamp(created - rng.uniform(3600, 5400), dt.UTC)
        user = f"{rng.choice(_USERS)}@contoso.onmicrosoft.com"
        base: dict[str, Any] = {
            "CreationTime": api_time(when),
            "Id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "OrganizationId": ref.tenant,
            "UserKey": f"10032001{rng.getrandbits(28):07X}",
            "UserType": 0,
            "UserId": user,
            "ClientIP": rng.choice(_IPS),
            "ResultStatus": "Succeeded",
        }
        base.update(_WORKLOAD[ref.content_type](rng, user, base["CreationTime"], i))
        return base


def _aad(rng: random.Random, user: str, when: str, i: int) -> dict[str, Any]:
    failed = rng.random() < 0.1
    return {
        "RecordType": 15,
        "Workload": "AzureActiveDirectory",
        "Operation": "UserLoginFailed" if failed else "UserLoggedIn",
        "ResultStatus": "Failed" if failed else "Success",
        "ObjectId": "00000003-0000-0000-c000-000000000000",
        "AzureActiveDirectoryEventType": 1,
        "ApplicationId": "00000002-0000-0ff1-ce00-000000000000",
        "ExtendedProperties": [
            {"Name": "ResultStatusDetail", "Value": "Success"},
            {"Name": "UserAgent", "Value": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"},
            {"Name": "RequestType", "Value": "OAuth2:Token"},
        ],
        "ActorIpAddress": rng.choice(_IPS),
        "ErrorNumber": "50126" if failed else "0",
    }


def _exchange(rng: random.Random, user: str, when: str, i: int) -> dict[str, Any]:
    op = rng.choice(("MailItemsAccessed", "Send", "MoveToDeletedItems", "Set-Mailbox"))
    rec: dict[str, Any] = {
        "RecordType": 1 if op == "Set-Mailbox" else 2,
        "Workload": "Exchange",
        "Operation": op,
        "ObjectId": f"/Mailbox/{user}",
        "MailboxOwnerUPN": user,
        "LogonType": 0,
        "ClientInfoString": "Client=OutlookService;Outlook-iOS/2.0;",
    }
    if op == "MailItemsAccessed":
        # Stringified JSON, as the service sends it.
        rec["OperationProperties"] = [{"Name": "MailAccessType", "Value": "Bind"}]
        rec["AirInvestigationData"] = '[{"Name":"IsThrottled","Value":"False"}]'
    return rec


def _sharepoint(rng: random.Random, user: str, when: str, i: int) -> dict[str, Any]:
    name = f"Q{rng.randint(1, 4)}-report-{rng.randint(100, 999)}.xlsx"
    site = "https://contoso.sharepoint.com/sites/finance"
    return {
        "RecordType": 6,
        "Workload": rng.choice(("SharePoint", "OneDrive")),
        "Operation": rng.choice(("FileAccessed", "FileDownloaded", "FileModified", "SharingSet")),
        "ObjectId": f"{site}/Shared Documents/{name}",
        "SiteUrl": f"{site}/",
        "SourceFileName": name,
        "SourceFileExtension": "xlsx",
        "SourceRelativeUrl": "Shared Documents",
        "UserAgent": "Microsoft Office Excel 2014",
        "ItemType": "File",
    }


def _general(rng: random.Random, user: str, when: str, i: int) -> dict[str, Any]:
    if rng.random() < 0.2:
        # The real service writes QueryTime twice into this string; parsers must cope.
        alert = f'{{"QueryTime":"{when}","QueryTime":"{when}Z","AlertId":"{i}"}}'
        return {
            "RecordType": 40,
            "Workload": "SecurityComplianceCenter",
            "Operation": "AlertTriggered",
            "ObjectId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "Severity": rng.choice(("Low", "Medium", "High")),
            "Category": "ThreatManagement",
            "Data": alert,
        }
    return {
        "RecordType": 25,
        "Workload": "MicrosoftTeams",
        "Operation": rng.choice(("MemberAdded", "ChannelAdded", "TeamsSessionStarted")),
        "ObjectId": "19:meeting_abc@thread.v2",
        "TeamName": "Incident Response",
        "CommunicationType": "Team",
    }


def _dlp(rng: random.Random, user: str, when: str, i: int) -> dict[str, Any]:
    exchange = rng.random() < 0.5
    return {
        "RecordType": 13 if exchange else 11,
        "Workload": "Exchange" if exchange else "SharePoint",
        "Operation": "DlpRuleMatch",
        "ObjectId": f"<{rng.getrandbits(64):x}@contoso.com>" if exchange else "/sites/finance/report.xlsx",
        "IncidentId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "PolicyDetails": [
            {
                "PolicyId": "9a0f3b44-0000-4c4c-8d8d-0a0b0c0d0e0f",
                "PolicyName": "U.S. Financial Data",
                "Rules": [{"RuleName": "Credit card numbers", "Severity": "High", "Actions": ["NotifyUser"]}],
            }
        ],
        "SensitiveInfoDetectionIsIncluded": True,
    }


_WORKLOAD = {
    "Audit.AzureActiveDirectory": _aad,
    "Audit.Exchange": _exchange,
    "Audit.SharePoint": _sharepoint,
    "Audit.General": _general,
    "DLP.All": _dlp,
}
