"""Configuration of the ``syslog`` source: one listener (UDP, TCP or TLS) and how to read its messages.

Example (a Sophos firewall sending SFOS 19 lines over TCP to a collector on the LAN)::

    sources:
      sophos:
        type: syslog
        protocol: tcp
        listen: 0.0.0.0:5514
        format: sophos
        timezone: Europe/Berlin            # for legacy SFOS lines, whose zone is an abbreviation
        known_devices:
          C01001BQC8TFFFF: fw1.example.com
        allowed_senders: [10.20.0.0/24]

Several listeners (UDP and TCP on the same port, say) are several sources.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from logferry.config.base import BuildContext, Model, SourceConfig
from logferry.config.listen import parse_listen
from logferry.config.secrets import Secret
from logferry.core.registry import register_source
from logferry.formats.framing import DEFAULT_MAX_MESSAGE_BYTES
from logferry.formats.syslog import FACILITY_NAMES, check_severity

if TYPE_CHECKING:
    from logferry.sources.syslog.source import SyslogSource

__all__ = ["FORMATS", "SyslogConfig", "SyslogTLSConfig"]

FORMATS = ("syslog", "sophos", "cef", "leef", "kv", "esa")
DEFAULT_PORTS = {"udp": 514, "tcp": 514, "tls": 6514}


class SyslogTLSConfig(Model):
    """The listener's certificate, and the CA that client certificates must chain to (optional)."""

    cert_file: str = Field(
        description="PEM certificate (chain) the listener presents.", examples=["/etc/logferry/syslog.crt"]
    )
    key_file: str = Field(
        description="PEM private key of the certificate.", examples=["/etc/logferry/syslog.key"]
    )
    key_password: Secret | None = Field(
        None,
        description="Password of an encrypted key file, by reference.",
        examples=["${env:SYSLOG_KEY_PASS}"],
    )
    client_ca_file: str | None = Field(
        None,
        description="Require every sender to present a certificate issued by this CA (PEM): mutual TLS, "
        "the way to authenticate syslog senders. Without it any client may connect.",
        examples=["/etc/logferry/senders-ca.pem"],
    )


@register_source("syslog")
class SyslogConfig(SourceConfig):
    """Receive syslog over UDP, TCP or TLS (RFC 3164 and RFC 5424; LF or octet-counted framing)."""

    type: Literal["syslog"] = Field(description="Source type.", examples=["syslog"])
    protocol: Literal["udp", "tcp", "tls"] = Field(
        "udp", description="Transport: 'udp', 'tcp' or 'tls' (TCP with TLS).", examples=["tcp"]
    )
    listen: str | None = Field(
        None,
        description="Address and port to listen on. Default 127.0.0.1 (this machine only) on the "
        "protocol's standard port (514 for udp and tcp, 6514 for tls); '0.0.0.0:514' or '[::]:514' to "
        "accept senders on the network. Ports below 1024 need root or CAP_NET_BIND_SERVICE.",
        examples=["0.0.0.0:5514"],
    )
    format: Literal["syslog", "sophos", "cef", "leef", "kv", "esa"] = Field(
        "syslog",
        description="How the message body is read after the syslog header: 'syslog' (body kept as text "
        "in 'message'), 'sophos' (Sophos Firewall SFOS key=value, legacy and v19+), 'cef', 'leef', 'kv' "
        "(generic key=value), 'esa' (Cisco Secure Email text mail logs). A body that does not parse goes "
        "to the dead-letter store with the reason.",
        examples=["sophos"],
    )
    keep_raw: bool = Field(False, description="Keep the whole received line in the record's 'raw' field.")
    timezone: str = Field(
        "UTC",
        description="IANA time zone for timestamps that carry none (RFC 3164 headers, legacy Sophos "
        "date/time).",
        examples=["Europe/Berlin"],
    )
    known_devices: dict[str, str] = Field(
        default_factory=dict,
        description="Device serial number → host name, for senders that identify themselves only by "
        "serial (Sophos: device_serial_id / device_id). Sets 'device_hostname'.",
        examples=[{"C01001BQC8TFFFF": "fw1.example.com"}],
    )
    default_host_name: str | None = Field(
        None,
        description="'device_hostname' for Sophos lines from a serial not in known_devices "
        "(default: the syslog header's host, else the line's device_name).",
        examples=["sophos-fw"],
    )
    facilities: list[str] = Field(
        default_factory=list,
        description="Keep only these facilities (names as in RFC 5424: kern, user, mail, daemon, auth, "
        "syslog, …, local0 … local7); empty = all. Others are counted as filtered, not stored.",
        examples=[["local0", "local4"]],
    )
    severity: str = Field(
        "debug",
        description="Keep messages of this severity and more severe (emerg, alert, crit, err, warning, "
        "notice, info, debug), like rsyslog's '*.info' selector.",
        examples=["info"],
    )
    allowed_senders: list[str] = Field(
        default_factory=list,
        description="Accept only senders whose address is in one of these networks (CIDR); empty = any. "
        "UDP datagrams and TCP connections from elsewhere are dropped and counted.",
        examples=[["10.20.0.0/24", "192.0.2.7/32"]],
    )
    tls: SyslogTLSConfig | None = Field(
        None, description="Certificate settings; required for protocol 'tls'."
    )
    max_message_bytes: int = Field(
        DEFAULT_MAX_MESSAGE_BYTES,
        ge=480,
        le=16 * 1024 * 1024,
        description="Longest message accepted; a longer one goes to the dead-letter store (its first "
        "bytes) and the connection carries on. RFC 5424 receivers must take 480 bytes at least.",
    )
    framing: Literal["auto", "octet_counting", "non_transparent"] = Field(
        "auto",
        description="TCP/TLS framing: 'auto' detects per connection (a digit first: octet counting, "
        "RFC 6587 §3.4.1; otherwise LF/CRLF/NUL-terminated lines).",
    )
    max_connections: int = Field(
        1000, ge=1, description="Concurrent TCP/TLS connections; further ones are closed at once."
    )
    udp_receive_buffer_bytes: int = Field(
        8 * 1024 * 1024,
        ge=65536,
        description="SO_RCVBUF asked for the UDP socket: bursts beyond it are dropped by the kernel "
        "(counted in logferry_receiver_dropped_total{reason='kernel'}). Linux caps it at "
        "net.core.rmem_max.",
    )
    batch_events: int = Field(
        5000,
        ge=1,
        le=100_000,
        description="Messages committed to the outbox together. While the outbox pushes back, up to four "
        "times as many wait in memory and go in one transaction when it has room.",
    )
    flush_secs: float = Field(
        0.2, gt=0, le=60, description="Longest a received message waits before it is committed."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            parse_listen(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin") from None
        return value

    @field_validator("facilities")
    @classmethod
    def _facilities(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in FACILITY_NAMES]
        if unknown:
            raise ValueError(f"unknown facilities {unknown}; use {', '.join(FACILITY_NAMES)}")
        return value

    @field_validator("severity")
    @classmethod
    def _severity(cls, value: str) -> str:
        return check_severity(value)

    @field_validator("allowed_senders")
    @classmethod
    def _senders(cls, value: list[str]) -> list[str]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"{net!r} is not a network; write CIDR such as 10.0.0.0/8") from None
        return value

    @model_validator(mode="after")
    def _tls_needed(self) -> SyslogConfig:
        if self.protocol == "tls" and self.tls is None:
            raise ValueError("protocol 'tls' needs a 'tls' block with cert_file and key_file")
        if self.protocol != "tls" and self.tls is not None:
            raise ValueError("a 'tls' block is only used with protocol: tls")
        return self

    @property
    def address(self) -> tuple[str, int]:
        if self.listen is None:
            return "127.0.0.1", DEFAULT_PORTS[self.protocol]
        return parse_listen(self.listen)

    def build(self, name: str, ctx: BuildContext) -> SyslogSource:
        from logferry.sources.syslog.source import SyslogSource

        return SyslogSource(name, self, ctx)
