"""Received syslog frames → records: the header once, the filters, then the listener's body format.

Every format shares one header parser (:class:`~logferry.formats.syslog.SyslogParser`), so the year
of an RFC 3164 stamp, the time zone and the PRI are worked out in one place. The facility/severity
filters look only at the header, before the (costlier) body parse. Records of the ``syslog`` format
are the header record itself; the body formats put their own fields at the top level and the header
under ``syslog`` (without the message they were parsed from). Every record gets ``sender`` (the
peer's IP address) and ``received_at`` (ISO 8601 UTC, when the bytes arrived).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from logferry.core.types import Record
from logferry.formats import ParseError
from logferry.formats.cef import parse_cef
from logferry.formats.esa import EsaParser
from logferry.formats.framing import Frame, FrameError
from logferry.formats.kv import KVParser
from logferry.formats.leef import parse_leef
from logferry.formats.sophos import SophosParser
from logferry.formats.syslog import FACILITY_NAMES, SEVERITY_NAMES, SyslogParser
from logferry.sources.syslog.config import SyslogConfig

__all__ = ["MessageReader", "Reject"]

#: A frame that became no record: (reason for the dead-letter store, the bytes as received).
Reject = tuple[str, bytes]
BodyParser = Callable[[Record], Record]


def _body_parser(cfg: SyslogConfig) -> BodyParser | None:
    tz = ZoneInfo(cfg.timezone)
    if cfg.format == "syslog":
        return None
    if cfg.format == "sophos":
        sophos = SophosParser(tz=tz, known_devices=cfg.known_devices, default_host_name=cfg.default_host_name)
        return lambda h: sophos.parse_message(_body(h), header_host=h["hostname"])
    if cfg.format == "esa":
        return EsaParser(tz=tz).parse_syslog_record
    if cfg.format == "cef":
        return lambda h: parse_cef(_body(h))
    if cfg.format == "leef":
        return lambda h: parse_leef(_body(h))
    kv = KVParser()
    return lambda h: kv.parse(_body(h))


def _body(header: Record) -> str:
    message: str | None = header["message"]
    if not message:
        raise ParseError("the syslog message has no body")
    return message


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class MessageReader:
    """One listener's reading rules; holds the parsers' timestamp caches."""

    __slots__ = ("_body", "_facilities", "_keep_raw", "_max_severity", "_syslog")

    def __init__(self, cfg: SyslogConfig) -> None:
        self._keep_raw = cfg.keep_raw
        self._syslog = SyslogParser(default_tz=ZoneInfo(cfg.timezone), keep_raw=cfg.keep_raw)
        self._body = _body_parser(cfg)
        self._facilities = frozenset(FACILITY_NAMES.index(f) for f in cfg.facilities) or None
        self._max_severity = SEVERITY_NAMES.index(cfg.severity)

    def read(
        self,
        frames: list[Frame],
        sender: str,
        received: datetime,
        records: list[Record],
        rejects: list[Reject],
    ) -> int:
        """Append the records of ``frames`` (one sender, one arrival) and the rejects; returns how many
        messages the filters left out."""
        received_at = _iso(received)
        parse = self._syslog.parse
        body = self._body
        facilities = self._facilities
        max_severity = self._max_severity
        filtered = 0
        for frame in frames:
            if isinstance(frame, FrameError):
                rejects.append((f"{frame.reason} (from {sender})", frame.head))
                continue
            try:
                header = parse(frame, received=received)
                if header["severity"] > max_severity or (
                    facilities is not None and header["facility"] not in facilities
                ):
                    filtered += 1
                    continue
                if body is None:
                    record = header
                else:
                    record = body(header)
                    raw = header.pop("raw", None)
                    header.pop("message")
                    record["syslog"] = header
                    if raw is not None:
                        record["raw"] = raw
            except ParseError as exc:
                rejects.append((f"{exc} (from {sender})", frame))
                continue
            except Exception as exc:
                # A parser bug or an input no test foresaw must cost this message, not the batch.
                rejects.append((f"{type(exc).__name__}: {exc} (from {sender})", frame))
                continue
            record["sender"] = sender
            record["received_at"] = received_at
            records.append(record)
        return filtered
