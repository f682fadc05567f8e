"""Configuration of the ``cisco_umbrella`` source: Cisco Umbrella / Secure Access logs in S3.

The type is named after the product, not after S3: bucket layout (``<prefix>/<type>logs/<date>/…``),
the log types to collect and the CSV decoding are Umbrella's. The S3 and SQS machinery next to this
module (``client.py``, ``sqs.py``, ``checkpoint.py``) knows nothing of Umbrella, so another S3-hosted
log export can become a second small config + source later.

Example::

    sources:
      umbrella:
        type: cisco_umbrella
        bucket: cisco-managed-eu-central-1
        prefix: 1234567_0123456789abcdef0123456789abcdef01234567
        region: eu-central-1
        access_key_id: ${env:UMBRELLA_S3_ACCESS_KEY_ID}
        secret_access_key: ${env:UMBRELLA_S3_SECRET_ACCESS_KEY}
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from logferry.config.base import BuildContext, SourceConfig, TLSConfig, check_api_url
from logferry.config.secrets import Secret
from logferry.core.registry import register_source

if TYPE_CHECKING:
    from logferry.sources.s3.source import UmbrellaSource

__all__ = ["DEFAULT_LOG_TYPES", "FOLDERS", "LogType", "UmbrellaConfig"]

LogType = Literal["dns", "proxy", "ip", "firewall", "intrusion", "dlp", "audit", "ravpn", "ztna"]

#: The S3 folders of each log type (specs/umbrella.md §1). Cloud firewall logs have had three
#: folder names; all are listed, an absent folder costs one empty listing per interval.
FOLDERS: dict[str, tuple[str, ...]] = {
    "dns": ("dnslogs",),
    "proxy": ("proxylogs",),
    "ip": ("iplogs",),
    "firewall": ("firewalllogs", "cloudfirewalllogs", "cdfwlogs"),
    "intrusion": ("intrusionlogs",),
    "dlp": ("dlplogs",),
    "audit": ("auditlogs",),
    "ravpn": ("ravpnlogs", "vpnlogs"),
    "ztna": ("ztnalogs",),
}
#: The log types Umbrella itself documents; the Secure Access VPN/ZTNA types are opt-in.
DEFAULT_LOG_TYPES: tuple[LogType, ...] = ("dns", "proxy", "ip", "firewall", "intrusion", "dlp", "audit")

#: Umbrella uploads every 10 minutes (spec §1): listing every 5 minutes finds a file within one upload.
DEFAULT_INTERVAL_SECS = 300.0
#: With SQS notifications the listing is only a safety net for missed notifications.
DEFAULT_SQS_INTERVAL_SECS = 1800.0
#: Sentinel's connector lists 60 minutes before its checkpoint for files that arrive late (spec §2).
DEFAULT_LOOKBACK_SECS = 3600.0
DEFAULT_BATCH_ROWS = 5000
DEFAULT_TIMEOUT_SECS = 60.0

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@register_source("cisco_umbrella")
class UmbrellaConfig(SourceConfig):
    """Cisco Umbrella and Secure Access logs, written as gzip CSV to a Cisco-managed or your own S3 bucket."""

    type: Literal["cisco_umbrella"] = Field(description="Source type.", examples=["cisco_umbrella"])
    bucket: str = Field(
        description="S3 bucket name, without s3:// and without the path (Umbrella dashboard: the part of "
        "'Data Path' before the first '/').",
        examples=["cisco-managed-eu-central-1"],
    )
    prefix: str = Field(
        "",
        description="Folder inside the bucket that holds dnslogs/, proxylogs/, ... (Umbrella dashboard: "
        "the rest of 'Data Path'; for a multi-org console, the org's folder). Empty = bucket root.",
        examples=["1234567_0123456789abcdef0123456789abcdef01234567"],
    )
    log_types: list[LogType] = Field(
        default_factory=lambda: list(DEFAULT_LOG_TYPES),
        min_length=1,
        description="Log types to collect; each is one or more folders under prefix (firewall: "
        "firewalllogs, cloudfirewalllogs and cdfwlogs). 'ravpn' and 'ztna' are Secure Access only.",
        examples=[["dns", "proxy", "firewall"]],
    )
    region: str = Field(
        description="AWS region of the bucket (Umbrella dashboard shows it for a Cisco-managed bucket).",
        examples=["eu-central-1"],
    )
    access_key_id: Secret = Field(
        description="Access key id, by reference (Cisco-managed: shown once when the key is generated).",
        examples=["${env:UMBRELLA_S3_ACCESS_KEY_ID}"],
    )
    secret_access_key: Secret = Field(
        description="Secret access key, by reference. Cisco-managed keys must be rotated every 90 days.",
        examples=["${env:UMBRELLA_S3_SECRET_ACCESS_KEY}"],
    )
    endpoint_url: str | None = Field(
        None,
        description="S3 endpoint instead of AWS's (an S3-compatible store or a local test server); "
        "https, plain http only for localhost.",
        examples=["https://s3.eu-central-1.amazonaws.com"],
    )
    sqs_queue_url: str | None = Field(
        None,
        description="SQS queue that receives the bucket's s3:ObjectCreated:* notifications (self-managed "
        "bucket): new files are read as soon as they land, and the listing becomes a rarer safety net. "
        "The queue must serve this source only: every message is deleted once handled.",
        examples=["https://sqs.eu-central-1.amazonaws.com/123456789012/umbrella-logs"],
    )
    sqs_wait_secs: int = Field(
        10,
        ge=1,
        le=20,
        description="Long-poll time of one SQS ReceiveMessage; shutdown may wait this long.",
        examples=[10],
    )
    sqs_visibility_timeout_secs: int = Field(
        300,
        ge=30,
        le=43200,
        description="How long a received SQS message stays hidden from other receivers while its objects "
        "are read; it reappears (and is read again, duplicates dropped) if not deleted by then.",
        examples=[300],
    )
    interval_secs: float | None = Field(
        None,
        ge=1,
        description="Seconds between listings of the bucket. Default: 300 (Umbrella uploads every 10 "
        "minutes), or 1800 with sqs_queue_url.",
        examples=[300],
    )
    lookback_secs: float = Field(
        DEFAULT_LOOKBACK_SECS,
        ge=0,
        description="Files whose name is up to this much older than the newest file read are still "
        "picked up when they land late; older late files are missed unless SQS reports them.",
        examples=[3600],
    )
    initial_lookback_secs: float | None = Field(
        None,
        ge=0,
        description="On first start, read only files named within this many seconds before now. "
        "Default: every file in the bucket.",
        examples=[86400],
    )
    batch_rows: int = Field(
        DEFAULT_BATCH_ROWS,
        ge=1,
        le=100_000,
        description="CSV rows per commit; a crash re-reads at most this many rows of a file.",
        examples=[5000],
    )
    max_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Attempts per S3/SQS request (botocore standard retry mode) before the cycle fails "
        "and is retried with backoff.",
        examples=[3],
    )
    timeout_secs: float = Field(DEFAULT_TIMEOUT_SECS, gt=0, description="Per-request timeout.", examples=[60])
    tls: TLSConfig = Field(TLSConfig(), description="TLS settings for S3 and SQS.")

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if v.startswith("s3://") or "/" in v:
            bucket, _, path = v.removeprefix("s3://").partition("/")
            raise ValueError(
                f"is the bucket name only: write bucket: {bucket} and prefix: {path.strip('/') or '(none)'}"
            )
        if not _BUCKET_RE.match(v):
            raise ValueError("must be an S3 bucket name: 3-63 lowercase letters, digits, '.' or '-'")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        return f"{v}/" if v else ""

    @field_validator("log_types")
    @classmethod
    def _unique(cls, v: list[LogType]) -> list[LogType]:
        return list(dict.fromkeys(v))

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        return None if v is None else check_api_url(v, "https://s3.eu-central-1.amazonaws.com")

    @field_validator("sqs_queue_url")
    @classmethod
    def _queue(cls, v: str | None) -> str | None:
        return (
            None if v is None else check_api_url(v, "https://sqs.eu-central-1.amazonaws.com/123456789012/q")
        )

    @model_validator(mode="after")
    def _lookback_covers_listing(self) -> UmbrellaConfig:
        # With SQS, a file whose notification was lost is found only by the next listing; it must
        # still be inside the look-back then (checkpoint.py explains the horizon).
        if self.sqs_queue_url and self.listing_interval_secs > self.lookback_secs:
            raise ValueError(
                f"with sqs_queue_url, interval_secs ({self.listing_interval_secs:g}) must not exceed "
                f"lookback_secs ({self.lookback_secs:g}); raise lookback_secs or lower interval_secs"
            )
        return self

    @property
    def listing_interval_secs(self) -> float:
        if self.interval_secs is not None:
            return self.interval_secs
        return DEFAULT_SQS_INTERVAL_SECS if self.sqs_queue_url else DEFAULT_INTERVAL_SECS

    def folder_prefixes(self) -> list[str]:
        """Every ``<prefix><folder>/`` to list, in a stable order."""
        return [f"{self.prefix}{folder}/" for t in self.log_types for folder in FOLDERS[t]]

    def build(self, name: str, ctx: BuildContext) -> UmbrellaSource:
        from logferry.sources.s3.source import UmbrellaSource

        return UmbrellaSource(name, self, ctx)
