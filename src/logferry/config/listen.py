"""``listen:`` addresses of logferry's own servers (syslog, SSH drop): ``HOST:PORT`` or ``[V6]:PORT``.

The host must be an IP address (or ``localhost``): a listener binds to an interface, and a name that
resolves differently tomorrow is not one. Port 0 asks the system for a free port (tests, the demo).
"""

from __future__ import annotations

import ipaddress

__all__ = ["parse_listen"]


def parse_listen(value: str) -> tuple[str, int]:
    """``host:port`` → (host, port); raises ``ValueError`` naming the expected shape."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:514 or [::]:514")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError("an IPv6 address is written in brackets, e.g. [::1]:514")
        host = host[1:-1]
    n = int(port)
    if n > 65535:
        raise ValueError(f"port {n} is out of range 0..65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (or localhost)") from None
    return host, n
