"""The connection to the collector: one persistent TCP/TLS stream, or a connected UDP socket.

``send`` writes framed messages and returns once the kernel took them (TCP/TLS: ``drain``). Any failure
raises OSError (or TimeoutError) after dropping the connection, so the next send reconnects. Syslog has
no application acknowledgement: bytes the kernel accepted are gone from logferry's hands, and a
connection that breaks right after can lose them (RELP would close that gap; it is not supported).

A collector that closed the connection is noticed before writing (the stream has seen EOF), so data is
not written into a socket that is already half closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Literal, Protocol

from logferry.net.outbound import ConnectFailed, open_stream
from logferry.sinks.syslog.config import SyslogSinkConfig, SyslogSinkTLSConfig

__all__ = ["StreamTransport", "Transport", "UdpTransport", "client_tls_context", "frame"]



def frame(lines: list[bytes], framing: Literal["octet_counted", "lf"]) -> bytes:
    """RFC 6587: ``MSG-LEN SP MSG`` (octet counting) or ``MSG LF`` (non-transparent framing)."""
    if framing == "lf":
        return b"\n".join(lines) + b"\n"
    return b"".join([b"%d %s" % (len(line), line) for line in lines])


def client_tls_context(tls: SyslogSinkTLSConfig | None) -> ssl.SSLContext:
    """TLS 1.2 or later (RFC 5425 §4.2), verification as configured, the client certificate if any."""
    ctx = (tls or SyslogSinkTLSConfig()).settings().context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is not None and tls.cert_file is not None and tls.key_file is not None:
        password = tls.key_password.reveal() if tls.key_password is not None else None
        try:
            ctx.load_cert_chain(tls.cert_file, tls.key_file, password)
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConnectFailed(
                f"cannot load the client certificate {tls.cert_file} / {tls.key_file}: {why}; check "
                "tls.cert_file, tls.key_file and tls.key_password"
            ) from None
    return ctx


class Transport(Protocol):
    async def send(self, lines: list[bytes]) -> None: ...

    async def check(self) -> str:
        """A one-line status for the healthcheck; raises OSError when the collector is unreachable."""
        ...

    async def close(self) -> None: ...


class StreamTransport:
    """TCP or TLS: connect on first use, keep the connection, reconnect after any failure."""

    def __init__(self, cfg: SyslogSinkConfig) -> None:
        self._host, self._port = cfg.address
        self._tls = cfg.tls
        self._use_tls = cfg.protocol == "tls"
        self._framing = cfg.wire_framing
        self._timeout = cfg.timeout_secs
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def _where(self) -> str:
        return f"{self._host}:{self._port}"

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = client_tls_context(self._tls) if self._use_tls else None
        return await open_stream(
            self._host,
            self._port,
            ssl_context=context,
            timeout=self._timeout,
            refused_hint="it may require a client certificate: set tls.cert_file and tls.key_file",
        )

    def _alive(self) -> bool:
        return (
            self._reader is not None
            and self._writer is not None
            and not self._reader.at_eof()
            and not self._writer.is_closing()
        )

    async def send(self, lines: list[bytes]) -> None:
        if not self._alive():
            self._drop()
            self._reader, self._writer = await self._connect()
        writer = self._writer
        assert writer is not None
        try:
            writer.write(frame(lines, self._framing))
            await asyncio.wait_for(writer.drain(), self._timeout)
        except TimeoutError:
            self._drop()
            raise TimeoutError(
                f"{self._where} took no data for {self._timeout:g} s (collector stalled or overloaded)"
            ) from None
        except OSError as exc:
            self._drop()
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise OSError(f"connection to {self._where} lost while sending: {reason}") from None

    async def check(self) -> str:
        if self._alive():
            return f"connected to {self._where}"
        _, writer = await self._connect()
        writer.transport.abort()
        return f"{self._where} accepts connections"

    def _drop(self) -> None:
        """Forget a broken connection at once: waiting for a polite close could take the whole timeout."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.transport.abort()

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self._timeout)


class UdpTransport:
    """One datagram per message from a connected socket, so ICMP errors come back as ECONNREFUSED.

    A refusal reported for an earlier datagram fails the next send, which is retried; the datagrams
    that triggered it are lost, as RFC 5426 datagrams may be.
    """

    def __init__(self, cfg: SyslogSinkConfig) -> None:
        self._host, self._port = cfg.address
        self._sock: socket.socket | None = None

    async def _resolve(self) -> tuple[int, tuple[str, int]]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(self._host, self._port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise ConnectFailed(f"cannot resolve {self._host}: {exc.strerror or exc}") from None
        family, _, _, _, address = infos[0]
        return family, (str(address[0]), int(address[1]))

    async def send(self, lines: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        if self._sock is None:
            family, address = await self._resolve()
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
