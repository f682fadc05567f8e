"""What a user writes to collect the Office 365 Management Activity API, type ``office365``.

Facts (shared/specs/office365.md): ``{root}/api/v1.0/{tenant}/activity/feed/…``; one root and one
token authority per cloud; windows on ``contentCreated`` of at most 24 h starting at most 7 days
back; ``NextPageUri`` paging; 2,000 requests/min per tenant baseline, throttled calls answer
``403 AF429``; ``PublisherIdentifier`` on every call, blob downloads included. Example::

    sources:
      o365:
        type: office365
        auth:
          type: client_secret
          tenant_id: 3f1e…          # the app's home tenant (also the default PublisherIdentifier)
          client_id: 0b5d…
          client_secret: ${env:O365_CLIENT_SECRET}
        tenants:                    # default: only the app's home tenant
          - tenant_id: 3f1e…
          - tenant_id: 9a7c…        # a customer tenant that consented to the app
            content_types: [Audit.AzureActiveDirectory]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from logferry.auth.entra import TokenVersion
from logferry.config.base import BuildContext, Model, SourceConfig, TLSConfig, check_api_url
from logferry.config.entra import EntraAuth
from logferry.config.secrets import Secret
from logferry.core.registry import register_source

if TYPE_CHECKING:
    from logferry.sources.o365.source import Office365Source

__all__ = [
    "CLOUDS",
    "CONTENT_TYPES",
    "Cloud",
    "ContentType",
    "Office365Config",
    "TenantConfig",
    "WebhookConfig",
]

ContentType = Literal[
    "Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint", "Audit.General", "DLP.All"
]
CONTENT_TYPES: tuple[ContentType, ...] = (
    "Audit.AzureActiveDirectory",
    "Audit.Exchange",
    "Audit.SharePoint",
    "Audit.General",
    "DLP.All",
)
Cloud = Literal["commercial", "gcc", "gcc_high", "dod"]
#: API root and Entra ID authority per cloud; the token resource is the API root.
CLOUDS: dict[Cloud, tuple[str, str]] = {
    "commercial": ("https://manage.office.com", "https://login.microsoftonline.com"),
    "gcc": ("https://manage-gcc.office.com", "https://login.microsoftonline.com"),
    "gcc_high": ("https://manage.office365.us", "https://login.microsoftonline.us"),
    "dod": ("https://manage.protection.apps.mil", "https://login.microsoftonline.us"),
}

DAY_SECS = 86_400.0
#: The API serves 7 days; start a little later so a window never crosses the edge while queued.
RETENTION_SECS = 7 * DAY_SECS - 600
DEFAULT_REQUESTS_PER_MINUTE = 1900


class TenantConfig(Model):
    tenant_id: str = Field(
        min_length=1,
        description="Directory (tenant) id to collect; the app must be consented there.",
        examples=["9a7c3b1e-5d2f-4e8a-b6c4-0f1e2d3c4b5a"],
    )
    auth: EntraAuth | None = Field(
        default=None,
        description="This tenant's own app registration; default: the source's auth "
        "(a multi-tenant app signing in to this tenant).",
    )
    content_types: list[ContentType] | None = Field(
        default=None,
        description="Content types for this tenant; default: the source's content_types.",
        examples=[["Audit.AzureActiveDirectory", "Audit.Exchange"]],
    )
    publisher_identifier: str | None = Field(
        default=None,
        description="PublisherIdentifier for this tenant's calls; default: the source's.",
        examples=["3f1e2d3c-4b5a-4e8a-b6c4-0f1e2d3c4b5a"],
    )

    @field_validator("tenant_id", "publisher_identifier")
    @classmethod
    def _guid(cls, v: str | None) -> str | None:
        return None if v is None else _check_guid(v)


class WebhookConfig(Model):
    """Notifications from Microsoft trigger downloads at once; polling stays on as the safety net."""

    address: str = Field(
        description="The public https URL Microsoft posts notifications to (a reverse proxy that forwards "
        "to `listen`); registered on every subscription.",
        examples=["https://logferry.example.com/o365/notifications"],
    )
    listen: str = Field(
        "127.0.0.1:8687",
        pattern=r"^[^:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$",
        description="host:port the receiver listens on (plain http; TLS ends at the proxy). "
        "Binds to localhost unless you say otherwise.",
        examples=["127.0.0.1:8687", "0.0.0.0:8687"],
    )
    auth_id: Secret = Field(
        description="Shared value Microsoft sends back in the Webhook-AuthID header; notifications "
        "without it are refused. By reference.",
        examples=["${env:O365_WEBHOOK_AUTH_ID}"],
    )

    @field_validator("address")
    @classmethod
    def _public_https(cls, v: str) -> str:
        # Microsoft posts only over TLS; a loopback http address serves local tests.
        return check_api_url(v, "https://logferry.example.com/o365/notifications")

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host.strip("[]"), int(port)


@register_source("office365")
class Office365Config(SourceConfig):
    """Office 365 Management Activity API: unified audit log content blobs, for one or many tenants."""

    type: Literal["office365"] = Field(description="Source type.", examples=["office365"])
    auth: EntraAuth = Field(
        description="The app registration: needs ActivityFeed.Read (and ActivityFeed.ReadDlp for DLP.All) "
        "on Office 365 Management APIs, with admin consent in every tenant collected."
    )
    tenants: list[TenantConfig] = Field(
        default_factory=list,
        description="Tenants to collect; default: the app's home tenant (auth.tenant_id) only.",
    )
    content_types: list[ContentType] = Field(
        default_factory=lambda: list(CONTENT_TYPES),
        min_length=1,
        description="Content types to collect; each needs its subscription (started automatically).",
        examples=[["Audit.AzureActiveDirectory", "Audit.Exchange", "Audit.SharePoint"]],
    )
    cloud: Cloud = Field(
        default="commercial",
        description="Microsoft 365 cloud; picks the API root and the Entra ID authority.",
        examples=["gcc_high"],
    )
    api_url: str | None = Field(
        default=None,
        description="API root, overriding the cloud's (a proxy); tokens are still for the cloud's API.",
        examples=["https://manage.office.com"],
    )
    authority_host: str | None = Field(
        default=None,
        description="Entra ID authority host, overriding the cloud's.",
        examples=["https://login.microsoftonline.us"],
    )
    token_version: TokenVersion = Field(
        default="v2",
        description="Entra ID token endpoint: 'v2' (scope https://manage.office.com/.default, through msal) "
        "or 'v1' (resource=https://manage.office.com, the form Microsoft's Management API guide shows); "
        "the host follows the cloud.",
    )
    publisher_identifier: str | None = Field(
        default=None,
        description="PublisherIdentifier sent on every call so requests count against your own quota "
        "instead of the shared one; default: auth.tenant_id (the tenant of the party running the collector).",
        examples=["3f1e2d3c-4b5a-4e8a-b6c4-0f1e2d3c4b5a"],
    )
    start_subscriptions: bool = Field(
        default=True,
        description="Start the subscription of every configured content type at startup "
        "(an already enabled one counts as success).",
    )
    webhook: WebhookConfig | None = Field(
        default=None,
        description="Also receive the API's change notifications, so new content is fetched as soon as "
        "it is announced. Microsoft notes webhooks are often slower than polling; polling keeps running.",
    )
    interval_secs: float = Field(300.0, ge=1, description="Seconds between polls once caught up.")
    window_secs: float = Field(
        3600.0,
        ge=60,
        le=DAY_SECS,
        description="Width of one content listing window on contentCreated (the API allows at most 24 h).",
    )
    initial_lookback_secs: float = Field(
        RETENTION_SECS,
        ge=0,
        description="On first start, how far back to collect; clamped to the API's 7 days (less 10 min).",
    )
    lag_secs: float = Field(
        120.0,
        ge=0,
        description="List only content created this long ago. Windows are on content availability, not "
        "event time; the lag covers content that becomes listable a little after its contentCreated.",
    )
    concurrency: int = Field(
        8, ge=1, le=64, description="Content blobs downloaded at once per tenant.", examples=[16]
    )
    requests_per_minute: float = Field(
        DEFAULT_REQUESTS_PER_MINUTE,
        gt=0,
        description="Request budget per tenant across listings and downloads. Microsoft's baseline is "
        "2,000/min; the default stays 5% under it so arrival jitter never trips AF429.",
    )
    timeout_secs: float = Field(60.0, gt=0, description="Per-request timeout.")
    tls: TLSConfig = Field(TLSConfig(), description="TLS for the API and Entra ID.")

    @field_validator("api_url", "authority_host")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return None if v is None else check_api_url(v, "https://manage.office.com")

    @field_validator("publisher_identifier")
    @classmethod
    def _publisher_guid(cls, v: str | None) -> str | None:
        return None if v is None else _check_guid(v)

    @model_validator(mode="after")
    def _unique_tenants(self) -> Office365Config:
        ids = [t.tenant_id for t in self.tenants]
        dup = sorted({t for t in ids if ids.count(t) > 1})
        if dup:
            raise ValueError(f"tenants lists {', '.join(dup)} more than once; list each tenant once")
        return self

    @property
    def root(self) -> str:
        return self.api_url or CLOUDS[self.cloud][0]

    @property
    def token_scope(self) -> str:
        return f"{CLOUDS[self.cloud][0]}/.default"

    @property
    def authority(self) -> str:
        return self.authority_host or CLOUDS[self.cloud][1]

    def publisher(self, tenant: TenantConfig) -> str:
        return tenant.publisher_identifier or self.publisher_identifier or self.auth.tenant_id

    def tenant_list(self) -> list[TenantConfig]:
        return self.tenants or [TenantConfig(tenant_id=self.auth.tenant_id)]

    def build(self, name: str, ctx: BuildContext) -> Office365Source:
        from logferry.sources.o365.source import Office365Source

        return Office365Source(name, self, ctx)


def _check_guid(v: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(v))
    except ValueError:
        raise ValueError(f"{v!r} is not a tenant GUID; use the directory id, not a domain name") from None
