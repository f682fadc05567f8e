"""Listening sockets for logferry's own servers (syslog, the SSH drop) where asyncio's defaults differ
from what an operator expects.

asyncio sets ``IPV6_V6ONLY`` on every IPv6 socket it creates, so ``[::]`` would mean "IPv6 only",
unlike most servers and unlike what "all addresses" promises; :func:`dual_stack_socket` makes ``::``
take IPv4 connections too. UDP sockets are made here so that the receive buffer is sized before
the first datagram arrives.
"""

from __future__ import annotations

import socket

__all__ = ["dual_stack_socket", "udp_socket"]


def dual_stack_socket(host: str, port: int) -> socket.socket | None:
    """A bound TCP socket for ``::`` that also takes IPv4; ``None`` for any other host (bind as usual)."""
    if host != "::":
        return None
    return _bound(
        socket.AF_INET6, socket.SOCK_STREAM, host, port, [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]
    )


def udp_socket(host: str, port: int, rcvbuf: int) -> socket.socket:
    """A bound UDP socket with ``SO_RCVBUF`` asked for (Linux caps it at net.core.rmem_max)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return _bound(family, socket.SOCK_DGRAM, host, port, [(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)])


def _bound(
    family: int, kind: int, host: str, port: int, options: list[tuple[int, int, int]]
) -> socket.socket:
    sock = socket.socket(family, kind)
    try:
        for level, option, value in options:
            sock.setsockopt(level, option, value)
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
