"""What a user writes to ship records to Logstash's beats input (or any Lumberjack v2 server).

The options follow Filebeat's ``output.logstash`` where one exists, with the same defaults, so a
collector set up for Filebeat (BluSapphire-style) takes logferry unchanged. Checked without I/O
except ``build``, which loads the client certificate. Example::

    sinks:
      collector:
        type: logstash
        inputs: [o365]
        hosts: ["ls1.example.com:5044", "ls2.example.com:5044"]
        loadbalance: false
        tls:
          ca_file: /etc/logferry/collector-ca.pem
          cert_file: /etc/logferry/client.pem
          key_file: /etc/logferry/client.key
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from logferry.config.base import BuildContext, ClientTLSConfig, Model, SinkConfig
from logferry.core.errors import ConfigError
from logferry.core.registry import register_sink
from logferry.net.outbound import host_problem

if TYPE_CHECKING:
    from logferry.sinks.logstash.service import LogstashSink

__all__ = [
    "DEFAULT_COMPRESSION_LEVEL",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_PORT",
    "LogstashBatch",
    "LogstashConfig",
    "LogstashTLS",
    "parse_host",
]

DEFAULT_PORT = 5044
DEFAULT_MAX_EVENTS = 2048  # Filebeat's bulk_max_size
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_COMPRESSION_LEVEL = 3  # Filebeat's default
DEFAULT_TIMEOUT_SECS = 30.0  # Filebeat's timeout: the wait for an ACK
DEFAULT_MAX_ACK_WAIT_SECS = 300.0
DEFAULT_CONNECT_TIMEOUT_SECS = 10.0
DEFAULT_INDEX = "logferry"


def parse_host(value: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6addr]:port`` → (host, port); the port defaults to 5044."""
    text = value.strip()
    if not text:
        raise ValueError("a host must not be empty")
    if "://" in text or "/" in text:
        raise ValueError(f"{value!r} is not host:port (no scheme or path), e.g. logstash.example.com:5044")
    if text.startswith("["):
        addr, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r}: write an IPv6 address as [addr]:port")
        host, port_text = addr, rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif ":" in text:
        raise ValueError(f"{value!r}: write an IPv6 address as [addr]:port")
    else:
        host, port_text = text, ""
    if not host or any(c in host for c in "/ ?#@"):
        raise ValueError(f"{value!r} is not host:port (no scheme or path), e.g. logstash.example.com:5044")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


class LogstashTLS(ClientTLSConfig):
    """TLS to the beats input; a client certificate for its ``ssl_client_authentication``."""

    enabled: bool = Field(
        True,
        description="Use TLS. Leaving out the whole `tls` block means plain TCP.",
        examples=[True],
    )
    server_name: str | None = Field(
        None,
        description="Name to verify the server certificate against (and send as SNI) instead of the "
        "host being connected to, e.g. when hosts are IP addresses.",
        examples=["logstash.example.com"],
    )

    @field_validator("server_name")
    @classmethod
    def _server_name_valid(cls, v: str | None) -> str | None:
        if v is not None and (problem := host_problem(v)) is not None:
            raise ValueError(problem)
        return v


class LogstashBatch(Model):
    max_events: int = Field(
        DEFAULT_MAX_EVENTS,
        gt=0,
        description="Most events in one request (Filebeat's bulk_max_size); also the largest window.",
        examples=[DEFAULT_MAX_EVENTS],
    )
    max_bytes: int = Field(
        DEFAULT_MAX_BYTES,
        ge=1024,
        description="Largest request, counted on the uncompressed JSON documents. A single event "
        "larger than this is dead-lettered.",
        examples=[DEFAULT_MAX_BYTES],
    )


@register_sink("logstash")
class LogstashConfig(SinkConfig):
    """Logstash's beats input (Lumberjack v2), as Filebeat's Logstash output sends it."""

    type: Literal["logstash"] = Field(description="Sink type.", examples=["logstash"])
    hosts: list[str] = Field(
        min_length=1,
        description="Beats inputs to send to, as host:port (port 5044 if left out).",
        examples=[["logstash.example.com:5044"], ["ls1:5044", "ls2:5044"]],
    )
    loadbalance: bool = Field(
        False,
        description="false: send to one host and move to the next only when it fails (failover). "
        "true: take turns across all hosts, one request each. Either way a host that failed is "
        "tried after the others until its backoff (1 s doubling to 60 s) ends.",
        examples=[True],
    )
    index: str = Field(
        DEFAULT_INDEX,
        min_length=1,
        description="Sent as [@metadata][beat], which Logstash pipelines commonly use in the "
        "Elasticsearch index name. Set it to 'filebeat' if the pipeline expects Filebeat.",
        examples=[DEFAULT_INDEX, "filebeat"],
    )
    compression_level: int = Field(
        DEFAULT_COMPRESSION_LEVEL,
        ge=0,
        le=9,
        description="zlib level of compressed frames, 0 to send uncompressed (good on a local network).",
        examples=[DEFAULT_COMPRESSION_LEVEL, 0],
    )
    slow_start: bool = Field(
        False,
        description="Start with a window of 10 events, double it after every "
        "acknowledged window up to batch.max_events, and halve it after an error (Filebeat's "
        "slow_start). Off: every window is a whole request.",
        examples=[True],
    )
    timeout_secs: float = Field(
        DEFAULT_TIMEOUT_SECS,
        gt=0,
        description="How long to wait for the next ACK (or for a stalled write to move) before giving "
        "up on the connection; Logstash's keepalive ACKs while it is busy restart the wait.",
        examples=[DEFAULT_TIMEOUT_SECS],
    )
    max_ack_wait_secs: float = Field(
        DEFAULT_MAX_ACK_WAIT_SECS,
        gt=0,
        description="Longest wait for a window's ACK while Logstash sends only keepalives (its "
        "pipeline is blocked, e.g. an output is down). Then the connection is dropped, the host "
        "rests like a failed one and the request is retried, the other hosts first. An ACK of "
        "events restarts the wait.",
        examples=[DEFAULT_MAX_ACK_WAIT_SECS],
    )
    connect_timeout_secs: float = Field(
        DEFAULT_CONNECT_TIMEOUT_SECS,
        gt=0,
        description="Time limit of one connection attempt, TLS handshake included.",
        examples=[DEFAULT_CONNECT_TIMEOUT_SECS],
    )
    batch: LogstashBatch = Field(default_factory=lambda: LogstashBatch(), description="Request size limits.")
    tls: LogstashTLS | None = Field(
        None,
        description="TLS settings; leave out for plain TCP (the beats input's default).",
    )

    @field_validator("hosts")
    @classmethod
    def _hosts_parse(cls, v: list[str]) -> list[str]:
        seen: set[tuple[str, int]] = set()
        for h in v:
            addr = parse_host(h)
            if (problem := host_problem(addr[0])) is not None:
                raise ValueError(problem)
            if addr in seen:
                raise ValueError(f"{h!r} is listed twice")
            seen.add(addr)
        return v

    @model_validator(mode="after")
    def _waits(self) -> LogstashConfig:
        if self.max_ack_wait_secs < self.timeout_secs:
            raise ValueError(
                f"max_ack_wait_secs ({self.max_ack_wait_secs:g}) is shorter than timeout_secs "
                f"({self.timeout_secs:g}); set it to at least timeout_secs"
            )
        return self

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [parse_host(h) for h in self.hosts]

    def ssl_context(self, name: str) -> ssl.SSLContext | None:
        """The TLS client context, None for plain TCP; a file that will not load is a ConfigError."""
        if self.tls is None or not self.tls.enabled:
            return None
        try:
            return self.tls.client_context()
        except ValueError as exc:
            raise ConfigError([f"sinks.{name}.{exc}"]) from None  # the text starts with the option

    def build(self, name: str, ctx: BuildContext) -> LogstashSink:
        from logferry.sinks.logstash.service import LogstashSink  # service imports this module

        return LogstashSink(name, self, logger=ctx.logger.getChild(name))
