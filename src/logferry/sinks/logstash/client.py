"""One Lumberjack v2 connection: write a window, then read ACKs until it is covered.

Errors are raised as they are (:class:`WriteStalled` for a peer that stops reading, ``TimeoutError``
for a silent one, :class:`AckWaitExceeded` for one that only sends keepalives, ``ConnectionError`` /
``IncompleteReadError`` for a closed one, :class:`ProtocolError` for bytes that are not an ACK);
the sink decides what they mean for the request. After any of them the stream is in an unknown
state: the sink calls :meth:`BeatsConnection.abort`, never :meth:`BeatsConnection.close`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

from logferry.net.outbound import open_stream
from logferry.sinks.logstash.protocol import ACK_SIZE, ProtocolError, parse_ack

__all__ = ["INITIAL_WINDOW", "AckWaitExceeded", "BeatsConnection", "WindowSize", "WriteStalled"]

#: Filebeat's first window with slow_start.
INITIAL_WINDOW = 10
#: A window is written in pieces of this size, each of which the peer must take within the ACK time
#: limit: a slow link that keeps reading is not cut off, a peer that stopped reading is.
WRITE_PIECE_BYTES = 256 * 1024
#: How long a graceful close may wait for the peer before the connection is aborted.
CLOSE_SECS = 1.0


class WriteStalled(Exception):
    """The peer took no more of the window within the time limit (it stopped reading)."""


class AckWaitExceeded(Exception):
    """Only keepalive ACKs came for longer than the limit; the window was never acknowledged."""


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
            refused_hint="if the beats input requires client certificates, "
            "set tls.cert_file and tls.key_file",
        )
        return cls(reader, writer)

    def usable(self) -> bool:
        """False once the peer has closed its side (Logstash drops idle clients after 60 s)."""
        return not self._writer.is_closing() and not self._reader.at_eof()

    async def send_window(
        self,
        frames: bytes,
        count: int,
        *,
        ack_secs: float,
        max_wait_secs: float,
        on_ack: Callable[[int], None],
    ) -> None:
        """Write one window of ``count`` events and wait until an ACK covers all of them.

        ``on_ack(seq)`` reports each partial ACK. Every ACK restarts the ``ack_secs`` wait, but
        only one that acknowledges events restarts the ``max_wait_secs`` one: Logstash sends
        keepalives (seq 0) for as long as its pipeline is blocked, which may be for ever.
        """
        self.windows += 1
        await self._write(frames, ack_secs)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + max_wait_secs
        acked = 0
        while acked < count:
            left = give_up - loop.time()
            try:
                frame = await asyncio.wait_for(self._reader.readexactly(ACK_SIZE), min(ack_secs, left))
            except TimeoutError:
                if left < ack_secs:
                    raise AckWaitExceeded from None
                raise
            seq = parse_ack(frame)
            self.acks += 1
            if seq > count:
                raise ProtocolError(f"ACK for event {seq} of a window of {count}")
            if seq > acked:
                acked = seq
                on_ack(seq)
                give_up = loop.time() + max_wait_secs

    async def _write(self, frames: bytes, stall_secs: float) -> None:
        view = memoryview(frames)
        for start in range(0, len(view), WRITE_PIECE_BYTES):
            self._writer.write(view[start : start + WRITE_PIECE_BYTES])
            try:
                await asyncio.wait_for(self._writer.drain(), stall_secs)
            except TimeoutError:
                raise WriteStalled from None

    def abort(self) -> None:
        """Drop the connection now, with whatever is unsent: the end of every failure."""
        self._writer.transport.abort()

    async def close(self) -> None:
        """End the connection politely (TLS close_notify, FIN), aborting it if the peer does not follow."""
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_SECS)
        except (OSError, TimeoutError):
            self.abort()
