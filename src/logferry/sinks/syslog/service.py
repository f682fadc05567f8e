"""The ``syslog`` sink: messages are encoded at commit time, framed and written at send time.

Every outbox line is one complete syslog message. ``send`` writes a request's lines over the one
connection and reports them delivered once the kernel has every byte (TCP/TLS: nothing left in
asyncio's buffers; UDP: each datagram sent). A connection error is a retry; the next send
reconnects. A message longer than ``max_message_bytes`` is never truncated (that would cut a CEF
extension or a JSON document in half): it goes to the dead-letter store with the reason.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence

from logferry.core.sink import BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.sinks.syslog.config import SyslogSinkConfig
from logferry.sinks.syslog.message import MessageEncoder
from logferry.sinks.syslog.transport import StreamTransport, Transport, UdpTransport

__all__ = ["REQUEST_BYTES", "SyslogSink", "request_limits"]

#: How much one write carries, unless one message may be longer.
REQUEST_BYTES = 1024 * 1024


def request_limits(max_message_bytes: int) -> BatchLimits:
    """Framing is added by ``send``, so the limits only bound how much one write carries; a message
    that max_message_bytes allows always fits (the delivery loop dead-letters lines over max_bytes)."""
    return BatchLimits(
        max_bytes=max(REQUEST_BYTES, max_message_bytes),
        max_events=10_000,
        prefix=b"",
        separator=b"",
        suffix=b"",
    )


class SyslogSink:
    def __init__(self, name: str, cfg: SyslogSinkConfig, tls_context: ssl.SSLContext | None) -> None:
        self.name = name
        self._max = cfg.message_limit
        self.limits = request_limits(self._max)
        self._encoder = MessageEncoder(cfg)
        self._transport: Transport = (
            UdpTransport(cfg) if cfg.protocol == "udp" else StreamTransport(cfg, tls_context)
        )

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return self._encoder.encode(records)

    async def start(self) -> None:
        pass

    async def send(self, lines: list[bytes]) -> Resolution:
        if not lines:
            return Resolution.delivered()
        longest = max(map(len, lines))
        if longest > self._max:
            if len(lines) > 1:
                return Resolution.split(f"a message exceeds max_message_bytes {self._max}")
            return Resolution.reject(
                f"message of {longest} bytes exceeds max_message_bytes {self._max} (not truncated; raise "
                "max_message_bytes if the collector accepts longer messages)"
            )
        try:
            await self._transport.send(lines)
        except OSError as exc:  # TimeoutError included
            return Resolution.retry(str(exc))
        return Resolution.delivered()

    async def healthcheck(self) -> CheckResult:
        try:
            return CheckResult(True, await self._transport.check())
        except OSError as exc:
            return CheckResult(False, str(exc))

    async def close(self) -> None:
        await self._transport.close()
