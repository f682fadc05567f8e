"""Parsers (and later encoders) for the wire formats of push inputs: syslog RFC 3164/5424 and its
TCP framings, key=value (Sophos SFOS), CEF, LEEF, CSV (Cisco Umbrella), Cisco ESA text mail logs.

Every parser is a pure function from bytes or text to a record; input it cannot read raises
:class:`ParseError` with a reason a dead letter can carry, never another exception.
"""

from __future__ import annotations

__all__ = ["ParseError"]


class ParseError(ValueError):
    """The input is not in the expected format; ``str(exc)`` says where and why."""
