"""What a user writes to send logs through the legacy Azure Monitor HTTP Data Collector API.

Microsoft retired this API on 14 September 2026; the sink exists for workspaces that still accept
it (azure_monitor.md §3.6). Everything here is checked without I/O (``logferry validate``): the
workspace id, that the shared key is base64 (without echoing it), the Log-Type rules, the batch cap
under the API's 30 MB per post, and the endpoint. Example::

    sinks:
      legacy_la:
        type: log_analytics
        inputs: [mimecast]
        workspace_id: 0b5d6c3e-1111-4222-8333-944455556666
        shared_key: ${env:LA_SHARED_KEY}
        log_type: MimecastAudit          # the table becomes MimecastAudit_CL
        time_generated_field: time_generated
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from logferry.config.azure import GUID_PATTERN, ApiCappedBatch, Cloud
from logferry.config.base import BuildContext, SinkConfig, TLSConfig, check_api_url
from logferry.config.secrets import Secret
from logferry.core.registry import register_sink

if TYPE_CHECKING:
    from logferry.sinks.log_analytics.service import LogAnalyticsSink

__all__ = [
    "API_MAX_BYTES",
    "API_VERSION",
    "CLOUD_SUFFIXES",
    "DEFAULT_MAX_BYTES",
    "LogAnalyticsBatch",
    "LogAnalyticsConfig",
]

API_VERSION = "2016-04-01"
#: "Max 30 MB per post" (azure_monitor.md §3.4). Whether MB means 10^6 or 2^20 bytes is not
#: documented, so the smaller reading is the cap: a batch at the cap fits either way.
API_MAX_BYTES = 30_000_000
#: Smaller than the API allows: a retried or split 5 MB request costs little, a 30 MB one a lot.
DEFAULT_MAX_BYTES = 5_000_000
MIN_BATCH_BYTES = 1024
DEFAULT_MAX_EVENTS = 10_000
DEFAULT_TIMEOUT_SECS = 60.0
MAX_LOG_TYPE_CHARS = 100

#: The ODS host suffix per Azure cloud: https://{workspace_id}.ods.opinsights.{suffix}.
CLOUD_SUFFIXES: dict[Cloud, str] = {"public": "azure.com", "usgov": "azure.us", "china": "azure.cn"}

_LOG_TYPE = r"^[A-Za-z0-9_]+$"
#: A header value: aiohttp refuses control characters, and HTTP/1.1 promises nothing beyond ASCII.
_RESOURCE_ID = r"^/subscriptions/[!-~]+$"


class LogAnalyticsBatch(ApiCappedBatch):
    api_max_bytes: ClassVar[int] = API_MAX_BYTES
    api_limit: ClassVar[str] = "the Data Collector API's 30 MB per post"

    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=MIN_BATCH_BYTES,
        json_schema_extra={"maximum": API_MAX_BYTES},
        description="Largest request body (the JSON array) in bytes. The API takes at most 30 MB per "
        f"post, so {API_MAX_BYTES} is the highest value allowed.",
        examples=[DEFAULT_MAX_BYTES, API_MAX_BYTES],
    )
    max_events: int = Field(
        default=DEFAULT_MAX_EVENTS, gt=0, description="Most records in one request.", examples=[5000]
    )


@register_sink("log_analytics")
class LogAnalyticsConfig(SinkConfig):
    """A Log Analytics workspace through the legacy HTTP Data Collector API (retired 14 September 2026)."""

    type: Literal["log_analytics"] = Field(description="Sink type.", examples=["log_analytics"])
    workspace_id: str = Field(
        json_schema_extra={"pattern": GUID_PATTERN},
        description="The workspace id (Log Analytics workspace → Agents → Workspace ID), a GUID.",
        examples=["0b5d6c3e-1111-4222-8333-944455556666"],
    )
    shared_key: Secret = Field(
        description="The workspace's primary or secondary key (base64), by reference.",
        examples=["${env:LA_SHARED_KEY}"],
    )
    log_type: str = Field(
        json_schema_extra={"pattern": _LOG_TYPE, "maxLength": MAX_LOG_TYPE_CHARS},
        description="Record type: letters, digits and _ only, at most 100 characters. The service "
        "appends _CL, so MimecastAudit fills the table MimecastAudit_CL.",
        examples=["MimecastAudit"],
    )
    time_generated_field: str | None = Field(
        default=None,
        min_length=1,
        description="Top-level field whose ISO 8601 value becomes TimeGenerated (the API reads only "
        "top-level fields: 'event.created' names a field literally called so, not a nested one). The "
        "service uses the ingestion time when the value is missing, unparseable or more than 2 days "
        "old. Write the record's own key; it is sent renamed like every column (@timestamp → "
        "_timestamp), and a record key that would take the same column is renamed instead (_timestamp → "
        "_timestamp_2). Unset: ingestion time.",
        examples=["time_generated"],
    )
    azure_resource_id: str | None = Field(
        default=None,
        json_schema_extra={"pattern": _RESOURCE_ID},
        description="Azure resource id the records belong to; fills _ResourceId for resource-context access. "
        "It travels in a header, so only printable ASCII without spaces is accepted.",
        examples=["/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Web/sites/app"],
    )
    cloud: Cloud = Field(
        default="public",
        description="Azure cloud; picks the endpoint host (ods.opinsights.azure.com, .azure.us, .azure.cn).",
        examples=["usgov"],
    )
    endpoint: str | None = Field(
        default=None,
        description="Base URL overriding the cloud's https://{workspace_id}.ods.opinsights.azure.com "
        "(a proxy or a simulator); /api/logs is appended. https is required except for a loopback host.",
        examples=["https://ws-proxy.example.com"],
    )
    batch: LogAnalyticsBatch = Field(
        default_factory=lambda: LogAnalyticsBatch(), description="Request size limits."
    )
    timeout_secs: float = Field(
        default=DEFAULT_TIMEOUT_SECS,
        gt=0,
        description="Time limit of one request, from connecting to the last byte.",
        examples=[30],
    )
    tls: TLSConfig = Field(
        default_factory=lambda: TLSConfig.model_validate({}), description="TLS for the endpoint."
    )

    @field_validator("shared_key")
    @classmethod
    def _key_is_base64(cls, v: Secret) -> Secret:
        if not v.reveal():
            # A reference left unresolved (an unset variable for `logferry azure template`, a Key Vault
            # reference offline): the resolver reports it, and an empty key is not a malformed one.
            return v
        try:
            key = base64.b64decode(v.reveal(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if not key:
            # Never echo the value: it is the workspace key.
            raise ValueError(
                f"{v.ref} is not a base64 workspace key; copy the Primary Key from the workspace's "
                "Agents page (88 characters ending in '==')"
            )
        return v

    @field_validator("workspace_id")
    @classmethod
    def _workspace_is_guid(cls, v: str) -> str:
        if not re.fullmatch(GUID_PATTERN, v):
            raise ValueError(
                f"workspace_id must be the workspace's GUID (workspace → Agents → Workspace ID), got {v!r}"
            )
        return v

    @field_validator("log_type")
    @classmethod
    def _log_type_rules(cls, v: str) -> str:
        if not re.fullmatch(_LOG_TYPE, v) or len(v) > MAX_LOG_TYPE_CHARS:
            raise ValueError(
                f"log_type may hold only letters, digits and _, at most {MAX_LOG_TYPE_CHARS} characters "
                f"(the API's rule), got {v!r}"
            )
        # The service appends _CL itself; "X_CL" would fill a second table X_CL_CL.
        if v.upper().endswith("_CL"):
            raise ValueError(
                f"log_type is the name without _CL, which the service appends: write {v[:-3]!r} "
                f"to fill the table {v[:-3] + '_CL'!r} ({v!r} would create {v + '_CL'!r})"
            )
        return v

    @field_validator("azure_resource_id")
    @classmethod
    def _resource_id_fits_a_header(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(_RESOURCE_ID, v):
            raise ValueError(
                "azure_resource_id must start with /subscriptions/ and hold only printable ASCII, without "
                f"spaces or control characters (it is sent as the x-ms-AzureResourceId header), got {v!r}"
            )
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if "?" in v or "#" in v:
            raise ValueError("endpoint is a base URL without query or fragment; /api/logs is appended")
        return check_api_url(v, "https://ws-proxy.example.com")

    @property
    def url(self) -> str:
        base = self.endpoint or f"https://{self.workspace_id}.ods.opinsights.{CLOUD_SUFFIXES[self.cloud]}"
        return f"{base}/api/logs?api-version={API_VERSION}"

    def build(self, name: str, ctx: BuildContext) -> LogAnalyticsSink:
        from logferry.sinks.log_analytics.service import LogAnalyticsSink  # service imports this module

        return LogAnalyticsSink(
            name,
            self,
            ctx.session(self.tls.settings()),
            logger=ctx.logger.getChild(name),
            metrics=ctx.metrics,
        )
