"""Sophos Firewall (SFOS) syslog lines, legacy (v17 to v18.x) and SFOS 19+, into records (sophos.md).

Legacy lines are a PRI and key=value pairs with no syslog header (``<30>device="SFW" date=2020-05-18
time=14:38:48 timezone="CEST" … device_id=…``); SFOS 19+ lines carry an RFC 3164 header and a
``timestamp`` with a numeric offset (``Nov 16 00:25:00 sophos device_name="SFW"
timestamp="2021-11-15T18:25:00-0600" … device_serial_id=…``). Either may also arrive as the bare
body, after a syslog parser took the header off.

Every pair is kept under its own key (values as text, ``-``/``N/A``/``""`` as ``""``), with
ports, byte and packet counts as ints. Added keys:

* ``event_time``: ISO 8601 UTC (``2021-11-16T00:25:00Z``). Legacy lines name their zone only by an
  ambiguous abbreviation (``IST``), so their ``date``+``time`` are read in the configured ``tz``.
* ``device_serial``: ``device_serial_id`` (19+) or ``device_id`` (legacy), the only unique identifier
  of a firewall; ``device_hostname``: ``known_devices[serial]``, else ``default_host_name``, else the
  syslog header's host, else ``device_name``.
* ``severity_code``: the 7th digit of ``log_id``, else the ``severity``/``priority`` name (sophos.md §4:
  the PRI's severity is not reliable).
* ``sfos_format``: ``legacy`` or ``v19``; ``syslog_pri`` when the line had one.

    SophosParser(tz=ZoneInfo("Europe/Berlin"), known_devices={"C01001BQC8TFFFF": "fw1.example"}).parse(line)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo

from logferry.core.types import Record
from logferry.formats import ParseError
from logferry.formats.kv import KVParser
from logferry.formats.syslog import SyslogParser

__all__ = ["SophosParser"]

_EMPTY = frozenset(("-", "N/A"))
# Counters and ports (sophos.md names src_port, bytes_received, packets_sent…) plus the two numeric
# fields both samples write unquoted; ids such as device_id and log_id stay text (leading zeros, 16 digits).
_INT_KEYS = frozenset(("fw_rule_id", "log_version"))
_INT_SUFFIXES = ("_port", "_bytes", "_packets")
_INT_PREFIXES = ("bytes_", "packets_")
_SEVERITIES = {
    name: code
    for code, name in enumerate(
        ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Information", "Debug")
    )
}
_ANY_TIME = datetime(2000, 1, 1, tzinfo=UTC)
_MAX_INT_DIGITS = 20
# Timestamps repeat across the lines of one second; a small cache spares re-parsing them.
_CACHE_MAX = 256


def _is_int_key(key: str) -> bool:
    return key in _INT_KEYS or key.endswith(_INT_SUFFIXES) or key.startswith(_INT_PREFIXES)


class SophosParser:
    """Parse SFOS syslog lines; one instance per listener (it caches recent timestamps)."""

    __slots__ = ("_default_host", "_int_keys", "_known", "_kv", "_syslog", "_times", "_tz")

    def __init__(
        self,
        *,
        tz: tzinfo = UTC,
        known_devices: Mapping[str, str] | None = None,
        default_host_name: str | None = None,
    ) -> None:
        self._tz = tz
        # YAML reads an all-digit legacy serial (device_id) as an int; lines carry it as text.
        self._known = {str(serial): host for serial, host in (known_devices or {}).items()}
        self._default_host = default_host_name
        self._kv = KVParser()
        self._syslog = SyslogParser()
        self._times: dict[str, str] = {}
        self._int_keys: dict[tuple[str, ...], tuple[str, ...]] = {}

    def parse(self, line: str | bytes) -> Record:
        """A whole syslog line (or a bare body): the header goes through :class:`SyslogParser`."""
        if isinstance(line, str):
            data = line.encode()
        else:
            data = line
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                raise ParseError(f"not UTF-8 at byte {exc.start}") from None
        # Only the header's host and PRI are used (SFOS dates come from the body), so the arrival time
        # that would settle an RFC 3164 stamp's year does not matter.
        header = self._syslog.parse(data, received=_ANY_TIME)
        pri = header["facility"] * 8 + header["severity"] if data[:1] == b"<" else None
        return self.parse_message(header["message"], header_host=header["hostname"], pri=pri)

    def parse_message(self, line: str, *, header_host: str | None = None, pri: int | None = None) -> Record:
        """The key=value body of one line, after a syslog parser took the header off."""
        if header_host is not None and "=" in header_host:
            raise ParseError("syslog header without a host before the key=value pairs")
        record = self._kv.parse(line)
        if not record:
            raise ParseError("no key=value pairs")
        self._type_values(record, line)
        if pri is not None:
            record["syslog_pri"] = pri
        stamp = record.get("timestamp")
        if stamp is not None:
            record["sfos_format"] = "v19"
            if stamp:
                record["event_time"] = self._cached(stamp, self._iso_with_offset)
        else:
            record["sfos_format"] = "legacy" if "date" in record or "device_id" in record else "v19"
            date, time = record.get("date"), record.get("time")
            if date or time:
                if not (date and time):
                    raise ParseError("legacy line has only one of date and time")
                record["event_time"] = self._cached(f"{date} {time}", self._iso_in_zone)
        serial = record.get("device_serial_id") or record.get("device_id")
        if serial:
            record["device_serial"] = serial
        host = self._known.get(serial) if serial else None
        host = host or self._default_host or header_host or record.get("device_name")
        if host:
            record["device_hostname"] = host
        log_id = record.get("log_id")
        if isinstance(log_id, str) and len(log_id) == 12 and log_id.isdigit() and log_id.isascii():
            record["severity_code"] = int(log_id[6])
        else:
            name = record.get("severity") or record.get("priority")
            code = _SEVERITIES.get(name) if isinstance(name, str) else None
            if code is not None:
                record["severity_code"] = code
        return record

    def _type_values(self, record: Record, line: str) -> None:
        # A substring search of the line is far cheaper than comparing every value; false hits only
        # cost the loop.
        if "=-" in line or '="-"' in line or "N/A" in line:
            for key, value in record.items():
                if value in _EMPTY:
                    record[key] = ""
        # Lines of one log type repeat the same keys in the same order, so which of them are numeric
        # is worked out once per key sequence rather than once per pair.
        shape = tuple(record)
        int_keys = self._int_keys.get(shape)
        if int_keys is None:
            int_keys = tuple(key for key in shape if _is_int_key(key))
            if len(self._int_keys) >= _CACHE_MAX:  # key sequences come from the sender; stay bounded
                self._int_keys.clear()
            self._int_keys[shape] = int_keys
        for key in int_keys:
            value = record[key]
            # A non-numeric value in a numeric field stays text: losing it would be worse than the type.
            # Counters fit in 64 bits; longer digit runs (Python refuses > 4,300 digits) stay text.
            if value.isdigit() and value.isascii() and len(value) <= _MAX_INT_DIGITS:
                record[key] = int(value)
            elif not value:
                record[key] = None

    def _cached(self, text: str, convert: Callable[[str], str]) -> str:
        times = self._times
        iso = times.get(text)
        if iso is None:
            iso = convert(text)
            if len(times) >= _CACHE_MAX:
                times.clear()
            times[text] = iso
        return iso

    def _iso_in_zone(self, text: str) -> str:
        try:
            local = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise ParseError(f"bad legacy date/time {text!r} (want yyyy-MM-dd HH:mm:ss)") from None
        return _iso_utc(local.replace(tzinfo=self._tz))

    @staticmethod
    def _iso_with_offset(text: str) -> str:
        # SFOS writes "2021-11-15T18:25:00-0600"; fromisoformat reads that and the +06:00/Z spellings.
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            raise ParseError(f"bad timestamp {text!r}") from None
        if stamp.tzinfo is None:
            raise ParseError(f"timestamp {text!r} has no UTC offset")
        return _iso_utc(stamp)


def _iso_utc(stamp: datetime) -> str:
    try:
        utc = stamp.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC is before year 1 in UTC
        raise ParseError(f"time {stamp.isoformat()} is out of range in UTC") from None
    text = utc.replace(tzinfo=None, microsecond=0).isoformat()  # strftime's %Y does not pad year 1
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"
