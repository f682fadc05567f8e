"""The sockets: UDP datagrams and TCP/TLS connections, framed and handed to the :class:`Intake`.

asyncio protocols rather than streams: ``data_received`` gets what one read returned and frames it in
place, without a reader task and a buffer copy per connection. A TLS listener is the TCP listener with
an ``SSLContext``; with ``client_ca_file`` it requires a client certificate from that CA (syslog senders
have no other way to authenticate themselves).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

from logferry.formats.framing import HEAD_BYTES, FrameDecoder, FrameError
from logferry.net.tls import load_cert_chain
from logferry.sources.syslog.config import SyslogConfig, SyslogTLSConfig
from logferry.sources.syslog.intake import Intake

__all__ = [
    "Counters",
    "SenderPolicy",
    "TcpReceiver",
    "UdpReceiver",
    "kernel_udp_drops",
    "server_tls_context",
]

_MAX_POLICY_CACHE = 4096


class Counters:
    """The open connections, and what the listeners could not take since the flush loop last reported it."""

    __slots__ = ("connections", "denied", "queue_full", "too_many_connections")

    def __init__(self) -> None:
        self.connections: set[TcpReceiver] = set()
        self.denied = 0
        self.queue_full = 0
        self.too_many_connections = 0


class SenderPolicy:
    """``allowed_senders`` and the address normal form, decided once per address."""

    __slots__ = ("_cache", "_networks")

    def __init__(self, networks: list[str]) -> None:
        self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]
        self._cache: dict[str, str | None] = {}

    def admit(self, address: str) -> str | None:
        """The sender's name for records and metrics, or ``None`` when it is not allowed."""
        hit = self._cache.get(address, "")
        if hit != "":
            return hit
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d
        name: str | None = str(ip)
        if self._networks and not any(ip in net for net in self._networks):
            name = None
        if len(self._cache) >= _MAX_POLICY_CACHE:
            self._cache.clear()
        self._cache[address] = name
        return name


def server_tls_context(tls: SyslogTLSConfig) -> ssl.SSLContext:
    """The listener's TLS context; ``ValueError`` naming the option and file that would not load."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    password = tls.key_password.reveal() if tls.key_password is not None else None
    for option in ("cert_file", "key_file", "client_ca_file"):
        path = getattr(tls, option)
        if path is not None and not os.access(path, os.R_OK):
            raise ValueError(
                f"tls.{option} {path}: {'not readable' if os.path.exists(path) else 'no such file'}"
            )
    try:
        load_cert_chain(ctx, tls.cert_file, tls.key_file, password)
    except ValueError as exc:
        raise ValueError(
            f"tls.cert_file {tls.cert_file} / tls.key_file {tls.key_file}: {exc}; check tls.cert_file, "
            "tls.key_file and tls.key_password"
        ) from None
    if tls.client_ca_file:
        try:
            ctx.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as exc:
            raise ValueError(
                f"tls.client_ca_file {tls.client_ca_file}: no PEM CA certificate ({exc})"
            ) from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class TcpReceiver(asyncio.Protocol):
    """One TCP/TLS connection: frames with its own decoder, pauses when the intake is over its bound."""

    def __init__(
        self,
        cfg: SyslogConfig,
        intake: Intake,
        policy: SenderPolicy,
        counters: Counters,
        on_connections: Callable[[int, str], None],
    ) -> None:
        self._cfg = cfg
        self._intake = intake
        self._policy = policy
        self._counters = counters
        self._on_connections = on_connections
        self._decoder = FrameDecoder(max_message_bytes=cfg.max_message_bytes, framing=cfg.framing)
        self._transport: asyncio.Transport | None = None
        self._sender = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        sender = self._policy.admit(peer[0]) if peer else "unknown"
        if sender is None:
            self._counters.denied += 1
            transport.abort()
            return
        if len(self._counters.connections) >= self._cfg.max_connections:
            self._counters.too_many_connections += 1
            transport.abort()
            return
        self._sender = sender
        self._transport = transport
        self._counters.connections.add(self)
        self._on_connections(len(self._counters.connections), sender)

    def data_received(self, data: bytes) -> None:
        frames = self._decoder.feed(data)
        if frames:
            self._intake.add(self._sender, frames, len(data))
            if self._intake.over and self._transport is not None:
                self._intake.pause(self._transport)

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        """End the connection now and hand over what it had read (also a last message without LF)."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        frames = self._decoder.finish()
        if frames:
            self._intake.add(self._sender, frames, 0)
        self._intake.forget(transport)
        self._counters.connections.discard(self)
        self._on_connections(len(self._counters.connections), self._sender)
        transport.close()


class UdpReceiver(asyncio.DatagramProtocol):
    """Every datagram is one message (RFC 5426); over the intake's bound it is dropped and counted."""

    def __init__(self, cfg: SyslogConfig, intake: Intake, policy: SenderPolicy, counters: Counters) -> None:
        self._max = cfg.max_message_bytes
        self._intake = intake
        self._policy = policy
        self._counters = counters

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        sender = self._policy.admit(str(addr[0]))
        if sender is None:
            self._counters.denied += 1
        elif self._intake.over:
            self._counters.queue_full += 1
        elif len(data) > self._max:
            self._intake.add(sender, [_oversize(data, self._max)], len(data))
        else:
            self._intake.add(sender, [data], len(data))


def _oversize(data: bytes, limit: int) -> FrameError:
    return FrameError(f"datagram of {len(data)} bytes exceeds {limit} bytes", data[:HEAD_BYTES])


def kernel_udp_drops(sock: socket.socket) -> int | None:
    """Datagrams the kernel dropped on this socket (its buffer was full), from /proc/net/udp[6].

    ``None`` where /proc does not say (not Linux). The count is the socket's lifetime total.
    """
    inode = str(os.fstat(sock.fileno()).st_ino)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and fields[9] == inode:
                return int(fields[-1])
    return None
