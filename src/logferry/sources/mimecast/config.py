"""What a user writes to collect Mimecast audit events and SIEM logs, type ``mimecast``.

Facts (shared/specs/mimecast.md): API 2.0 uses OAuth2 client credentials at ``{base}/oauth/token``
on ``https://api.services.mimecast.com``; API 1.0 signs every request with HMAC-SHA1 on a regional
host (``https://eu-api.mimecast.com``). Audit events work with either; the SIEM batch API needs
API 2.0, the legacy ``get-siem-logs`` API 1.0. Example::

    sources:
      mimecast:
        type: mimecast
        auth:
          type: oauth2
          client_id: 4mTq…
          client_secret: ${env:MIMECAST_CLIENT_SECRET}
        audit: {}
        siem:
          types: [receipt, delivery, url protect]
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated, Literal, get_args

from pydantic import Field, field_validator, model_validator

from logferry.config.base import BuildContext, Model, SourceConfig, TLSConfig, check_api_url
from logferry.config.secrets import Secret
from logferry.core.registry import register_source

if TYPE_CHECKING:
    from logferry.sources.mimecast.source import MimecastSource

__all__ = [
    "AUDIT_RETENTION_SECS",
    "CG_TYPES",
    "REGIONS",
    "AuditConfig",
    "HmacAuth",
    "LegacySiemConfig",
    "MimecastConfig",
    "OAuth2Auth",
    "SiemBatchConfig",
]

#: Base URL per region name. API 2.0 answers on one global host; the regional API 2.0 hosts come
#: from a third-party client (unconfirmed); API 1.0 hosts are regional (Elastic's default: eu).
REGIONS: dict[str, str] = {
    "global": "https://api.services.mimecast.com",
    "us": "https://us-api.services.mimecast.com",
    "uk": "https://uk-api.services.mimecast.com",
    "eu-v1": "https://eu-api.mimecast.com",
}
CgType = Literal[
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
]
#: Cloud Gateway batch types (mimecast.md §7.1); Elastic's default is all of them.
CG_TYPES: tuple[CgType, ...] = get_args(CgType)
DAY_SECS = 86_400.0
#: get-audit-events looks back 60 days; a day less keeps a queued window from crossing the edge.
AUDIT_RETENTION_SECS = 59 * DAY_SECS
#: Mimecast publishes no numeric quota (§4); this stays well below what its peers poll at and is
#: shared by every source using the same Mimecast user.
DEFAULT_MAX_RPS = 2.0


class OAuth2Auth(Model):
    """API 2.0: an API application's client id and secret (Administration | Services | API and
    Platform Integrations | API 2.0 Applications)."""

    type: Literal["oauth2"] = Field(description="API 2.0 OAuth2 client credentials.", examples=["oauth2"])
    client_id: str = Field(
        min_length=1, description="The API 2.0 application's client id.", examples=["4mTqW0X…"]
    )
    client_secret: Secret = Field(
        description="The application's client secret, by reference.",
        examples=["${env:MIMECAST_CLIENT_SECRET}"],
    )

    def account(self) -> str:
        return f"oauth2:{self.client_id}"


class HmacAuth(Model):
    """API 1.0: the application's id and key plus a user's access and secret key (HMAC-SHA1)."""

    type: Literal["hmac"] = Field(description="API 1.0 HMAC request signing.", examples=["hmac"])
    app_id: str = Field(
        min_length=1, description="Registered application id (x-mc-app-id).", examples=["8ebc…"]
    )
    app_key: Secret = Field(
        description="Registered application key, by reference.", examples=["${env:MIMECAST_APP_KEY}"]
    )
    access_key: Secret = Field(
        description="The API user's access key, by reference.", examples=["${env:MIMECAST_ACCESS_KEY}"]
    )
    secret_key: Secret = Field(
        description="The API user's secret key (base64, as the console shows it), by reference.",
        examples=["${env:MIMECAST_SECRET_KEY}"],
    )
    email: str | None = Field(
        None,
        description="The API user's email address. With `password`, an expired binding (HTTP 418) is "
        "refreshed automatically through /api/login/login; without, a 418 turns the source red with a "
        "message saying to set them or create new keys.",
        examples=["logferry-api@example.com"],
    )
    password: Secret | None = Field(
        None, description="The API user's password, by reference.", examples=["${env:MIMECAST_PASSWORD}"]
    )

    @model_validator(mode="after")
    def _both_or_neither(self) -> HmacAuth:
        if (self.email is None) != (self.password is None):
            raise ValueError("email and password go together: set both for binding refresh, or neither")
        return self

    def account(self) -> str:
        # The email names the user; without it the access key (a per-user key) stands in for it.
        return "hmac:" + (self.email or hashlib.sha256(self.access_key.reveal().encode()).hexdigest()[:16])


class AuditConfig(Model):
    """``POST /api/audit/get-audit-events`` in time windows (permission: Account | Logs | Read)."""

    page_size: int = Field(500, ge=1, le=500, description="Events per page (Sentinel's connectors use 500).")
    categories: list[str] = Field(
        default_factory=list,
        description="Only these audit categories (codes from /api/audit/get-categories); empty = all.",
        examples=[["authentication_logs"]],
    )
    query: str | None = Field(
        None, description="Free-text filter passed to the API.", examples=["admin@example.com"]
    )
    interval_secs: float = Field(300.0, ge=1, description="Seconds between polls once caught up.")
    window_secs: float = Field(
        3600.0, ge=60, le=DAY_SECS, description="Largest startDateTime/endDateTime window."
    )
    initial_lookback_secs: float = Field(
        7 * DAY_SECS,
        ge=0,
        description="On first start, how far back to collect; clamped to the API's 60 days (less one).",
    )
    lag_secs: float = Field(
        60.0,
        ge=0,
        description="Query only windows that ended this long ago, so late-indexed events are not missed.",
    )


class SiemBatchConfig(Model):
    """SIEM batch API (``/siem/v1/batch/events/cg``, API 2.0): gzip NDJSON files per log type."""

    types: list[CgType] = Field(
        default_factory=lambda: list(CG_TYPES),
        min_length=1,
        description="Cloud Gateway log types; each is its own lane with its own cursor.",
        examples=[["receipt", "delivery", "url protect"]],
    )
    page_size: int = Field(
        25,
        ge=1,
        le=100,
        description="File URLs per listing; a listing's files are downloaded before the next.",
    )
    initial_lookback_days: int = Field(
        1, ge=0, le=7, description="On first start, dateRangeStartsAt is this many days before today (UTC)."
    )
    interval_secs: float = Field(300.0, ge=1, description="Seconds between listings once isCaughtUp is true.")


class LegacySiemConfig(Model):
    """Legacy ``POST /api/audit/get-siem-logs`` (API 1.0): ZIP files and the ``mc-siem-token`` cursor."""

    file_format: Literal["key_value", "json"] = Field(
        "key_value", description="fileFormat requested (Sentinel's connector uses key_value)."
    )
    interval_secs: float = Field(
        300.0, ge=1, description="Seconds between requests once no new token comes back."
    )


@register_source("mimecast")
class MimecastConfig(SourceConfig):
    """Mimecast audit events and SIEM logs, each kind in its own lane with its own cursor."""

    type: Literal["mimecast"] = Field(description="Source type.", examples=["mimecast"])
    auth: Annotated[OAuth2Auth | HmacAuth, Field(discriminator="type")] = Field(
        description="API 2.0 (`type: oauth2`, recommended: API 1.0 is being retired) "
        "or API 1.0 (`type: hmac`)."
    )
    region: Literal["global", "us", "uk", "eu-v1"] = Field(
        "global",
        description="Base URL preset: global/us/uk are API 2.0 hosts (us and uk unconfirmed), eu-v1 the API "
        "1.0 host https://eu-api.mimecast.com. Use api_url for any other region.",
    )
    api_url: str | None = Field(
        None,
        description="Base URL overriding the region (an API 1.0 regional host, a proxy).",
        examples=["https://us-api.mimecast.com"],
    )
    audit: AuditConfig | None = Field(
        default_factory=AuditConfig, description="Audit events; null turns them off."
    )
    siem: SiemBatchConfig | None = Field(None, description="SIEM batch API logs (needs auth type oauth2).")
    siem_legacy: LegacySiemConfig | None = Field(
        None, description="Legacy SIEM logs through get-siem-logs (needs auth type hmac)."
    )
    account: str | None = Field(
        None,
        description="Name of the Mimecast user these credentials belong to. Mimecast limits requests "
        "per user across all of that user's keys, so sources naming the same account share one "
        "request budget. Default: the client id, the email, or the access key.",
        examples=["logferry-api@example.com"],
    )
    max_requests_per_sec: float = Field(
        DEFAULT_MAX_RPS,
        gt=0,
        description="Request budget per account; X-RateLimit-Remaining/-Reset and 429 slow it further.",
    )
    timeout_secs: float = Field(60.0, gt=0, description="Per-request timeout.")
    tls: TLSConfig = Field(TLSConfig(), description="TLS for the Mimecast API and batch file downloads.")

    @field_validator("api_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_api_url(v, "https://eu-api.mimecast.com")

    @model_validator(mode="after")
    def _kinds_fit_auth(self) -> MimecastConfig:
        if self.audit is None and self.siem is None and self.siem_legacy is None:
            raise ValueError("nothing to collect: enable audit, siem or siem_legacy")
        if self.siem is not None and self.auth.type != "oauth2":
            raise ValueError(
                "siem (the batch API) needs API 2.0: use auth type oauth2, or siem_legacy with hmac"
            )
        if self.siem_legacy is not None and self.auth.type != "hmac":
            raise ValueError(
                "siem_legacy (get-siem-logs) needs API 1.0: use auth type hmac, or siem with oauth2"
            )
        if self.auth.type == "hmac" and self.api_url is None and self.region != "eu-v1":
            raise ValueError(
                "API 1.0 (auth type hmac) is served on regional hosts: set region: eu-v1 or api_url"
            )
        return self

    @property
    def base_url(self) -> str:
        return self.api_url or REGIONS[self.region]

    def account_key(self) -> str:
        return self.account or self.auth.account()

    def build(self, name: str, ctx: BuildContext) -> MimecastSource:
        from logferry.sources.mimecast.source import MimecastSource

        return MimecastSource(name, self, ctx)
