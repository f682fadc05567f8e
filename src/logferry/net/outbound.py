"""Outbound TCP and TLS connections for stream sinks (syslog, Beats), with one way of saying why they fail.

A connection attempt is bounded as a whole (name lookup, TCP handshake, TLS handshake and, for
TLS 1.3, the server's verdict on the client), and a failure becomes :class:`ConnectFailed` whose
text says what to check ("certificate verify failed", "Connection refused", "cannot resolve")
instead of an errno or an SSL library tuple.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import ssl

__all__ = ["KEEPALIVE_IDLE_SECS", "TLS13_VERDICT_SECS", "ConnectFailed", "host_problem", "open_stream"]

#: How long a TLS 1.3 session waits for the server's go-ahead (a session ticket) before data flows.
TLS13_VERDICT_SECS = 1.0
_TLS13_POLL_SECS = 0.01
#: A peer that vanished without closing (a dropped NAT entry, a powered-off collector) is given up on
#: after this much idle time plus 3 unanswered probes 10 s apart, instead of Linux's default 2 h 11 min.
#: No TCP_USER_TIMEOUT: it would also cut a collector that is alive but slow to read (a zero window),
#: and bytes already in the kernel's send buffer would be lost with the connection.
KEEPALIVE_IDLE_SECS = 60
_KEEPALIVE_INTERVAL_SECS = 10
_KEEPALIVE_PROBES = 3


class ConnectFailed(OSError):
    """A connection could not be opened; ``str()`` names the peer and the reason."""


def host_problem(host: str) -> str | None:
    """Why ``host`` cannot be connected to whatever DNS says (for config validation), else ``None``."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if not host or len(host) > 253:
        return f"{host!r} is not a host name: 1 to 253 characters"
    try:
        host.encode("idna")
    except UnicodeError:
        return f"{host!r} is not a host name: no empty labels ('a..b'), none over 63 characters"
    return None


async def open_stream(
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    timeout: float,  # noqa: ASYNC109 - bounds the connect only; the caller's later reads have their own
    server_hostname: str | None = None,
    refused_hint: str = "",
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``host:port``, over TLS when ``ssl_context`` is given.

    ``refused_hint`` is added when a TLS 1.3 server refuses the session after the handshake, which
    is how a server that requires a client certificate answers a client without one.
    """
    where = f"{host}:{port}"
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=ssl_context,
                server_hostname=(server_hostname or host) if ssl_context is not None else None,
            )
            try:
                # The verdict wait ends (as an acceptance) before the connect timeout would: a short
                # timeout must not fail every connection to a server that sends no session ticket.
                await _tls13_verdict(reader, writer, min(TLS13_VERDICT_SECS, (give_up - loop.time()) / 2))
            except ConnectionError as exc:
                writer.transport.abort()
                hint = f"; {refused_hint}" if refused_hint else ""
                raise ConnectFailed(
                    f"cannot connect to {where}: the server refused the TLS session ({exc}){hint}"
                ) from None
    except ConnectFailed:
        raise
    except TimeoutError:
        raise ConnectFailed(f"cannot connect to {where}: no answer within {timeout:g} s") from None
    except ssl.SSLCertVerificationError as exc:
        raise ConnectFailed(
            f"cannot connect to {where}: certificate verify failed ({exc.verify_message}); "
            "set tls.ca_file to the CA that signed the server's certificate"
        ) from None
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise ConnectFailed(f"cannot connect to {where}: TLS handshake failed ({reason})") from None
    except socket.gaierror as exc:
        raise ConnectFailed(f"cannot connect to {where}: cannot resolve {host} ({exc.strerror})") from None
    except UnicodeError:
        # The IDNA codec refuses names like "a..b" or labels over 63 characters before any lookup.
        raise ConnectFailed(f"cannot connect to {where}: {host!r} is not a valid host name") from None
    except OSError as exc:
        # asyncio's own text for a refused connect is "Connect call failed (addr)"; the errno says why.
        why = os.strerror(exc.errno) if exc.errno and exc.errno > 0 else str(exc) or type(exc).__name__
        raise ConnectFailed(f"cannot connect to {where}: {why}") from None
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        _tune(sock)
    return reader, writer


def _tune(sock: socket.socket) -> None:
    # Small writes must not wait for the peer's delayed ACK.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    # Linux names; elsewhere the system's keepalive defaults apply.
    for option, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE_SECS),
        ("TCP_KEEPINTVL", _KEEPALIVE_INTERVAL_SECS),
        ("TCP_KEEPCNT", _KEEPALIVE_PROBES),
    ):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


async def _tls13_verdict(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait_secs: float
) -> None:
    """Wait for a TLS 1.3 server to accept the session, so a refused client is not sent data.

    In TLS 1.3 the client's handshake is over before the server has checked the client's certificate
    (or its absence): a refusal arrives as an alert afterwards, and whatever was written by then is
    lost without an error. Servers send their session tickets once they accept (OpenSSL and Java
    ones by default), so a ticket is the go-ahead and an alert or a close is the refusal (raised as
    ``ConnectionError``). A server that sends no ticket (rsyslog's GnuTLS driver) is trusted after
    ``wait_secs``.
    """
    ssl_object = writer.get_extra_info("ssl_object")
    if ssl_object is None or ssl_object.version() != "TLSv1.3":
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_secs
    while loop.time() < deadline:
        session = ssl_object.session
        if session is not None and session.has_ticket:
            return
        failure = reader.exception()
        if failure is not None or reader.at_eof() or writer.is_closing():
            raise ConnectionError(getattr(failure, "reason", None) or failure or "the connection was closed")
        # The verdict is a network round trip away; nothing in asyncio signals a session ticket.
        await asyncio.sleep(_TLS13_POLL_SECS)
