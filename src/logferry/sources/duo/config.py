"""Configuration of the ``duo`` source (Cisco Duo Admin API logs)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from logferry.config.base import BuildContext, SourceConfig, TLSConfig
from logferry.config.secrets import Secret
from logferry.core.registry import register_source
from logferry.net.http import is_loopback

from .signing import SignatureScheme

if TYPE_CHECKING:
    from .source import DuoSource

__all__ = ["ALL_LOG_TYPES", "DuoConfig", "LogType"]

LogType = Literal["authentication", "administrator", "telephony", "activity", "trust_monitor"]
ALL_LOG_TYPES: list[LogType] = ["authentication", "administrator", "telephony", "activity", "trust_monitor"]

#: Duo answers nothing newer than two minutes (specs/duo.md §5); a shorter lag would close
#: windows before their events are served, losing them for good.
MIN_LAG_SECS = 120.0
DEFAULT_LAG_SECS = 180.0
#: The authentication log reaches back 180 days; trust monitor refuses ranges of 180 days or more.
RETENTION_SECS = 179 * 86400.0

_DUO_HOST = re.compile(r"^api-[a-z0-9]+\.duosecurity\.com$")
_LOOPBACK = re.compile(r"^(?P<host>localhost|127\.\d+\.\d+\.\d+|\[::1\]):\d{1,5}$")


@register_source("duo")
class DuoConfig(SourceConfig):
    type: Literal["duo"] = Field(description="Source type.", examples=["duo"])
    host: str = Field(
        description="The Admin API hostname shown on the application's page in the Duo Admin Panel "
        "(no https://, no path). A loopback host:port is accepted for the simulator.",
        examples=["api-1a2b3c4d.duosecurity.com"],
    )
    ikey: str = Field(
        min_length=1,
        description="The Admin API application's Integration key.",
        examples=["DIWJ8X6AEYOR5OMC6TQ1"],
    )
    skey: Secret = Field(
        description="The Admin API application's Secret key, by reference.",
        examples=["${env:DUO_SKEY}"],
    )
    log_types: list[LogType] = Field(
        default_factory=lambda: list(ALL_LOG_TYPES),
        min_length=1,
        description="Logs to collect, each with its own cursor and request budget.",
        examples=[["authentication", "administrator", "telephony"]],
    )
    signature: SignatureScheme = Field(
        "v5",
        description="Request signing: 'v5' (HMAC-SHA512 over params, body and x-duo headers; "
        "duo_client's default), 'v2-sha512' or the legacy 'v2-sha1'.",
        examples=["v5"],
    )
    requests_per_minute: float = Field(
        1.0,
        gt=0,
        description="Requests per minute to each log endpoint. Duo staff named 2 per minute; Elastic "
        "and field reports saw 429s above 1 per minute on the authentication log, so 1 is the default. "
        "429/42901 answers slow this down further.",
        examples=[1.0],
    )
    interval_secs: float = Field(
        60.0, ge=1, description="Seconds between polls once caught up (Duo: at most once a minute).",
        examples=[60.0],
    )  # fmt: skip
    window_secs: float = Field(
        3600.0,
        ge=60,
        le=RETENTION_SECS,
        description="Longest mintime/maxtime range per query; pages within it follow next_offset. "
        "At 1 request a minute an empty window costs a request too: raise it for a long, quiet lookback.",
        examples=[3600.0],
    )
    initial_lookback_secs: float = Field(
        86400.0,
        ge=0,
        le=RETENTION_SECS,
        description="On first start, how far back to collect (at most 179 days).",
        examples=[86400.0],
    )
    lag_secs: float = Field(
        DEFAULT_LAG_SECS,
        ge=MIN_LAG_SECS,
        description="maxtime = now minus this; at least 120 because Duo serves nothing newer. The "
        "default leaves a minute for clock skew: a window ending inside Duo's two minutes is served "
        "short and, once committed, never asked for again.",
        examples=[180.0],
    )
    page_size: int = Field(
        1000, ge=1, le=1000, description="Records per page (limit, max 1000).", examples=[1000]
    )
    timeout_secs: float = Field(30.0, gt=0, description="Per-request timeout.", examples=[30.0])
    tls: TLSConfig = Field(TLSConfig(), description="TLS settings for the Duo API.")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        host = v.strip().lower()
        if _DUO_HOST.match(host):
            return host
        loop = _LOOPBACK.match(host)
        if loop and is_loopback("https://" + host):
            return host
        raise ValueError(
            "must be the Admin API hostname like api-1a2b3c4d.duosecurity.com "
            "(from the Admin Panel's application page, without https:// or a path)"
        )

    @field_validator("log_types")
    @classmethod
    def _unique(cls, v: list[LogType]) -> list[LogType]:
        if len(set(v)) != len(v):
            raise ValueError("lists a log type twice; name each once")
        return v

    def build(self, name: str, ctx: BuildContext) -> DuoSource:
        from .source import DuoSource

        return DuoSource(name, self, ctx)
