"""Outbound TCP and TLS connections for stream sinks (syslog, Beats), with one way of saying why they fail.

A connection attempt is bounded as a whole (name lookup, TCP handshake and TLS handshake), and a
failure becomes :class:`ConnectFailed` whose text says what to check ("certificate verify failed",
"Connection refused", "timed out after 10 s") instead of an errno or an SSL library tuple.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl

from logferry.net.tls import TLSSettings

__all__ = ["ConnectFailed", "open_stream"]


class ConnectFailed(OSError):
    """A connection could not be opened; ``str()`` names the peer and the reason."""


async def open_stream(
    host: str,
    port: int,
    *,
    tls: TLSSettings | None,
    timeout: float,  # noqa: ASYNC109 - bounds the connect only; the caller's later reads have their own
    server_hostname: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect to ``host:port``, over TLS when ``tls`` (or a ready ``ssl_context``) is given.

    ``ssl_context`` lets a sink add a client certificate to the context it builds from ``tls``.
    """
    where = f"{host}:{port}"
    context = ssl_context if ssl_context is not None else (tls.context() if tls is not None else None)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=context,
                server_hostname=(server_hostname or host) if context is not None else None,
            ),
            timeout,
        )
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
    except OSError as exc:
        # asyncio's own text for a refused connect is "Connect call failed (addr)"; the errno says why.
        why = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        raise ConnectFailed(f"cannot connect to {where}: {why}") from None
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        # Small writes must not wait for the peer's delayed ACK; a dead peer must not hold the
        # connection open for ever when the sink is idle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return reader, writer
