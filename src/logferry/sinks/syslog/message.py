"""Records → complete syslog messages (header and body, without framing), one line each.

This runs inside the outbox commit, so it never raises for a record: a timestamp or severity it cannot
read falls back to the commit time or the configured severity, and bodies are built so that nothing
can break the line (JSON escapes line breaks; CEF escapes them in extensions and turns them into spaces
in header fields; LEEF, which has no escapes, turns them and the delimiter into spaces).

    RFC 5424: <PRI>1 2026-11-22T09:18:32.123Z HOST APP - MSGID - BODY
    RFC 3164: <PRI>Nov 22 09:18:32 HOST APP: BODY

No BOM is written before an RFC 5424 body: it is optional (MSG-ANY) and CEF/LEEF parsers read it as
part of the first header field.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from logferry.core.fieldmap import compile_mapping
from logferry.core.types import Record
from logferry.formats.cef import encode_cef
from logferry.formats.leef import encode_leef
from logferry.formats.mapping import RecordMapper, compact_json, load_mapping
from logferry.formats.syslog import FACILITY_NAMES, SEVERITY_NAMES
from logferry.sinks.syslog.config import SyslogSinkConfig

__all__ = ["MessageEncoder", "read_time"]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Unix times above this are milliseconds (10^11 seconds is the year 5138).
_MILLIS_FROM = 10**11
_SEVERITY_BY_NAME = {name: i for i, name in enumerate(SEVERITY_NAMES)}


def read_time(value: Any) -> datetime | None:
    """An event time from ISO 8601 text or Unix seconds/milliseconds; ``None`` when unreadable."""
    try:
        if isinstance(value, str):
            if value.isdigit():
                value = int(value)
            else:
                parsed = datetime.fromisoformat(value)
                return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if isinstance(value, int | float) and not isinstance(value, bool):
            seconds = value / 1000 if value > _MILLIS_FROM else value
            return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        pass
    return None


def _rfc5424_time(t: datetime) -> bytes:
    return b"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond // 1000,
    )  # fmt: skip


def _rfc3164_time(t: datetime) -> bytes:
    return b"%s %2d %02d:%02d:%02d" % (_MONTHS[t.month - 1].encode(), t.day, t.hour, t.minute, t.second)


class MessageEncoder:
    """One sink's header settings and body builder, prepared once."""

    def __init__(self, cfg: SyslogSinkConfig) -> None:
        self._facility = FACILITY_NAMES.index(cfg.facility) * 8
        self._severity = _SEVERITY_BY_NAME[cfg.severity]
        self._severity_map = {k: _SEVERITY_BY_NAME[v] for k, v in cfg.severity_map.items()}
        self._get_severity = compile_mapping((("v", cfg.severity_field),)) if cfg.severity_field else None
        self._get_time = compile_mapping((("v", cfg.timestamp_field),)) if cfg.timestamp_field else None
        host = (cfg.hostname or _local_hostname()).encode()
        app = cfg.app_name.encode()
        if cfg.header == "rfc5424":
            self._version = b"1 "
            self._format_time: Callable[[datetime], bytes] = _rfc5424_time
            self._after_time = b" %s %s - %s - " % (host, app, (cfg.msgid or "-").encode())
        else:
            self._version = b""
            self._format_time = _rfc3164_time
            self._after_time = b" %s %s: " % (host, app)
        self._body = self._body_builder(cfg)

    @staticmethod
    def _body_builder(cfg: SyslogSinkConfig) -> Callable[[Record], bytes]:
        name = cfg.mapping_name
        if cfg.body == "json" or name is None:
            return compact_json
        mapper = RecordMapper(load_mapping(name))
        # A lone surrogate (JSON allows "\ud800") has no UTF-8 form: it is written as '?'.
        if cfg.body == "cef":
            return lambda record: encode_cef(mapper(record)).encode(errors="replace")
        return lambda record: encode_leef(mapper(record)).encode(errors="replace")

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        now_stamp = self._format_time(datetime.now(UTC))
        out: list[bytes] = []
        append = out.append
        for record in records:
            stamp = now_stamp
            if self._get_time is not None:
                t = read_time(self._get_time(record).get("v"))
                if t is not None:
                    stamp = self._format_time(t)
            pri = b"<%d>" % (self._facility + self._severity_of(record))
            append(b"".join((pri, self._version, stamp, self._after_time, self._body(record))))
        return out

    def _severity_of(self, record: Record) -> int:
        if self._get_severity is None:
            return self._severity
        value = self._get_severity(record).get("v")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 7:
            return value
        text = value if isinstance(value, str) else str(value)
        if text in self._severity_map:
            return self._severity_map[text]
        return _SEVERITY_BY_NAME.get(text, self._severity)


def _local_hostname() -> str:
    # The header field cannot hold spaces or non-ASCII; a host name that does is cut to what it can.
    name = socket.gethostname().split(" ")[0].encode("ascii", "ignore").decode()
    return name or "-"
