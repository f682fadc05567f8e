"""The connection to the collector: one persistent TCP/TLS stream, or a connected UDP socket.

``send`` writes framed messages and returns once the collector's host has acknowledged every byte
at the TCP level: asyncio holds none of them (the write buffer's high-water mark is 0, so ``drain``
waits for an empty buffer; over TLS, the buffer of the TCP transport underneath is waited for too),
and then the kernel's send queue is empty (``SIOCOUTQ``: bytes not yet sent or not yet
acknowledged). Without that last wait a path that died silently would take up to the kernel's send
buffer (4 MiB by default) of "delivered" requests with it. It costs one round trip per request.
Any failure raises OSError (or TimeoutError) after dropping the connection, so the next send
reconnects and the request is sent again. Syslog has no application acknowledgement: what the
collector's host acknowledged but the collector never processed (it crashed) is lost (RELP would
close that gap; it is not supported).

Collectors send nothing back, but a task reads (and discards) whatever arrives, so a connection the
collector closed or reset is noticed even when it wrote something first, and is replaced before
anything is written into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import ssl
import struct
import termios
from typing import Literal, Protocol

from logferry.net.outbound import ConnectFailed, open_stream
from logferry.sinks.syslog.config import SyslogSinkConfig

__all__ = ["RESOLVE_EVERY_SECS", "StreamTransport", "Transport", "UdpTransport", "frame"]

#: A UDP sink looks the collector's name up again this often, so a moved collector is followed.
RESOLVE_EVERY_SECS = 60.0
_DISCARD_CHUNK = 4096
_FLUSH_POLL_SECS = 0.005
_ACKED_POLL_MAX_SECS = 0.01
#: Linux's SIOCOUTQ has TIOCOUTQ's number; elsewhere the kernel queue is not waited for.
_OUTQ = getattr(termios, "TIOCOUTQ", None)


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes in the kernel's send queue: not yet sent, or sent and not yet acknowledged by the peer."""
    if _OUTQ is None:
        return 0
    queued: int = struct.unpack("i", fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0"))[0]
    return queued


def frame(lines: list[bytes], framing: Literal["octet_counted", "lf"]) -> bytes:
    """RFC 6587: ``MSG-LEN SP MSG`` (octet counting) or ``MSG LF`` (non-transparent framing)."""
    if framing == "lf":
        return b"\n".join(lines) + b"\n"
    return b"".join([b"%d %s" % (len(line), line) for line in lines])


def _unbuffered(writer: asyncio.StreamWriter) -> asyncio.WriteTransport | None:
    """Make ``drain()`` wait until asyncio holds none of the written bytes; over TLS, return the TCP
    transport underneath, whose buffer ``drain()`` does not cover."""
    transport = writer.transport
    if writer.get_extra_info("ssl_object") is None:
        transport.set_write_buffer_limits(high=0)
        return None
    # The TLS transport pauses when its buffer reaches the high-water mark (a TCP one when it
    # exceeds it): 0 would pause it on an empty buffer and every drain() would hang.
    transport.set_write_buffer_limits(high=1, low=0)
    # asyncio gives no public handle on the TCP transport: CPython keeps it in _ssl_protocol.
    inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
    return inner if isinstance(inner, asyncio.WriteTransport) else None


async def _discard(reader: asyncio.StreamReader) -> None:
    """Read until EOF or an error: what a collector sends is of no use, its close or reset is."""
    with contextlib.suppress(OSError):
        while await reader.read(_DISCARD_CHUNK):
            pass


class Transport(Protocol):
    async def send(self, lines: list[bytes]) -> None: ...

    async def check(self) -> str:
        """A one-line status for the healthcheck; raises OSError when the collector is unreachable."""
        ...

    async def close(self) -> None: ...


class StreamTransport:
    """TCP or TLS: connect on first use, keep the connection, reconnect after any failure."""

    def __init__(self, cfg: SyslogSinkConfig, tls_context: ssl.SSLContext | None) -> None:
        self._host, self._port = cfg.address
        self._tls_context = tls_context
        self._framing = cfg.wire_framing
        self._timeout = cfg.timeout_secs
        self._writer: asyncio.StreamWriter | None = None
        self._below_tls: asyncio.WriteTransport | None = None
        self._reading: asyncio.Task[None] | None = None

    @property
    def _where(self) -> str:
        return f"{self._host}:{self._port}"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await open_stream(
            self._host,
            self._port,
            ssl_context=self._tls_context,
            timeout=self._timeout,
            refused_hint="it may require a client certificate: set tls.cert_file and tls.key_file",
        )

    def _alive(self) -> bool:
        return (
            self._writer is not None
            and self._reading is not None
            and not self._reading.done()
            and not self._writer.is_closing()
        )

    async def send(self, lines: list[bytes]) -> None:
        if not self._alive():
            self._drop()
            reader, self._writer = await self._connect()
            self._below_tls = _unbuffered(self._writer)
            self._reading = asyncio.create_task(_discard(reader), name=f"syslog-read {self._where}")
        writer = self._writer
        assert writer is not None
        try:
            writer.write(frame(lines, self._framing))
            await asyncio.wait_for(self._flushed(writer), self._timeout)
        except TimeoutError:
            self._drop()
            raise TimeoutError(
                f"{self._where} took or acknowledged no data for {self._timeout:g} s (collector stalled, "
                "overloaded or unreachable)"
            ) from None
        except OSError as exc:
            self._drop()
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise OSError(f"connection to {self._where} lost while sending: {reason}") from None

    async def _flushed(self, writer: asyncio.StreamWriter) -> None:
        await writer.drain()
        below = self._below_tls
        if below is not None:
            await self._tls_flushed(below)
        sock = writer.get_extra_info("socket")
        if sock is None:
            return
        # The kernel says nothing when its queue empties either; a round trip is usually enough.
        delay = _FLUSH_POLL_SECS / 10
        while _unacknowledged(sock):
            if writer.is_closing():
                raise ConnectionResetError("connection lost")
            await asyncio.sleep(delay)
            delay = min(delay * 2, _ACKED_POLL_MAX_SECS)

    async def _tls_flushed(self, below: asyncio.WriteTransport) -> None:
        # Nothing tells the TLS layer's user when the TCP buffer below it empties: poll, which only
        # happens while the kernel's send buffer is full (a collector slower than logferry).
        while below.get_write_buffer_size():  # noqa: ASYNC110 - no event exists to wait on
            await asyncio.sleep(_FLUSH_POLL_SECS)
        if below.is_closing():  # a lost connection empties the buffer by discarding it
            raise ConnectionResetError("connection lost")

    async def check(self) -> str:
        if self._alive():
            return f"connected to {self._where}"
        _, writer = await self._connect()
        writer.transport.abort()
        return f"{self._where} accepts connections"

    def _forget(self) -> asyncio.StreamWriter | None:
        writer, reading, self._writer, self._reading = self._writer, self._reading, None, None
        self._below_tls = None
        if reading is not None:
            reading.cancel()
        return writer

    def _drop(self) -> None:
        """Forget a broken connection at once: waiting for a polite close could take the whole timeout."""
        writer = self._forget()
        if writer is not None:
            writer.transport.abort()

    async def close(self) -> None:
        writer = self._forget()
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self._timeout)


class UdpTransport:
    """One datagram per message from a connected socket, so ICMP errors come back as ECONNREFUSED.

    A refusal reported for an earlier datagram fails the next send, which is retried; the datagrams
    that triggered it are lost, as RFC 5426 datagrams may be. The name is looked up again after any
    error and every :data:`RESOLVE_EVERY_SECS`, since no connection breaks when a collector moves.
    """

    def __init__(self, cfg: SyslogSinkConfig) -> None:
        self._host, self._port = cfg.address
        self._sock: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._resolved_at = 0.0

    async def _resolve(self) -> tuple[int, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise ConnectFailed(f"cannot resolve {self._host}: {exc.strerror or exc}") from None
        except UnicodeError:
            raise ConnectFailed(f"{self._host!r} is not a valid host name") from None
        family, _, _, _, address = infos[0]
        return family, (str(address[0]), int(address[1]))

    async def send(self, lines: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        if self._sock is not None and loop.time() - self._resolved_at >= RESOLVE_EVERY_SECS:
            self._resolved_at = loop.time()
            # A DNS outage must not stop a sink whose collector still answers at the old address.
            with contextlib.suppress(ConnectFailed):
                if (await self._resolve())[1] != self._address:
                    await self.close()
        if self._sock is None:
            self._resolved_at = loop.time()
            family, address = await self._resolve()
            self._address = address
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sock.setblocking(False)
            try:
                sock.connect(address)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        try:
            for line in lines:
                await loop.sock_sendall(self._sock, line)
        except OSError as exc:
            await self.close()
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise OSError(f"cannot send to udp {self._host}:{self._port}: {reason}") from None

    async def check(self) -> str:
        _, address = await self._resolve()
        return f"udp {self._host}:{self._port} resolves to {address[0]}; UDP cannot confirm delivery"

    async def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
