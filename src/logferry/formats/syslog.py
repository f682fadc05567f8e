"""One syslog message (bytes) → a record: RFC 5424 and RFC 3164, detected from what follows the PRI.

The header becomes fields; the message body is left as text for a body parser (Sophos key=value, CEF,
LEEF, ESA mail logs) to take over. Timestamps come out as ISO 8601 UTC (``...Z``); RFC 3164 carries no
year and no zone, so the caller passes when the message arrived (to pick the year) and the parser's
``default_tz`` supplies the zone.

    parser = SyslogParser(default_tz=ZoneInfo("Europe/Berlin"), keep_raw=True)
    record = parser.parse(b"<30>Nov 16 00:25:00 sophos device_name=...", received=now)

Every record has the same keys (absent values are ``None``): ``syslog_format`` (``rfc5424`` or
``rfc3164``), ``facility``, ``facility_name``, ``severity``, ``severity_name``, ``version``,
``timestamp``, ``hostname``, ``app_name``, ``procid``, ``msgid``, ``structured_data`` (SD-ID →
{PARAM-NAME: value}, a repeated PARAM-NAME gives a list) and ``message``; plus ``raw`` on request.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo

from logferry.core.types import JSONValue, Record
from logferry.formats import ParseError

__all__ = ["FACILITY_NAMES", "SEVERITY_NAMES", "SyslogParser", "check_severity", "parse_syslog"]

# RFC 5424 §6.2.1 table 1, with the keywords rsyslog and util-linux logger use.
FACILITY_NAMES: tuple[str, ...] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
    "uucp", "cron", "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
# RFC 5424 §6.2.1 table 2.
SEVERITY_NAMES: tuple[str, ...] = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")


def check_severity(value: str) -> str:
    """``value`` if it is a severity keyword, else ``ValueError`` listing them (for config validators)."""
    if value not in SEVERITY_NAMES:
        raise ValueError(f"unknown severity {value!r}; use one of {', '.join(SEVERITY_NAMES)}")
    return value


# PRI text → (facility, facility name, severity, severity name), so a header costs one dict lookup.
_PRI: dict[str, tuple[int, str, int, str]] = {
    str(p): (p >> 3, FACILITY_NAMES[p >> 3], p & 7, SEVERITY_NAMES[p & 7]) for p in range(192)
}
# RFC 3164 §4.3.3: a relay that finds no PRI assigns user.notice (13).
_NO_PRI = _PRI["13"]
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}  # fmt: skip
_DIGITS = frozenset("0123456789")
_BOM = "\ufeff"
_TS_CACHE_MAX = 4096


def _err(reason: str, line: str) -> ParseError:
    return ParseError(f"{reason}: {line[:80]!r}")


def _int2(s: str, i: int) -> int:
    """Two ASCII digits at ``s[i:i+2]``; ``int()`` alone would accept signs, spaces and underscores."""
    a, b = s[i : i + 1], s[i + 1 : i + 2]
    if a not in _DIGITS or b not in _DIGITS:
        raise ValueError
    return int(a + b)


class SyslogParser:
    """Parses syslog messages with one configuration; holds a small cache of converted timestamps."""

    __slots__ = ("_cache", "_cache_5424", "default_tz", "keep_raw")

    def __init__(self, *, default_tz: tzinfo = UTC, keep_raw: bool = False) -> None:
        self.default_tz = default_tz
        self.keep_raw = keep_raw
        # RFC 3164 senders repeat the same second many times: "Nov 16 00:25:00 " → (month and year of
        # arrival, which settle the stamp's year; ISO UTC).
        self._cache: dict[str, tuple[int, int, str]] = {}
        # RFC 3339 stamps without their fraction → UTC seconds, e.g. "2003-08-24T05:14:15-07:00".
        self._cache_5424: dict[str, str] = {}

    def parse(self, data: bytes, *, received: datetime) -> Record:
        """Parse one message; ``received`` (when it arrived) picks the year of an RFC 3164 timestamp.

        Raises :class:`ParseError` for input that is not syslog.
        """
        # Invalid UTF-8 keeps its byte values visible (\\xe9) rather than becoming U+FFFD.
        line = data.decode("utf-8", "backslashreplace").rstrip("\r\n\x00")
        if not line:
            raise ParseError("empty syslog message")
        if line[0] == "<":
            gt = line.find(">", 1, 5)
            text = line[1:gt] if gt > 0 else ""
            pri = _PRI.get(text)
            if pri is None and text.isdecimal() and text.isascii():
                # "<013>": RFC 3164 forbids the leading zero, but the value is unambiguous.
                pri = _PRI.get(str(int(text)))
            if pri is None:
                raise _err("invalid PRI (expected <0> to <191>)", line)
            pos = gt + 1
        else:
            pri, pos = _NO_PRI, 0
        # VERSION 1 is the only one defined; "<13>2 files lost" is a header-less RFC 3164 message.
        if line[pos : pos + 2] == "1 ":
            record = self._rfc5424(line, pos + 2)
        else:
            record = self._rfc3164(line, pos, received)
        record["facility"], record["facility_name"], record["severity"], record["severity_name"] = pri
        if self.keep_raw:
            record["raw"] = line
        return record

    def _rfc5424(self, line: str, pos: int) -> Record:
        parts = line[pos:].split(" ", 5)
        if len(parts) < 6:
            raise _err("RFC 5424 header has fewer than 6 fields after VERSION", line)
        ts, host, app, procid, msgid, rest = parts
        if not (ts and host and app and procid and msgid and rest):
            raise _err("empty RFC 5424 header field (two spaces in a row)", line)
        sd: dict[str, JSONValue] | None
        if rest[0] == "-":
            sd, i = None, 1
        elif rest[0] == "[":
            sd, i = _structured_data(rest, line)
        else:
            raise _err("STRUCTURED-DATA must be '-' or start with '['", line)
        if i == len(rest):
            msg: str | None = None
        elif rest[i] == " ":
            msg = rest[i + 1 :]
            if msg.startswith(_BOM):
                msg = msg[1:]
        else:
            raise _err("expected a space after STRUCTURED-DATA", line)
        return {
            "syslog_format": "rfc5424",
            "version": 1,
            "timestamp": None if ts == "-" else self._iso(ts, line),
            "hostname": None if host == "-" else host,
            "app_name": None if app == "-" else app,
            "procid": None if procid == "-" else procid,
            "msgid": None if msgid == "-" else msgid,
            "structured_data": sd,
            "message": msg,
        }

    def _rfc3164(self, line: str, pos: int, received: datetime) -> Record:
        ts: str | None = None
        # Fast path: "Nov 16 00:25:00 " seen before in the same month of arrival.
        hit = self._cache.get(line[pos : pos + 16])
        if hit is not None and hit[0] == received.month and hit[1] == received.year:
            ts, pos = hit[2], pos + 16
        elif (month := _MONTHS.get(line[pos : pos + 3])) is not None and line[pos + 3 : pos + 4] == " ":
            ts, pos = self._bsd_timestamp(line, pos, month, received)
        elif (
            line[pos : pos + 4].isdigit()
            and line[pos + 4 : pos + 5] == "-"
            and line[pos + 10 : pos + 11] == "T"
        ):
            # rsyslog's forward format and others put an RFC 3339 stamp into an RFC 3164 header.
            end = line.find(" ", pos)
            stamp = line[pos:] if end < 0 else line[pos:end]
            ts, pos = self._iso(stamp, line), len(line) if end < 0 else end + 1
        host: str | None = None
        app: str | None = None
        procid: str | None = None
        if ts is not None:
            # The hostname is optional in practice (Cisco ESA "<166>Mar 17 18:24:37 mail_logs: Info: ...").
            end = line.find(" ", pos)
            word = line[pos:] if end < 0 else line[pos:end]
            if word and not _is_tag(word):
                host, pos = word, len(line) if end < 0 else end + 1
        # Without a timestamp there is no header at all (Sophos before v19: "<30>device=..."), so the
        # first word is only a TAG when it looks like one.
        end = line.find(" ", pos)
        word = line[pos:] if end < 0 else line[pos:end]
        if _is_tag(word):
            pos = len(line) if end < 0 else end + 1
            lb = word.find("[")
            if lb > 0 and word.endswith("]:"):
                app, procid = word[:lb], word[lb + 1 : -2]
            else:
                app = word[:-1]
        return {
            "syslog_format": "rfc3164",
            "version": None,
            "timestamp": ts,
            "hostname": host,
            "app_name": app,
            "procid": procid,
            "msgid": None,
            "structured_data": None,
            "message": line[pos:],
        }

    def _bsd_timestamp(self, line: str, pos: int, month: int, received: datetime) -> tuple[str, int]:
        """``Mmm dd hh:mm:ss`` at ``pos`` → (ISO UTC, position after it and its space)."""
        # Some senders do not pad the day ("Nov 6 00:25:00"); RFC 3164 pads with a space ("Nov  6").
        width = 14 if line[pos + 5 : pos + 6] == " " and line[pos + 4 : pos + 5] != " " else 15
        stamp = line[pos : pos + width]
        after = line[pos + width : pos + width + 1]
        if len(stamp) < width or after not in ("", " "):
            raise _err("truncated or malformed RFC 3164 TIMESTAMP", line)
        year = received.year
        # A stamp more than a month ahead of arrival is last year's (late or replayed logs are likelier
        # than a clock months fast); a January stamp arriving in December is a fast clock at new year.
        if month > received.month + 1:
            year -= 1
        elif month == 1 and received.month == 12:
            year += 1
        try:
            day_text = stamp[4:6].lstrip(" ") if width == 15 else stamp[4]
            if not day_text.isdecimal() or not day_text.isascii():
                raise ValueError
            day = int(day_text)
            t = width - 8
            if stamp[t + 2] != ":" or stamp[t + 5] != ":":
                raise ValueError
            local = datetime(year, month, day, _int2(stamp, t), _int2(stamp, t + 3), _int2(stamp, t + 6))
        except ValueError:
            raise _err("invalid RFC 3164 TIMESTAMP", line) from None
        iso = local.replace(tzinfo=self.default_tz).astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
        if width == 15 and after == " ":
            if len(self._cache) >= _TS_CACHE_MAX:
                self._cache.clear()
            self._cache[stamp + after] = (received.month, received.year, iso)
        return iso, pos + width + 1

    def _iso(self, ts: str, line: str) -> str:
        """RFC 3339 (RFC 5424 §6.2.3) → ISO 8601 UTC, keeping the sender's fraction digits."""
        frac = ""
        key = ts
        if ts[19:20] == ".":
            tail = ts[20:]
            digits = len(tail) - len(tail.lstrip("0123456789"))
            # TIME-SECFRAC is 1*6DIGIT.
            if not 0 < digits <= 6:
                raise _err(f"invalid TIMESTAMP {ts[:40]!r}", line)
            frac = ts[19 : 20 + digits]
            key = ts[:19] + tail[digits:]
        # Offsets are whole minutes, so the fraction never changes and the cache can ignore it.
        hit = self._cache_5424.get(key)
        if hit is None:
            hit = self._utc_seconds(key, line)
            if len(self._cache_5424) >= _TS_CACHE_MAX:
                self._cache_5424.clear()
            self._cache_5424[key] = hit
        return hit + frac + "Z"

    def _utc_seconds(self, ts: str, line: str) -> str:
        """``YYYY-MM-DDThh:mm:ss`` plus a zone (``Z``, ``±hh:mm``, ``±hhmm`` or none) → UTC, no ``Z``."""
        try:
            if (
                len(ts) < 19
                or ts[4] != "-"
                or ts[7] != "-"
                or ts[10] not in "Tt"
                or ts[13] != ":"
                or ts[16] != ":"
            ):
                raise ValueError
            dt = datetime(
                int(ts[0:4]) if ts[0:4].isdigit() else -1,
                _int2(ts, 5), _int2(ts, 8), _int2(ts, 11), _int2(ts, 14), _int2(ts, 17),
            )  # fmt: skip
            zone = ts[19:]
            if zone in ("Z", "z"):
                utc = dt
            elif zone == "":
                # RFC 5424 requires an offset; senders that leave it out mean their local zone.
                utc = dt.replace(tzinfo=self.default_tz).astimezone(UTC).replace(tzinfo=None)
            else:
                # "+hh:mm" per RFC 3339; "+hhmm" appears in the wild (Sophos timestamp= style).
                body = zone[1:].replace(":", "", 1) if len(zone) == 6 else zone[1:]
                if zone[0] not in "+-" or len(body) != 4:
                    raise ValueError
                offset = timedelta(hours=_int2(body, 0), minutes=_int2(body, 2))
                if offset >= timedelta(hours=24):
                    raise ValueError
                utc = dt - offset if zone[0] == "+" else dt + offset
        except (ValueError, OverflowError):
            raise _err(f"invalid TIMESTAMP {ts[:40]!r}", line) from None
        return utc.isoformat()


def _is_tag(word: str) -> bool:
    """``app:`` or ``app[pid]:``; an IPv6 hostname such as ``fe80::`` ends with a colon but is no TAG."""
    return len(word) > 1 and word[-1] == ":" and ":" not in word[:-1]


# SD-ELEMENT and SD-PARAM (RFC 5424 §6.3): matching whole elements in C is what keeps logger's
# `[timeQuality ...]` from dominating the parse; values are unescaped only when they hold a backslash.
_PARAM = r'([^= \]"]+)="([^"\\]*(?:\\.[^"\\]*)*)"'
_SD_ELEMENT = re.compile(r'\[([^ \]"=]+)((?: ' + _PARAM + r")*)\]", re.S)
_SD_PARAM = re.compile(" " + _PARAM, re.S)
# Backslash-quote, backslash-backslash and backslash-bracket are escapes; any other backslash stays.
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')


def _structured_data(rest: str, line: str) -> tuple[dict[str, JSONValue], int]:
    """Parse SD-ELEMENTs from ``rest[0] == '['``; returns them and the index after the last ``]``."""
    sd: dict[str, JSONValue] = {}
    i = 0
    n = len(rest)
    while i < n and rest[i] == "[":
        m = _SD_ELEMENT.match(rest, i)
        if m is None:
            raise _err(_sd_problem(rest, i), line)
        sd_id, body = m.group(1, 2)
        i = m.end()
        pairs: list[tuple[str, str]] = _SD_PARAM.findall(body)
        if "\\" in body:
            pairs = [(k, _SD_UNESCAPE.sub(r"\1", v)) for k, v in pairs]
        params: dict[str, JSONValue] = dict(pairs)
        if len(params) == len(pairs) and sd_id not in sd:
            sd[sd_id] = params
            continue
        # RFC 5424 forbids a repeated SD-ID; merging keeps every value (a repeated name becomes a list).
        merged = sd.setdefault(sd_id, {})
        for k, v in pairs:
            old = merged.get(k)
            if old is None:
                merged[k] = v
            elif isinstance(old, list):
                old.append(v)
            else:
                merged[k] = [old, v]
    return sd, i


def _sd_problem(rest: str, i: int) -> str:
    """Why no SD-ELEMENT matches at ``rest[i]``: the reason a dead letter carries."""
    end_id = rest.find("]", i)
    sp = rest.find(" ", i, end_id)
    end_id = sp if sp >= 0 else len(rest) if end_id < 0 else end_id
    sd_id = rest[i + 1 : end_id]
    if not sd_id or "=" in sd_id or '"' in sd_id:
        return "invalid SD-ID"
    j = end_id
    while (m := _SD_PARAM.match(rest, j)) is not None:
        j = m.end()
    if j >= len(rest):
        return "unterminated SD-ELEMENT (missing ']')"
    if rest[j] != " ":
        return "expected ' ' or ']' in SD-ELEMENT"
    eq = rest.find("=", j + 1)
    if eq < 0 or rest[eq + 1 : eq + 2] != '"':
        return 'expected PARAM-NAME="PARAM-VALUE" in SD-ELEMENT'
    name = rest[j + 1 : eq]
    if not name or " " in name or "]" in name or '"' in name:
        return "invalid PARAM-NAME"
    return "unterminated PARAM-VALUE (missing closing quote)"


_DEFAULT = SyslogParser()


def parse_syslog(data: bytes, *, received: datetime, default_tz: tzinfo | None = None) -> Record:
    """Parse one message with a one-off configuration; a listener should hold a :class:`SyslogParser`."""
    parser = _DEFAULT if default_tz is None else SyslogParser(default_tz=default_tz)
    return parser.parse(data, received=received)
