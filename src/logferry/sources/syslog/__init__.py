"""Syslog receiver (UDP, TCP, TLS): Sophos firewalls, Cisco Secure Email and any RFC 3164/5424 sender."""

from logferry.sources.syslog.config import SyslogConfig

__all__ = ["SyslogConfig"]
