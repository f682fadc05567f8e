"""Syslog destination (type ``syslog``): UDP, TCP or TLS; RFC 5424 or RFC 3164; JSON, CEF or LEEF bodies.

Importing the package registers the type.
"""

from logferry.sinks.syslog.config import SyslogSinkConfig

__all__ = ["SyslogSinkConfig"]
