"""What a user writes to send logs to Microsoft Sentinel through the Logs Ingestion API.

Everything here is checked without I/O (``logferry validate``): the endpoint scheme, the DCR
immutable id, the table definition, the batch cap and the cloud presets. The request URL and
the token authority are worked out once, here, so the sink only sends. Example::

    sinks:
      sentinel:
        type: sentinel
        inputs: [mesh]
        endpoint: https://my-dce-5kyl.eastus-1.ingest.monitor.azure.com
        dcr_immutable_id: dcr-00112233445566778899aabbccddeeff
        table: meshStackEventLogs_CL
        auth:
          type: client_secret
          tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
          client_id: 0b5d6c3e-1111-4222-8333-944455556666
          client_secret: ${env:SENTINEL_CLIENT_SECRET}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from yarl import URL

from logferry.config.azure import ApiCappedBatch, Cloud
from logferry.config.base import BuildContext, SinkConfig, TLSConfig
from logferry.config.entra import CertificateAuth, ClientSecretAuth, EntraAuth
from logferry.core.registry import register_sink
from logferry.net.http import is_loopback
from logferry.schemas import available_tables, load_table

if TYPE_CHECKING:
    from logferry.sinks.sentinel.service import SentinelSink

__all__ = [
    "API_MAX_BYTES",
    "API_VERSION",
    "CLOUDS",
    "CertificateAuth",
    "ClientSecretAuth",
    "SentinelBatch",
    "SentinelConfig",
]

API_VERSION = "2023-01-01"
#: The Logs Ingestion API refuses calls over 1 MB, compressed or not; Microsoft's SDK measures the
#: uncompressed JSON array, so that is what we cap (a gzip body is always smaller).
API_MAX_BYTES = 1_048_576
MIN_BATCH_BYTES = 1024
DEFAULT_MAX_EVENTS = 10_000
DEFAULT_GZIP_LEVEL = 1  # ISA-L level 1: far cheaper than zlib level 6 (bench/gzip_levels.py)
DEFAULT_TIMEOUT_SECS = 30.0

Compression = Literal["gzip", "none"]
DEFAULT_CLOUD: Cloud = "public"
DEFAULT_COMPRESSION: Compression = "gzip"

#: Per sovereign cloud: the Entra ID authority host and the Azure Monitor token scope.
CLOUDS: dict[Cloud, tuple[str, str]] = {
    "public": ("https://login.microsoftonline.com", "https://monitor.azure.com/.default"),
    "usgov": ("https://login.microsoftonline.us", "https://monitor.azure.us/.default"),
    "china": ("https://login.chinacloudapi.cn", "https://monitor.azure.cn/.default"),
}


class SentinelBatch(ApiCappedBatch):
    api_max_bytes: ClassVar[int] = API_MAX_BYTES
    api_limit: ClassVar[str] = f"the Logs Ingestion API limit of {API_MAX_BYTES} bytes per request"

    max_bytes: int = Field(
        default=API_MAX_BYTES,
        ge=MIN_BATCH_BYTES,
        description="Largest request, measured on the uncompressed JSON array. "
        f"The API refuses calls over {API_MAX_BYTES} bytes, which is also the highest value allowed.",
        examples=[API_MAX_BYTES, 524_288],
    )
    max_events: int = Field(
        default=DEFAULT_MAX_EVENTS,
        gt=0,
        description="Most records in one request.",
        examples=[DEFAULT_MAX_EVENTS],
    )


@register_sink("sentinel")
class SentinelConfig(SinkConfig):
    """Microsoft Sentinel / Log Analytics through a data collection rule (DCR)."""

    type: Literal["sentinel"] = Field(description="Sink type.", examples=["sentinel"])
    endpoint: str = Field(
        description="Logs ingestion URL of the data collection endpoint (DCE), or of the DCR itself "
        "for DCRs of kind Direct. https is required except for a loopback host.",
        examples=["https://my-dce-5kyl.eastus-1.ingest.monitor.azure.com"],
    )
    dcr_immutable_id: str = Field(
        pattern=r"^dcr-[0-9a-f]{32}$",
        description="The DCR's immutable id (DCR → JSON view → immutableId).",
        examples=["dcr-00112233445566778899aabbccddeeff"],
    )
    stream_name: str | None = Field(
        default=None,
        pattern=r"^(Custom|Microsoft)-[A-Za-z0-9_]{1,60}$",
        description="The DCR stream declaration to send to. Default: the stream of `table`.",
        examples=["Custom-meshStackEventLogs_CL"],
    )
    table: str | None = Field(
        default=None,
        description="A shipped table definition that maps records to the table's columns. "
        "Unset: records are sent unchanged and the DCR transform must shape them.",
        examples=["meshStackEventLogs_CL"],
    )
    include_event_id: bool = Field(
        default=False,
        description="Also send the optional EventId column (add it to the table and the DCR stream first).",
        examples=[True],
    )
    auth: EntraAuth = Field(
        description="How the app signs in to Entra ID; the app needs the Monitoring Metrics Publisher "
        "role on the DCR."
    )
    cloud: Cloud = Field(
        default=DEFAULT_CLOUD,
        description="Azure cloud; picks the Entra ID authority host and the Azure Monitor token scope.",
        examples=["usgov"],
    )
    authority_host: str | None = Field(
        default=None,
        description="Entra ID authority host, overriding the cloud's.",
        examples=["https://login.microsoftonline.us"],
    )
    token_scope: str | None = Field(
        default=None,
        min_length=1,
        description="OAuth scope of the token, overriding the cloud's. It must match the cloud.",
        examples=["https://monitor.azure.com//.default"],
    )
    batch: SentinelBatch = Field(default_factory=lambda: SentinelBatch(), description="Request size limits.")
    compression: Compression = Field(
        default=DEFAULT_COMPRESSION, description="Request body compression.", examples=["none"]
    )
    gzip_level: int = Field(
        default=DEFAULT_GZIP_LEVEL,
        ge=1,
        le=9,
        description="gzip level on zlib's 1-9 scale (compressed with ISA-L: 1 → 1, 2-5 → 2, 6-9 → 3); "
        "1 is fastest for log text.",
        examples=[6],
    )
    timeout_secs: float = Field(
        default=DEFAULT_TIMEOUT_SECS,
        gt=0,
        description="Time limit of one request, from connecting to the last byte.",
        examples=[10],
    )
    tls: TLSConfig = Field(
        default_factory=lambda: TLSConfig.model_validate({}), description="TLS for the endpoint and Entra ID."
    )

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_https(cls, v: str) -> str:
        return _check_url(v, "endpoint")

    @field_validator("authority_host")
    @classmethod
    def _authority_is_https(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v, "authority_host")

    @field_validator("table")
    @classmethod
    def _table_is_shipped(cls, v: str | None) -> str | None:
        if v is not None and v not in available_tables():
            raise ValueError(f"no table definition named {v!r}; known: {', '.join(available_tables())}")
        return v

    @model_validator(mode="after")
    def _stream_is_known(self) -> SentinelConfig:
        if self.table is None:
            if self.stream_name is None:
                raise ValueError("stream_name is required when table is not set")
            if self.include_event_id:
                raise ValueError("include_event_id needs a table definition; set table")
        elif self.include_event_id and load_table(self.table).column("EventId") is None:
            raise ValueError(f"include_event_id: table {self.table} has no EventId column")
        return self

    @property
    def stream(self) -> str:
        if self.stream_name is not None:
            return self.stream_name
        assert self.table is not None  # guaranteed by _stream_is_known
        return load_table(self.table).stream

    @property
    def ingest_url(self) -> str:
        return (
            f"{self.endpoint}/dataCollectionRules/{self.dcr_immutable_id}"
            f"/streams/{self.stream}?api-version={API_VERSION}"
        )

    @property
    def resolved_authority_host(self) -> str:
        return self.authority_host or CLOUDS[self.cloud][0]

    @property
    def resolved_token_scope(self) -> str:
        return self.token_scope or CLOUDS[self.cloud][1]

    def build(self, name: str, ctx: BuildContext) -> SentinelSink:
        from logferry.sinks.sentinel.service import SentinelSink  # service imports this module

        return SentinelSink(
            name,
            self,
            ctx.session(self.tls.settings()),
            logger=ctx.logger.getChild(name),
            metrics=ctx.metrics,
        )


def _check_url(value: str, field: str) -> str:
    try:
        url = URL(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field} is not a URL: {exc}") from exc
    if url.scheme not in ("https", "http") or not url.host:
        raise ValueError(f"{field} must be an https:// URL with a host, got {value!r}")
    if url.scheme == "http" and not is_loopback(url):
        # A bearer token would travel in clear text; only a local simulator or proxy may use http.
        raise ValueError(f"{field} must use https (http is allowed only for a loopback host), got {value!r}")
    if url.query_string or url.fragment:
        raise ValueError(f"{field} must not carry a query or fragment, got {value!r}")
    return value.rstrip("/")
