"""What a user writes to send logs to Splunk through the HTTP Event Collector (HEC).

Checked without I/O: the URL (https except for a loopback host, the base URL without the
``/services/collector`` path, a query or credentials), the token reference (one line: it goes in a
header) and the field names. Example::

    sinks:
      splunk:
        type: splunk_hec
        inputs: [o365]
        url: https://splunk.example.com:8088
        token: ${env:SPLUNK_HEC_TOKEN}
        index: security
        sourcetype: o365:management:activity
        time_field: CreationTime
        ack: true
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator
from yarl import URL

from logferry.config.base import BuildContext
from logferry.config.secrets import Secret
from logferry.core.registry import register_sink
from logferry.sinks.http.common import CollectorSinkConfig, check_header_value

if TYPE_CHECKING:
    from logferry.sinks.http.hec_sink import HecSink

__all__ = ["SplunkHecConfig"]

_NAME = r"^[A-Za-z_][A-Za-z0-9_.:-]*$"
#: Indexed field names (``fields`` keys and ``id_field``): Splunk keeps names starting with _ for itself.
_FIELD_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
_FIELD_NAME_HELP = "letters, digits, _ . : -; not starting with _"
DEFAULT_ACK_TIMEOUT_SECS = 60.0
DEFAULT_ACK_POLL_SECS = 1.0


@register_sink("splunk_hec")
class SplunkHecConfig(CollectorSinkConfig):
    """Splunk Enterprise or Splunk Cloud through the HTTP Event Collector."""

    url_example: ClassVar[str] = "https://splunk.example.com:8088"

    type: Literal["splunk_hec"] = Field(description="Sink type.", examples=["splunk_hec"])
    url: str = Field(
        description="Base URL of the HEC (scheme, host and port; logferry adds /services/collector/event). "
        "https is required except for a loopback host; no query and no user:password@.",
        examples=["https://splunk.example.com:8088", "https://http-inputs-acme.splunkcloud.com"],
    )
    token: Secret = Field(
        description="The HEC token, by reference (one line: a trailing newline is refused).",
        examples=["${env:SPLUNK_HEC_TOKEN}"],
    )
    index: str | None = Field(
        default=None,
        pattern=_NAME,
        description="Index for the events; the token must be allowed to write to it. Unset: the token's "
        "default index.",
        examples=["security"],
    )
    sourcetype: str | None = Field(
        default=None,
        min_length=1,
        description="Sourcetype of the events. Unset: the token's default.",
        examples=["o365:management:activity", "_json"],
    )
    source: str | None = Field(
        default=None,
        min_length=1,
        description="Source of the events. Unset: the token's default (http:<token name>).",
        examples=["logferry:o365"],
    )
    host: str | None = Field(
        default=None,
        min_length=1,
        description="Host of the events. Unset: the address HEC received them from.",
        examples=["logferry-01"],
    )
    time_field: str | None = Field(
        default=None,
        min_length=1,
        description="Record field (a dotted path for nested ones) holding the event time: epoch seconds, "
        "milliseconds, microseconds or nanoseconds (told apart by magnitude), or ISO-8601 text (UTC when "
        "it has no offset). Missing, unset or unparsable: the time logferry committed the record.",
        examples=["CreationTime", "metadata.createdAt"],
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Indexed fields: field name (letters, digits, _ . : -; not starting with _) → record "
        "field (dotted path). Nested values are sent as their JSON text; missing ones are left out.",
        examples=[{"tenant": "OrganizationId", "vendor_user": "UserId"}],
    )
    id_field: str | None = Field(
        default=None,
        description="Add an indexed field of this name (named as fields keys are) holding the SHA-1 of "
        "the event's JSON, the same on every resend, so duplicates after an unacknowledged request can "
        "be removed at search time (| dedup NAME).",
        examples=["logferry_id"],
    )
    ack: bool = Field(
        default=False,
        description="Wait for indexer acknowledgement before a request counts as delivered (turn it on "
        "for the token too). Off: delivered when HEC answers 200, before the events are indexed.",
        examples=[True],
    )
    ack_poll_interval_secs: float = Field(
        default=DEFAULT_ACK_POLL_SECS,
        gt=0,
        le=60,
        description="Longest wait between two acknowledgement polls (polls start at 50 ms and back off).",
        examples=[DEFAULT_ACK_POLL_SECS],
    )
    ack_timeout_secs: float = Field(
        default=DEFAULT_ACK_TIMEOUT_SECS,
        gt=0,
        description="How long to wait for an acknowledgement before sending the request again.",
        examples=[DEFAULT_ACK_TIMEOUT_SECS, 300],
    )

    @field_validator("url")
    @classmethod
    def _url_is_base(cls, v: str) -> str:
        # Runs after CollectorSinkConfig's checks (https, no credentials).
        if "/services/collector" in v:
            base = v.split("/services/collector", 1)[0]
            raise ValueError(f"url is the HEC base URL without /services/collector...: use {base}")
        if URL(v).query_string or URL(v).fragment:
            raise ValueError("url is the HEC base URL (scheme, host and port): remove the ?query or #part")
        return v

    @field_validator("token")
    @classmethod
    def _token_is_one_line(cls, v: Secret) -> Secret:
        check_header_value(v.reveal(), "token")
        return v

    @field_validator("fields")
    @classmethod
    def _fields_are_named(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not re.fullmatch(_FIELD_NAME, name):
                raise ValueError(f"fields: {name!r} is not a field name Splunk indexes ({_FIELD_NAME_HELP})")
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"fields.{name}: {path!r} is not a record field or dotted path")
        return v

    @field_validator("id_field")
    @classmethod
    def _id_field_is_free(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and not re.fullmatch(_FIELD_NAME, v):
            raise ValueError(f"id_field: {v!r} is not a field name Splunk indexes ({_FIELD_NAME_HELP})")
        if v is not None and v in info.data.get("fields", {}):
            raise ValueError(f"id_field: {v!r} is also a key of fields; pick another name")
        return v

    def build(self, name: str, ctx: BuildContext) -> HecSink:
        from logferry.sinks.http.hec_sink import HecSink  # the sink module imports this one

        return HecSink(
            name,
            self,
            ctx.session(self.tls.settings()),
            logger=ctx.logger.getChild(name),
            metrics=ctx.metrics,
        )
