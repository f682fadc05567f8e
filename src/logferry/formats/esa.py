"""Cisco Secure Email (ESA / IronPort) text mail logs: one record per line, joined by ICID/MID/DCID/RID.

A message's life is spread over many lines (connection ICID → message MID → recipient RID → delivery
DCID), so every record carries the ids its line names (``icid``, ``mid``, ``dcid``, ``rcid``, ``rid``
for a bare recipient id, ``rids`` for the bracketed lists of delivery lines) and an ``event`` naming
the shape. A shape this module does not know becomes ``event: "other"`` with the ids its head
carries and the whole text in ``message``: the appliance logs many more shapes than are documented,
and they must reach the SIEM. A line without the timestamp and level of the grammar raises
:class:`ParseError`.

    parser = EsaParser(tz=zone("+0200"))
    parser.parse_file_line("Mon Apr 17 19:56:22 2003 Info: Start MID 6 ICID 5")
    syslog = SyslogParser(default_tz=zone("+0200"))
    parser.parse_syslog_record(syslog.parse(b"<166>Mar 17 18:24:37 mail_logs: Info: MID 6", received=now))
    parse_log_filename("mail_logs.@20240101T000000.s").complete  # True

The syslog variant's header (priority, ``Mmm dd HH:MM:SS`` without a year, optional host, the
subscription name as TAG) is RFC 3164, so :class:`~logferry.formats.syslog.SyslogParser` parses it
and this module reads only the body. Neither variant carries a time zone, so the appliance's zone is
configuration (UTC by default, as Elastic's ``tz_offset``): ``EsaParser(tz)`` for file lines, the
syslog parser's ``default_tz`` for pushed syslog.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from logferry.core.types import Record
from logferry.formats import ParseError

__all__ = ["EsaLogFile", "EsaParser", "parse_log_filename", "parse_message", "zone"]

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_WEEKDAYS = frozenset(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
_TS_CACHE_MAX = 4096

Fields = dict[str, object]


class _Shape(Exception):
    """A known head with an unexpected tail: the line is kept as ``other``, never rejected."""


def zone(spec: str) -> tzinfo:
    """The appliance's zone from ``UTC``, an offset such as ``+0200`` / ``-05:30``, or an IANA name."""
    if spec in ("UTC", "Z", "utc"):
        return UTC
    if spec[:1] in "+-" and len(spec) in (5, 6):
        digits = spec[1:].replace(":", "")
        if len(digits) == 4 and digits.isdigit() and int(digits[2:]) < 60:
            delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
            return timezone(-delta if spec[0] == "-" else delta)
        raise ParseError(f"time zone {spec!r}: an offset is +HHMM or +HH:MM")
    try:
        return ZoneInfo(spec)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ParseError(f"time zone {spec!r}: not UTC, an offset or a known IANA zone") from exc


@dataclass(frozen=True, slots=True)
class EsaLogFile:
    """A pushed log subscription file name: ``<name>.@<timestamp>.<status>``."""

    name: str
    timestamp: str
    status: str

    @property
    def complete(self) -> bool:
        """Only rolled-over (``.s``) files are whole; ``.current``/``.c`` are still being written."""
        return self.status == "s"


def parse_log_filename(path: str) -> EsaLogFile:
    """Split a pushed file's name (any directory part is ignored) into name, timestamp and status.

    The timestamp's format is unconfirmed by the spec, so any non-empty text between ``.@`` and the
    last dot is accepted as-is.
    """
    base = path.rpartition("/")[2]
    name, at, rest = base.partition(".@")
    stamp, dot, status = rest.rpartition(".")
    if not at or not name or not dot or not stamp:
        raise ParseError(f"file name {base!r} is not <name>.@<timestamp>.<status>")
    if status not in ("s", "c", "current"):
        raise ParseError(f"file name {base!r}: status {status!r} is none of s, c, current")
    return EsaLogFile(name, stamp, status)


class EsaParser:
    """Parses lines for one appliance zone; remembers recent timestamps since many lines share a second."""

    __slots__ = ("_cache", "_tz")

    def __init__(self, tz: tzinfo = UTC) -> None:
        self._tz = tz
        self._cache: dict[tuple[str, ...], str] = {}

    def parse_file_line(self, line: str) -> Record:
        """``Ddd Mmm dd HH:MM:SS YYYY Level: message`` (files pushed by SCP/FTP)."""
        p = line.split(None, 5)
        if len(p) < 6 or p[0] not in _WEEKDAYS:
            raise ParseError(f"no 'Ddd Mmm dd HH:MM:SS YYYY' timestamp at the start of {line[:60]!r}")
        key = (p[1], p[2], p[3], p[4])
        ts = self._cache.get(key)
        if ts is None:
            ts = self._iso(p[1], p[2], p[3], p[4], line)
        return _record({}, ts, p[5], line)

    def parse_syslog_record(self, record: Record) -> Record:
        """The ESA fields of a syslog message whose header :class:`~logferry.formats.syslog.SyslogParser`
        already parsed: ``<PRI>Mmm dd HH:MM:SS [host ]<subscription>: Level: message``.

        The header's TAG (``app_name``) is the log subscription name and becomes ``log_name``; the
        header's timestamp is kept as the syslog parser gave it (its year rule and zone apply: build
        that parser with ``default_tz`` set to the appliance's zone).
        """
        message = record.get("message")
        log_name = record.get("app_name")
        ts = record.get("timestamp")
        if not isinstance(ts, str):
            raise ParseError("no 'Mmm dd HH:MM:SS' timestamp in the syslog header")
        if not isinstance(log_name, str) or not log_name or not isinstance(message, str):
            raise ParseError(f"no '<subscription>:' tag before {str(message)[:60]!r}")
        rec: Record = {}
        if "facility" in record:
            rec["facility"], rec["severity"] = record["facility"], record["severity"]
        host = record.get("hostname")
        if host:
            rec["host"] = host
        rec["log_name"] = log_name
        return _record(rec, ts, message, message)

    def _iso(self, month: str, day: str, clock: str, year: str, line: str) -> str:
        try:
            h, m, s = clock.split(":")
            dt = datetime(int(year), _MONTHS[month], int(day), int(h), int(m), int(s), tzinfo=self._tz)
            utc = dt.astimezone(UTC)  # OverflowError: year 1 east of UTC
        except (KeyError, ValueError, OverflowError) as exc:
            raise ParseError(f"bad timestamp {month} {day} {clock} {year} in {line[:60]!r}: {exc}") from None
        # The spelling of every other parser; isoformat, since strftime's %Y does not pad year 1 to 0001.
        ts = utc.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"
        if len(self._cache) >= _TS_CACHE_MAX:
            self._cache.clear()
        self._cache[(month, day, clock, year)] = ts
        return ts


def _record(rec: Record, ts: str, rest: str, line: str) -> Record:
    level, sep, message = rest.partition(": ")
    if not sep or not level.isalpha():
        raise ParseError(f"no 'Level: ' after the timestamp in {line[:60]!r}")
    rec["timestamp"] = ts
    rec["level"] = level
    rec["message"] = message
    rec.update(parse_message(message))
    return rec


def parse_message(message: str) -> Fields:
    """The event name and fields of one message text; unknown shapes give ``event: "other"``."""
    head, _, rest = message.partition(" ")
    handler = _HEADS.get(head)
    if handler is None:
        return {"event": "other"}
    try:
        return handler(rest)
    except (_Shape, ValueError, IndexError):
        return _ids_only(head, rest)


def _ids_only(head: str, rest: str) -> Fields:
    # A known head whose tail did not fit still names its id, so the line joins its message.
    key = head.lower()
    num = rest.partition(" ")[0]
    # Ids fit in 64 bits; Python refuses to convert more than 4,300 digits at all.
    if key in ("mid", "icid", "dcid", "rcid") and num.isdigit() and len(num) <= 20:
        return {"event": "other", key: int(num)}
    return {"event": "other"}


def _unquote(s: str) -> str:
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _addr(s: str) -> str:
    # Envelope addresses come as <a@b>, sometimes followed by ESMTP parameters (SIZE=...).
    if s.startswith("<"):
        end = s.find(">")
        if end > 0:
            return s[1:end]
    return s.partition(" ")[0]


def _rids(s: str) -> list[int]:
    if not (s.startswith("[") and s.endswith("]")):
        raise _Shape
    return [int(r) for r in s[1:-1].split(",")]


def _bracketed_rids(s: str) -> tuple[list[int], str]:
    end = s.find("]")
    if end < 0:
        raise _Shape
    return _rids(s[: end + 1]), s[end + 1 :]


def _mid(rest: str) -> Fields:
    mid_s, _, tail = rest.partition(" ")
    f: Fields = {"mid": int(mid_s)}
    if tail.startswith("ICID "):
        icid_s, _, tail = tail[5:].partition(" ")
        f["icid"] = int(icid_s)
    if tail.startswith("RID "):
        tail = tail[4:]
        if tail.startswith("["):
            f["rids"], tail = _bracketed_rids(tail)
            tail = tail.lstrip(" ")
        else:
            rid_s, _, tail = tail.partition(" ")
            f["rid"] = int(rid_s)
    word, _, arg = tail.partition(" ")
    handler = _MID_WORDS.get(word)
    if handler is None:
        f["event"] = "other"
        return f
    try:
        f.update(handler(arg))
    except (_Shape, ValueError, IndexError):
        f["event"] = "other"
    return f


def _verdict(engine: str, verdict: str, *, interim: bool = False) -> Fields:
    if not engine or not verdict:
        raise _Shape
    return {"event": "verdict", "engine": engine, "verdict": verdict, "interim": interim}


def _interim(arg: str) -> Fields:
    if arg.startswith("verdict using engine: "):
        engine, _, verdict = arg[22:].partition(" ")
        return _verdict(engine, verdict, interim=True)
    if arg.startswith("AV verdict using "):
        engine, _, verdict = arg[17:].partition(" ")
        return _verdict(engine, verdict, interim=True) | {"scanner": "antivirus"}
    raise _Shape


def _using(arg: str) -> Fields:
    if not arg.startswith("engine: "):
        raise _Shape
    engine, _, verdict = arg[8:].partition(" ")
    return _verdict(engine, verdict)


def _outbreak(arg: str) -> Fields:
    if not arg.startswith("Filters: verdict "):
        raise _Shape
    return _verdict("Outbreak Filters", arg[17:])


def _amp(arg: str) -> Fields:
    head, sep, verdict = arg.partition(" : ")
    if not sep or head != "file reputation verdict":
        raise _Shape
    return _verdict("AMP", verdict)


def _ready(arg: str) -> Fields:
    size, _, tail = arg.partition(" bytes from ")
    return {"event": "message_ready", "size": int(size), "mail_from": _addr(tail)}


def _matched(arg: str) -> Fields:
    prefix = "all recipients for per-recipient policy "
    if not arg.startswith(prefix):
        raise _Shape
    policy, sep, table = arg[len(prefix) :].rpartition(" in the ")
    if not sep:
        raise _Shape
    return {"event": "policy_match", "policy": policy, "policy_direction": table.partition(" ")[0]}


def _spf(arg: str) -> Fields:
    # "<scope> identity <id> <Result> (...)": scope is mailfrom, helo or pra.
    scope, ident_word, identity, tail = arg.split(" ", 3)
    if ident_word != "identity":
        raise _Shape
    result = tail.partition(" ")[0]
    return {"event": "spf", "spf_scope": scope, "spf_identity": identity, "spf_result": result}


def _dkim(arg: str) -> Fields:
    result, _, tail = arg.partition(" ")
    f: Fields = {"event": "dkim", "dkim_result": result}
    open_ = tail.find("(")
    if open_ >= 0:
        for kv in tail[open_ + 1 : tail.rfind(")")].split():
            k, eq, v = kv.partition("=")
            name = _DKIM_TAGS.get(k)
            if eq and name:
                f[name] = v
    return f


_DKIM_TAGS = {"d": "dkim_domain", "s": "dkim_selector", "i": "dkim_identity"}


def _dmarc(arg: str) -> Fields:
    prefix = "Message from domain "
    if not arg.startswith(prefix):
        return {"event": "dmarc"}
    domain, _, tail = arg[len(prefix) :].partition(", ")
    f: Fields = {"event": "dmarc", "dmarc_domain": domain}
    if tail.startswith("DMARC "):
        f["dmarc_result"] = tail[6:].partition(" ")[0]
    return f


def _url(arg: str) -> Fields:
    url, sep, tail = arg.partition(" has reputation ")
    if not sep:
        raise _Shape
    score, _, condition = tail.partition(" matched Condition: ")
    return {"event": "url_reputation", "url": url, "url_reputation": float(score), "condition": condition}


def _dlp(arg: str) -> Fields:
    if not arg.startswith("violation. Severity: "):
        raise _Shape
    severity, _, tail = arg[21:].partition(" ")
    f: Fields = {"event": "dlp_violation", "dlp_severity": severity}
    risk = tail.partition("Risk Factor: ")[2].partition(")")[0]
    if risk.isdigit():
        f["dlp_risk_factor"] = int(risk)
    policy = tail.partition("DLP policy match: ")[2]
    if policy:
        f["dlp_policy"] = _unquote(policy.removesuffix("."))
    return f


def _queued(arg: str) -> Fields:
    if arg != "for delivery":
        raise _Shape
    return {"event": "queued"}


_MID_WORDS: dict[str, Callable[[str], Fields]] = {
    "From:": lambda a: {"event": "mail_from", "mail_from": _addr(a)},
    "To:": lambda a: {"event": "rcpt_to", "rcpt_to": _addr(a)},
    "Message-ID": lambda a: {"event": "message_id", "message_id": _unquote(a)},
    # Subjects come quoted or bare with \r\n left escaped; kept as logged so searches match the appliance.
    "Subject": lambda a: {"event": "subject", "subject": _unquote(a)},
    "ready": _ready,
    "matched": _matched,
    "interim": _interim,
    "using": _using,
    "Outbreak": _outbreak,
    "AMP": _amp,
    "SPF:": _spf,
    "DKIM:": _dkim,
    "DMARC:": _dmarc,
    "SDR:": lambda a: {"event": "sdr", "sdr": a},
    "URL": _url,
    "queued": _queued,
    "Response": lambda a: {"event": "delivery_response", "response": _unquote(a)},
    "DLP": _dlp,
}


def _connection(key: str, close_event: str, other_event: str) -> Callable[[str], Fields]:
    def parse(rest: str) -> Fields:
        num, _, tail = rest.partition(" ")
        return {"event": close_event if tail == "close" else other_event, key: int(num)}

    return parse


def _new(rest: str) -> Fields:
    if rest.startswith("SMTP ICID "):
        icid, _, tail = rest[10:].partition(" interface ")
        iface, _, tail = tail.partition(" address ")
        address, _, tail = tail.partition(" reverse dns host ")
        host, _, verified = tail.partition(" verified ")
        name, paren, ip = iface.rpartition(" (")
        f: Fields = {"event": "connection_new", "icid": int(icid), "interface": name if paren else iface}
        if paren:
            f["interface_ip"] = ip.rstrip(")")
        f["remote_ip"] = address
        if host:
            f["reverse_dns"] = host
        if verified:
            f["reverse_dns_verified"] = verified == "yes"
        return f
    if rest.startswith("SMTP DCID "):
        dcid, _, tail = rest[10:].partition(" interface ")
        iface, _, tail = tail.partition(" address ")
        address, _, port = tail.partition(" port ")
        f = {"event": "delivery_connection_new", "dcid": int(dcid), "interface": iface, "remote_ip": address}
        if port:
            f["remote_port"] = int(port)
        return f
    raise _Shape


def _start(rest: str) -> Fields:
    t = rest.split(" ", 4)
    if t[0] != "MID" or t[2] != "ICID":
        raise _Shape
    return {"event": "message_start", "mid": int(t[1]), "icid": int(t[3])}


def _delivery_line(event: str, t: list[str]) -> Fields:
    # "DCID <d> MID <m> to RID [<r>, ...]" shared by delivery start and message done.
    if t[0] != "DCID" or t[2] != "MID" or t[4] != "to" or not t[5].startswith("RID "):
        raise _Shape
    rids, _ = _bracketed_rids(t[5][4:])
    return {"event": event, "dcid": int(t[1]), "mid": int(t[3]), "rids": rids}


def _delivery(rest: str) -> Fields:
    if not rest.startswith("start "):
        raise _Shape
    return _delivery_line("delivery_start", rest[6:].split(" ", 5))


def _message(rest: str) -> Fields:
    if rest.startswith("done "):
        return _delivery_line("delivery_done", rest[5:].split(" ", 5))
    if rest.startswith("finished MID "):
        mid, _, tail = rest[13:].partition(" ")
        return {"event": "message_finished", "mid": int(mid), "outcome": tail}
    raise _Shape


def _bounced(rest: str) -> Fields:
    t = rest.split(" ", 7)
    if t[0] != "DCID" or t[2] != "MID" or not t[4].startswith("From:") or not t[5].startswith("To:"):
        raise _Shape
    f: Fields = {"event": "bounce", "dcid": int(t[1]), "mid": int(t[3])}
    f["mail_from"], f["rcpt_to"] = _addr(t[4][5:]), _addr(t[5][3:])
    if t[6] == "RID":
        rid, _, tail = t[7].partition(" - ")
        code, _, reason = tail.partition(" - ")
        f |= {"rid": int(rid), "bounce_code": code, "bounce_reason": reason}
    return f


_HEADS: dict[str, Callable[[str], Fields]] = {
    "MID": _mid,
    "ICID": _connection("icid", "connection_close", "connection"),
    "DCID": _connection("dcid", "delivery_connection_close", "delivery_connection"),
    "RCID": _connection("rcid", "rpc_connection_close", "rpc_connection"),
    "New": _new,
    "Start": _start,
    "Delivery": _delivery,
    "Message": _message,
    "Bounced:": _bounced,
}
