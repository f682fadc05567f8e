"""What a user writes to collect CrowdStrike Falcon event streams, type ``crowdstrike``.

Facts (shared/specs/crowdstrike.md): one API host per cloud; OAuth2 client credentials at
``/oauth2/token`` (answers 201, 30-minute tokens, optional ``member_cid`` for an MSSP child);
event streams are discovered with an ``appId`` of 1-32 alphanumerics that must be unique per
active stream. Example::

    sources:
      falcon:
        type: crowdstrike
        cloud: eu-1
        client_id: 0123456789abcdef0123456789abcdef
        client_secret: ${env:FALCON_CLIENT_SECRET}
        app_id: logferryprod1
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from logferry.config.base import BuildContext, Model, SourceConfig, TLSConfig, check_api_url
from logferry.config.secrets import Secret
from logferry.core.registry import register_source

if TYPE_CHECKING:
    from logferry.sources.crowdstrike.source import CrowdStrikeSource

__all__ = ["CLOUDS", "AlertsConfig", "Cloud", "CrowdStrikeConfig", "OutputFormat"]

Cloud = Literal["us-1", "us-2", "eu-1", "us-gov-1", "us-gov-2"]
CLOUDS: dict[Cloud, str] = {
    "us-1": "https://api.crowdstrike.com",
    "us-2": "https://api.us-2.crowdstrike.com",
    "eu-1": "https://api.eu-1.crowdstrike.com",
    "us-gov-1": "https://api.laggar.gcw.crowdstrike.com",
    "us-gov-2": "https://api.us-gov-2.crowdstrike.mil",
}
OutputFormat = Literal["siem", "raw"]
APP_ID_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")

DEFAULT_BATCH_EVENTS = 1000
DEFAULT_FLUSH_SECS = 1.0
#: The Falcon SIEM Connector's connection_timeout default.
DEFAULT_IDLE_TIMEOUT_SECS = 120.0
DEFAULT_CONNECT_TIMEOUT_SECS = 10.0
DEFAULT_MAX_RPS = 5.0
#: A quiet stream proves itself alive at each session refresh (90% of Falcon's 1800 s interval)
#: and at each keepalive line; the default leaves room for one missed keepalive before that.
DEFAULT_STALE_AFTER_SECS = 1980.0


class AlertsConfig(Model):
    """Poll the Alerts API too (Elastic's alert input defaults)."""

    interval_secs: float = Field(
        300.0, ge=10, description="Seconds between polls once caught up.", examples=[300]
    )
    initial_lookback_secs: float = Field(
        86400.0,
        ge=0,
        description="On first start, how far back to collect (by updated_timestamp).",
        examples=[86400],
    )
    batch_size: int = Field(10000, ge=1, le=10000, description="Alerts per page (limit, at most 10000).")
    query: str | None = Field(
        None,
        min_length=1,
        description="Extra FQL ANDed to the updated_timestamp filter.",
        examples=["severity:>=50"],
    )


@register_source("crowdstrike")
class CrowdStrikeConfig(SourceConfig):
    """CrowdStrike Falcon Event Streams: detections, audit and other streaming events, every partition."""

    type: Literal["crowdstrike"] = Field(description="Source type.", examples=["crowdstrike"])
    cloud: Cloud = Field(
        "us-1",
        description="Falcon cloud of the CID; picks the API host.",
        examples=["eu-1"],
    )
    api_url: str | None = Field(
        None,
        description="API base URL, overriding the cloud's (a proxy or a simulator).",
        examples=["https://api.eu-1.crowdstrike.com"],
    )
    client_id: str = Field(
        min_length=1,
        description="Client ID of the Falcon API client; the client needs the scope 'Event streams: Read'.",
        examples=["0123456789abcdef0123456789abcdef"],
    )
    client_secret: Secret = Field(description="The API client's secret, by reference.")
    member_cid: str | None = Field(
        None,
        min_length=1,
        description="MSSP (Flight Control): the child CID to act on; default: the API client's own CID.",
        examples=["fedcba9876543210fedcba9876543210"],
    )
    app_id: str = Field(
        description="Label of this consumer (appId): 1-32 letters and digits. Use one value per logferry "
        "source and keep it: an appId must be unique per active stream, so two consumers sharing one "
        "get in each other's way.",
        examples=["logferryprod1"],
    )
    event_types: list[str] = Field(
        default_factory=list,
        description="Only these event types (the stream's eventType filter); empty = every type.",
        examples=[["DetectionSummaryEvent", "AuthActivityAuditEvent"]],
    )
    output_format: OutputFormat = Field(
        "siem",
        description="'siem': each event as the Falcon SIEM Connector's mapping names it (cat, duser, cn3 "
        "offset, ...; types without a mapping pass through unchanged); 'raw': the stream's "
        "{metadata, event} envelope as received.",
        examples=["raw"],
    )
    batch_events: int = Field(
        DEFAULT_BATCH_EVENTS,
        ge=1,
        le=10000,
        description="Events committed together per partition (with the new offset).",
    )
    flush_secs: float = Field(
        DEFAULT_FLUSH_SECS,
        gt=0,
        le=60,
        description="Longest time a read event waits before it is committed, when fewer than batch_events "
        "have arrived.",
    )
    connect_timeout_secs: float = Field(
        DEFAULT_CONNECT_TIMEOUT_SECS,
        gt=0,
        description="Time allowed to open the stream.",
    )
    idle_timeout_secs: float = Field(
        DEFAULT_IDLE_TIMEOUT_SECS,
        ge=1,
        description="Reconnect (from the last committed offset) when an open stream has sent nothing, "
        "not even a keepalive line, for this long: a connection silently dropped by a NAT or firewall "
        "would otherwise wait for ever. Falcon's own SIEM Connector uses a 30 s read timeout.",
    )
    timeout_secs: float = Field(30.0, gt=0, description="Per-request timeout of token, discover and refresh.")
    max_requests_per_sec: float = Field(
        DEFAULT_MAX_RPS,
        gt=0,
        description="Budget of API requests (token, discover, refresh) per API client, shared by every "
        "source using the same client.",
    )
    reconnect_max_secs: float = Field(
        60.0,
        ge=1,
        description="Longest wait between reconnection attempts after a stream failed.",
    )
    alerts: AlertsConfig | None = Field(
        None,
        description="Also poll the Alerts API (POST /alerts/combined/alerts/v1) as one more lane; the API "
        "client then also needs read access to alerts.",
        examples=[{"interval_secs": 300}],
    )
    tls: TLSConfig = Field(TLSConfig(), description="TLS for the API and the stream hosts.")

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_api_url(v, "https://api.crowdstrike.com")

    @field_validator("app_id")
    @classmethod
    def _app_id(cls, v: str) -> str:
        if not APP_ID_RE.match(v):
            raise ValueError(
                f"{v!r} is not a Falcon appId: use 1-32 letters and digits only (no dashes, dots or spaces), "
                "e.g. logferryprod1"
            )
        return v

    @field_validator("event_types")
    @classmethod
    def _types(cls, v: list[str]) -> list[str]:
        bad = [t for t in v if not re.fullmatch(r"[A-Za-z0-9]+", t)]
        if bad:
            raise ValueError(f"{bad} are not event type names; use names such as DetectionSummaryEvent")
        return v

    @property
    def base_url(self) -> str:
        return self.api_url or CLOUDS[self.cloud]

    def build(self, name: str, ctx: BuildContext) -> CrowdStrikeSource:
        from logferry.sources.crowdstrike.source import CrowdStrikeSource

        return CrowdStrikeSource(name, self, ctx)
