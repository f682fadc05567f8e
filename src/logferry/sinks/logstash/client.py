"""One Lumberjack v2 connection: write a window, then read ACKs until it is covered.

Errors are raised as they are (``TimeoutError`` for a silent peer, ``ConnectionError`` /
``IncompleteReadError`` for a closed one, :class:`ProtocolError` for bytes that are not an ACK);
the sink decides what they mean for the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable

from logferry.net.outbound import open_stream
from logferry.sinks.logstash.protocol import ACK_SIZE, ProtocolError, parse_ack

__all__ = ["INITIAL_WINDOW", "BeatsConnection", "WindowSize"]

#: Filebeat's first window with slow_start.
INITIAL_WINDOW = 10


class WindowSize:
    """Events per window: ``largest``, or with ``slow_start`` grown on success and halved on error."""

    def __init__(self, largest: int, slow_start: bool) -> None:
        self.largest = largest
        self.slow_start = slow_start
        self.size = min(INITIAL_WINDOW, largest) if slow_start else largest

    def grow(self) -> None:
        if self.slow_start:
            self.size = min(self.largest, self.size * 2)

    def shrink(self) -> None:
        if self.slow_start:
            self.size = max(1, self.size // 2)


class BeatsConnection:
    """A connected writer; ``acks`` counts every ACK frame read (keepalives included)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.acks = 0
        self.windows = 0

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        server_name: str | None,
        connect_secs: float,
    ) -> BeatsConnection:
        reader, writer = await open_stream(
            host,
            port,
            ssl_context=ssl_context,
            server_hostname=server_name,
            timeout=connect_secs,
            refused_hint="if the beats input requires client certificates, set tls.certificate and tls.key",
        )
        return cls(reader, writer)

    def usable(self) -> bool:
        """False once the peer has closed its side (Logstash drops idle clients after 60 s)."""
        return not self._writer.is_closing() and not self._reader.at_eof()

    async def send_window(
        self, frames: bytes, count: int, ack_secs: float, on_ack: Callable[[int], None]
    ) -> None:
        """Write one window of ``count`` events and wait until an ACK covers all of them.

        ``on_ack(seq)`` reports each partial ACK. Every ACK, including Logstash's keepalive (seq 0),
        restarts the ``ack_secs`` wait.
        """
        self.windows += 1
        self._writer.write(frames)
        await asyncio.wait_for(self._writer.drain(), ack_secs)
        acked = 0
        while acked < count:
            seq = parse_ack(await asyncio.wait_for(self._reader.readexactly(ACK_SIZE), ack_secs))
            self.acks += 1
            if seq > count:
                raise ProtocolError(f"ACK for event {seq} of a window of {count}")
            if seq > acked:
                acked = seq
                on_ack(seq)

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)
