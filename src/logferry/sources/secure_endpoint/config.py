"""Configuration of the ``cisco_secure_endpoint`` source (Cisco Secure Endpoint / AMP for Endpoints).

Example::

    sources:
      amp:
        type: cisco_secure_endpoint
        region: eu
        client_id: a1b2c3d4e5f6a7b8c9d0          # the "3rd Party API Client ID"
        api_key: ${env:AMP_API_KEY}
        event_types: [1090519054, 1107296274]   # Threat Detected, Cloud IOC; empty = all
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from logferry.config.base import BuildContext, SourceConfig, TLSConfig, check_api_url
from logferry.config.secrets import Secret
from logferry.core.registry import register_source

if TYPE_CHECKING:
    from logferry.sources.secure_endpoint.source import SecureEndpointSource

__all__ = ["REGIONS", "SecureEndpointConfig"]

#: The API host of each region (specs/cisco_secure_endpoint.md §1).
REGIONS: dict[str, str] = {
    "nam": "https://api.amp.cisco.com",
    "eu": "https://api.eu.amp.cisco.com",
    "apjc": "https://api.apjc.amp.cisco.com",
}
#: The largest page seen in the vendor's data (Elastic's test data: items_per_page 500); the
#: documented maximum is unconfirmed, so logferry never asks for more.
MAX_PAGE_SIZE = 500
#: The quota in the vendor's own sample response (x-ratelimit-limit: 3000 per hour).
DEFAULT_REQUESTS_PER_HOUR = 3000.0
DEFAULT_INTERVAL_SECS = 60.0
DEFAULT_LOOKBACK_SECS = 86400.0
DEFAULT_OVERLAP_SECS = 60.0
DEFAULT_TIMEOUT_SECS = 60.0


@register_source("cisco_secure_endpoint")
class SecureEndpointConfig(SourceConfig):
    """Cisco Secure Endpoint (AMP for Endpoints) events: detections, quarantines, Cloud IOCs and more."""

    type: Literal["cisco_secure_endpoint"] = Field(
        description="Source type.", examples=["cisco_secure_endpoint"]
    )
    region: Literal["nam", "eu", "apjc"] = Field(
        "nam",
        description="The cloud your Secure Endpoint console runs in: 'nam' (api.amp.cisco.com), "
        "'eu' (api.eu.amp.cisco.com) or 'apjc' (api.apjc.amp.cisco.com).",
        examples=["eu"],
    )
    api_url: str | None = Field(
        None,
        description="Base URL of the API instead of the region's (a proxy or a simulator); no path.",
        examples=["https://api.eu.amp.cisco.com"],
    )
    client_id: str = Field(
        min_length=1,
        description="The API credential's '3rd Party API Client ID' (Accounts > API Credentials).",
        examples=["a1b2c3d4e5f6a7b8c9d0"],
    )
    api_key: Secret = Field(
        description="The API credential's API key, by reference. A read-only credential is enough.",
        examples=["${env:AMP_API_KEY}"],
    )
    event_types: list[int] = Field(
        default_factory=list,
        description="Only these event type ids (numeric, from GET /v1/event_types); empty = every type. "
        "Sent as repeated event_type[] in one query.",
        examples=[[1090519054, 553648143, 1107296274]],
    )
    page_size: int = Field(
        MAX_PAGE_SIZE,
        ge=1,
        le=MAX_PAGE_SIZE,
        description="Events per request (limit); 500 is the largest page the API is known to serve.",
        examples=[500],
    )
    interval_secs: float = Field(
        DEFAULT_INTERVAL_SECS,
        ge=1,
        description="Seconds between the end of one pass over new events and the start of the next.",
        examples=[60],
    )
    initial_lookback_secs: float = Field(
        DEFAULT_LOOKBACK_SECS,
        ge=0,
        description="On first start, how far back to collect (start_date = now minus this).",
        examples=[86400],
    )
    overlap_secs: float = Field(
        DEFAULT_OVERLAP_SECS,
        ge=0,
        description="Each pass starts this long before the newest event already collected, so events "
        "that show up late with an older date are still picked up; repeats are dropped by event id. "
        "Costs about overlap_secs x event rate / page_size extra requests per pass.",
        examples=[60],
    )
    requests_per_hour: float = Field(
        DEFAULT_REQUESTS_PER_HOUR,
        gt=0,
        description="Request budget of this API credential per hour, spread evenly; the x-ratelimit "
        "headers still stop requests early when the vendor says the quota is spent.",
        examples=[3000],
    )
    timeout_secs: float = Field(DEFAULT_TIMEOUT_SECS, gt=0, description="Per-request timeout.", examples=[60])
    tls: TLSConfig = Field(TLSConfig(), description="TLS settings for the Secure Endpoint API.")

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_api_url(v, "https://api.amp.cisco.com")

    @field_validator("event_types")
    @classmethod
    def _type_ids(cls, v: list[int]) -> list[int]:
        bad = [t for t in v if t <= 0]
        if bad:
            raise ValueError(
                f"event type ids are positive numbers from GET /v1/event_types (got {bad}); "
                "for example 1090519054 is Threat Detected"
            )
        return sorted(set(v))

    @property
    def base_url(self) -> str:
        return self.api_url or REGIONS[self.region]

    def build(self, name: str, ctx: BuildContext) -> SecureEndpointSource:
        from logferry.sources.secure_endpoint.source import SecureEndpointSource

        return SecureEndpointSource(name, self, ctx)
