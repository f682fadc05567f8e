"""Configuration of the ``syslog`` sink: where to send, the syslog header, and the body format.

Example (Falcon detections as CEF to an ArcSight or QRadar collector over TLS)::

    sinks:
      siem:
        type: syslog
        inputs: [falcon]
        host: collector.example.com
        protocol: tls                # udp | tcp | tls (port 6514 by default)
        body: cef                    # json | cef | leef
        mapping: falcon_cef          # shipped mapping, or a path to your own YAML file
        facility: local4
        tls:
          ca_file: /etc/logferry/collector-ca.pem
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from logferry.config.base import BuildContext, ClientTLSConfig, SinkConfig
from logferry.core.errors import ConfigError
from logferry.core.registry import register_sink
from logferry.formats.mapping import SHIPPED, load_mapping
from logferry.formats.syslog import FACILITY_NAMES, SEVERITY_NAMES, check_severity
from logferry.net.outbound import host_problem

if TYPE_CHECKING:
    from logferry.sinks.syslog.service import SyslogSink

__all__ = ["UDP_MAX_MESSAGE_BYTES", "SyslogSinkConfig"]

DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}
#: RFC 5426 §3.2: every receiver SHOULD take 2048 octets; larger datagrams risk fragmentation and loss.
UDP_DEFAULT_MAX_MESSAGE_BYTES = 2048
#: RFC 3164 §4.1: a BSD syslog packet MUST be 1024 bytes or less.
RFC3164_UDP_MAX_MESSAGE_BYTES = 1024
#: RFC 5425 §4.3.1 asks receivers to take 8192 octets, but rsyslog's default maxMessageSize is 8096
#: (checked with rsyslog 8.2302: 8097 bytes arrive cut to 8096, the rest as a bogus second message).
STREAM_DEFAULT_MAX_MESSAGE_BYTES = 8096
#: The largest UDP payload over IPv4.
UDP_MAX_MESSAGE_BYTES = 65_507
DEFAULT_MAPPINGS = {"cef": "generic_cef", "leef": "generic_leef"}
# RFC 5424 §6: header fields are PRINTUSASCII (33-126), with these maximum lengths.
_PRINTUSASCII = re.compile(r"[!-~]+")
_MAX_LENGTHS = {"hostname": 255, "app_name": 48, "msgid": 32}
# RFC 3164 §4.1.3: the TAG is at most 32 alphanumeric characters; logferry's own receiver and rsyslog
# also take '-', '_', '.' and '/'.
_TAG = re.compile(r"[A-Za-z0-9_./-]{1,32}")


@register_sink("syslog")
class SyslogSinkConfig(SinkConfig):
    """Send records as syslog messages (UDP, TCP or TLS; RFC 5424 or 3164) with a JSON, CEF or LEEF body."""

    type: Literal["syslog"] = Field(description="Send to a syslog collector.", examples=["syslog"])
    host: str = Field(
        min_length=1, description="Collector host name or IP address.", examples=["collector.example.com"]
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Collector port. Default 514 (udp, tcp) or 6514 (tls).",
        examples=[6514],
    )
    protocol: Literal["udp", "tcp", "tls"] = Field(
        "tcp",
        description="'tcp', 'tls' (RFC 5425, TLS 1.2 or later, server certificate verified) or 'udp' (RFC "
        "5426: no confirmation and no retry; a lost datagram is lost).",
        examples=["tls"],
    )
    framing: Literal["octet_counted", "lf"] | None = Field(
        None,
        description="TCP framing (RFC 6587): 'octet_counted' (length prefix; the default for rfc5424) or "
        "'lf' (one message per line; the default for rfc3164). TLS is always octet-counted (RFC 5425).",
        examples=["lf"],
    )
    header: Literal["rfc5424", "rfc3164"] = Field(
        "rfc5424",
        description="Syslog header: 'rfc5424' (ISO timestamp with milliseconds, UTC) or 'rfc3164' (BSD "
        "'Mmm dd hh:mm:ss' in UTC, no year; set the receiver's time zone to UTC).",
        examples=["rfc3164"],
    )
    facility: str = Field(
        "user", description="Facility name (RFC 5424: user, auth, local0 … local7, …).", examples=["local4"]
    )
    severity: str = Field(
        "notice",
        description="Severity name (emerg, alert, crit, err, warning, notice, info, debug) of every message, "
        "or of those whose severity_field gives no usable value.",
        examples=["info"],
    )
    severity_field: str | None = Field(
        None,
        description="Record field (dotted path) holding each message's severity: a number 0-7, a severity "
        "name, or a value listed in severity_map.",
        examples=["event.SeverityName"],
    )
    severity_map: dict[str, str] = Field(
        default_factory=dict,
        description="Value of severity_field (as text) → severity name.",
        examples=[
            {"Critical": "crit", "High": "err", "Medium": "warning", "Low": "notice", "Informational": "info"}
        ],
    )
    app_name: str = Field(
        "logferry",
        description="APP-NAME (rfc5424, up to 48 characters) or TAG (rfc3164, up to 32).",
        examples=["falcon"],
    )
    hostname: str | None = Field(
        None,
        description="HOSTNAME in the header. Default: this machine's host name.",
        examples=["logferry-01"],
    )
    msgid: str | None = Field(
        None, description="MSGID (rfc5424 only, up to 32 characters).", examples=["detection"]
    )
    timestamp_field: str | None = Field(
        None,
        description="Record field (dotted path) with the event time: ISO 8601 text, or Unix time in seconds "
        "(numbers above 10^11 are read as milliseconds). Default, or when the value cannot be read: the "
        "time the record was committed to the outbox.",
        examples=["metadata.eventCreationTime"],
    )
    body: Literal["json", "cef", "leef"] = Field(
        "json",
        description="Message body: 'json' (the record as compact JSON), 'cef' (ArcSight CEF) or 'leef' "
        "(IBM QRadar LEEF 2.0), the last two built by `mapping`.",
        examples=["cef"],
    )
    mapping: str | None = Field(
        None,
        description=f"CEF/LEEF field mapping: a shipped one ({', '.join(SHIPPED)}) or the path of your own "
        "YAML file (absolute, or relative to logferry's working directory; see docs/destinations/syslog.md). "
        "Default generic_cef or generic_leef.",
        examples=["falcon_cef"],
    )
    tls: ClientTLSConfig | None = Field(None, description="TLS settings for protocol 'tls'.")
    max_message_bytes: int | None = Field(
        None,
        ge=480,
        le=16 * 1024 * 1024,
        description="Longest message sent (header and body, without framing); a longer one goes to the "
        "dead-letter store with the reason, never truncated. Default 8096 for tcp and tls (rsyslog's "
        "default maxMessageSize; RFC 5425 asks for 8192), 2048 for udp (RFC 5426), 1024 for udp with "
        "rfc3164 (RFC 3164 §4.1). Set it to what the collector accepts.",
        examples=[8096],
    )
    timeout_secs: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Longest wait to connect (including the TLS handshake) and for the collector to take a "
        "request; then the connection is dropped and the request retried.",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        problem = host_problem(value)
        if problem is not None:
            raise ValueError(f"{problem}; give the collector's DNS name or IP address")
        return value

    @field_validator("facility")
    @classmethod
    def _facility(cls, value: str) -> str:
        if value not in FACILITY_NAMES:
            raise ValueError(f"unknown facility {value!r}; use one of {', '.join(FACILITY_NAMES)}")
        return value

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        return check_severity(value)

    @field_validator("severity_map")
    @classmethod
    def _severity_map(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted({v for v in value.values() if v not in SEVERITY_NAMES})
        if bad:
            raise ValueError(f"unknown severities {bad}; map values to {', '.join(SEVERITY_NAMES)}")
        return value

    @field_validator("hostname", "msgid", "app_name")
    @classmethod
    def _header_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        name = info.field_name or ""
        if value is not None and (_PRINTUSASCII.fullmatch(value) is None or len(value) > _MAX_LENGTHS[name]):
            raise ValueError(
                f"must be 1 to {_MAX_LENGTHS[name]} printable ASCII characters without spaces (RFC 5424 §6.2)"
            )
        return value

    @field_validator("mapping")
    @classmethod
    def _mapping_loads(cls, value: str | None) -> str | None:
        if value is not None:
            load_mapping(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SyslogSinkConfig:
        if self.protocol != "tls" and self.tls is not None:
            raise ValueError("a 'tls' block is only used with protocol: tls")
        if self.protocol == "udp" and self.framing is not None:
            raise ValueError("framing applies to tcp and tls only; remove it for protocol: udp")
        if self.protocol == "tls" and self.framing == "lf":
            raise ValueError(
                "framing: RFC 5425 syslog over TLS is octet-counted only; remove framing or use protocol: tcp"
            )
        if (
            self.protocol == "udp"
            and self.max_message_bytes is not None
            and self.max_message_bytes > UDP_MAX_MESSAGE_BYTES
        ):
            raise ValueError(f"max_message_bytes: a UDP datagram holds at most {UDP_MAX_MESSAGE_BYTES} bytes")
        if self.header == "rfc3164":
            if _TAG.fullmatch(self.app_name) is None:
                raise ValueError(
                    "app_name: an rfc3164 TAG is 1 to 32 characters of A-Z, a-z, 0-9, '_', '.', '/', '-'"
                )
            if self.msgid is not None:
                raise ValueError("msgid exists only in rfc5424 headers; remove it or set header: rfc5424")
        if self.body == "json" and self.mapping is not None:
            raise ValueError("mapping applies to body cef or leef; remove it or set body: cef")
        written = load_mapping(self.mapping).format if self.mapping is not None else self.body
        if written != self.body:
            raise ValueError(
                f"mapping {self.mapping!r} writes {written.upper()}, but body is {self.body!r}; use a "
                f"{self.body.upper()} mapping such as {DEFAULT_MAPPINGS.get(self.body)}"
            )
        return self

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port if self.port is not None else DEFAULT_PORTS[self.protocol]

    @property
    def wire_framing(self) -> Literal["octet_counted", "lf"]:
        if self.framing is not None:
            return self.framing
        return "lf" if self.header == "rfc3164" and self.protocol == "tcp" else "octet_counted"

    @property
    def message_limit(self) -> int:
        if self.max_message_bytes is not None:
            return self.max_message_bytes
        if self.protocol != "udp":
            return STREAM_DEFAULT_MAX_MESSAGE_BYTES
        return RFC3164_UDP_MAX_MESSAGE_BYTES if self.header == "rfc3164" else UDP_DEFAULT_MAX_MESSAGE_BYTES

    @property
    def mapping_name(self) -> str | None:
        return self.mapping if self.mapping is not None else DEFAULT_MAPPINGS.get(self.body)

    def build(self, name: str, ctx: BuildContext) -> SyslogSink:
        from logferry.sinks.syslog.service import SyslogSink

        tls_context = None
        if self.protocol == "tls":
            try:
                tls_context = (self.tls or ClientTLSConfig()).client_context()
            except ValueError as exc:
                raise ConfigError([f"sinks.{name}.{exc}"]) from None
        return SyslogSink(name, self, tls_context)
