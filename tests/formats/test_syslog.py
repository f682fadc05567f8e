"""Syslog message parsing: RFC 5424 and RFC 3164 lines as real senders write them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.formats import ParseError
from logferry.formats.syslog import FACILITY_NAMES, SEVERITY_NAMES, SyslogParser, parse_syslog

NOV_2021 = datetime(2021, 11, 16, 12, 0, tzinfo=UTC)
NOV_2026 = datetime(2026, 11, 22, 5, 45, 50, tzinfo=UTC)


def parse(line: bytes, received: datetime = NOV_2021, **options: Any) -> dict[str, Any]:
    return SyslogParser(**options).parse(line, received=received)


# RFC 5424 §6.5 examples 1-4, and util-linux logger 2.38 output captured on this machine.
RFC5424_CASES = [
    (
        b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8",
        {
            "facility": 4,
            "facility_name": "auth",
            "severity": 2,
            "severity_name": "crit",
            "version": 1,
            "timestamp": "2003-10-11T22:14:15.003Z",
            "hostname": "mymachine.example.com",
            "app_name": "su",
            "procid": None,
            "msgid": "ID47",
            "structured_data": None,
            "message": "'su root' failed for lonvick on /dev/pts/8",
        },
    ),
    (
        b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
        {
            "facility_name": "local4",
            "severity_name": "notice",
            "timestamp": "2003-08-24T12:14:15.000003Z",
            "hostname": "192.0.2.1",
            "app_name": "myproc",
            "procid": "8710",
            "msgid": None,
            "message": "%% It's time to make the do-nuts.",
        },
    ),
    (
        b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] \xef\xbb\xbfAn application event log entry...',
        {
            "structured_data": {
                "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"}
            },
            "message": "An application event log entry...",
        },
    ),
    (
        b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]',
        {
            "structured_data": {
                "exampleSDID@32473": {"iut": "3", "eventSource": "Application", "eventID": "1011"},
                "examplePriority@32473": {"class": "high"},
            },
            "message": None,
        },
    ),
    (
        b'<165>1 2026-11-22T05:45:43.295392+00:00 vm app - ID47 [timeQuality tzKnown="1" isSynced="0"][x@32473 a="q\\"b"] hi',
        {
            "timestamp": "2026-11-22T05:45:43.295392Z",
            "hostname": "vm",
            "app_name": "app",
            "msgid": "ID47",
            "structured_data": {"timeQuality": {"tzKnown": "1", "isSynced": "0"}, "x@32473": {"a": 'q"b'}},
            "message": "hi",
        },
    ),
    (
        b"<13>1 2026-11-22T05:45:43.299660+00:00 vm root - - - msg one",
        {"facility_name": "user", "severity_name": "notice", "app_name": "root", "message": "msg one"},
    ),
]


@pytest.mark.parametrize(
    ("line", "expected"),
    RFC5424_CASES,
    ids=["rfc-example-1", "rfc-example-2", "rfc-example-3", "rfc-example-4", "logger-sd", "logger-notq"],
)
def test_rfc5424_lines_parse_into_header_fields(line: bytes, expected: dict[str, Any]) -> None:
    record = parse(line)
    assert record["syslog_format"] == "rfc5424"
    assert {k: record[k] for k in expected} == expected


# Sophos (specs/sophos.md §1), Cisco ESA syslog push (specs/cisco_esa.md §1.2), logger --rfc3164.
RFC3164_CASES = [
    (
        b'<30>device="SFW" date=2020-05-18 time=14:38:48 timezone="CEST" device_name="XG230" device_id=1234567890123456 log_id=041101618035 log_type="Anti-Spam" log_component="SMTP" log_subtype="Allowed" status="" priority=Information fw_rule_id=0',
        {
            "facility_name": "daemon",
            "severity_name": "info",
            "timestamp": None,
            "hostname": None,
            "app_name": None,
            "message": 'device="SFW" date=2020-05-18 time=14:38:48 timezone="CEST" device_name="XG230" device_id=1234567890123456 log_id=041101618035 log_type="Anti-Spam" log_component="SMTP" log_subtype="Allowed" status="" priority=Information fw_rule_id=0',
        },
    ),
    (
        b'<30>Nov 16 00:25:00 sophos device_name="SFW" timestamp="2021-11-15T18:25:00-0600" device_model="SFVH" device_serial_id="C01001BQC8TFFFF" log_id="010101600001" log_type="Firewall" log_component="Firewall Rule" log_subtype="Allowed" log_version=1 severity="Information"',
        {
            "timestamp": "2021-11-16T00:25:00Z",
            "hostname": "sophos",
            "app_name": None,
            "message": 'device_name="SFW" timestamp="2021-11-15T18:25:00-0600" device_model="SFVH" device_serial_id="C01001BQC8TFFFF" log_id="010101600001" log_type="Firewall" log_component="Firewall Rule" log_subtype="Allowed" log_version=1 severity="Information"',
        },
    ),
    (
        b"<166>Mar 17 18:24:37 mail_logs: Info: MID 6 ICID 5 From: <x@y>",
        {
            "facility_name": "local4",
            "severity_name": "info",
            "timestamp": "2021-03-17T18:24:37Z",
            "hostname": None,
            "app_name": "mail_logs",
            "procid": None,
            "message": "Info: MID 6 ICID 5 From: <x@y>",
        },
    ),
    (
        b"<94>Nov 24 14:22:57 REDACTED.africa.example.net mail_logs: Info: New SMTP ICID 5 interface Management (10.1.1.1) address 10.1.1.209 reverse dns host remotehost.com verified yes",
        {
            "timestamp": "2021-11-24T14:22:57Z",
            "hostname": "REDACTED.africa.example.net",
            "app_name": "mail_logs",
            "message": "Info: New SMTP ICID 5 interface Management (10.1.1.1) address 10.1.1.209 reverse dns host remotehost.com verified yes",
        },
    ),
    (
        b"<38>Nov 22 05:45:43 vm sshd[13899]: hello world",
        {
            "facility_name": "auth",
            "severity_name": "info",
            "timestamp": "2021-11-22T05:45:43Z",
            "hostname": "vm",
            "app_name": "sshd",
            "procid": "13899",
            "message": "hello world",
        },
    ),
]


@pytest.mark.parametrize(
    ("line", "expected"),
    RFC3164_CASES,
    ids=["sophos-legacy-no-header", "sophos-sfos19", "esa-no-hostname", "esa-hostname", "logger-rfc3164"],
)
def test_rfc3164_lines_parse_into_header_fields(line: bytes, expected: dict[str, Any]) -> None:
    record = parse(line)
    assert record["syslog_format"] == "rfc3164"
    assert record["version"] is None and record["msgid"] is None and record["structured_data"] is None
    assert {k: record[k] for k in expected} == expected


def test_every_record_has_the_same_keys() -> None:
    keys = {tuple(sorted(parse(line))) for line, _ in RFC5424_CASES + RFC3164_CASES}
    assert len(keys) == 1


@given(st.integers(0, 191))
def test_facility_and_severity_come_from_pri(pri: int) -> None:
    record = parse(b"<%d>1 - - - - - - x" % pri)
    assert record["facility"] * 8 + record["severity"] == pri
    assert record["facility_name"] == FACILITY_NAMES[pri // 8]
    assert record["severity_name"] == SEVERITY_NAMES[pri % 8]


def test_missing_pri_is_user_notice_and_the_header_still_parses() -> None:
    record = parse(b"Nov 22 05:45:43 vm root: msg two")
    assert (record["facility_name"], record["severity_name"]) == ("user", "notice")
    assert (record["hostname"], record["app_name"], record["message"]) == ("vm", "root", "msg two")


def test_rfc3164_timestamp_uses_default_tz() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    assert parse(b"<13>Nov 16 00:25:00 h t: m", default_tz=berlin)["timestamp"] == "2021-11-15T23:25:00Z"
    assert parse(b"<13>Jul 16 00:25:00 h t: m", default_tz=berlin)["timestamp"] == "2021-07-15T22:25:00Z"


@pytest.mark.parametrize(
    ("stamp", "received", "iso"),
    [
        (b"Dec 31 23:59:59", datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC), "2026-12-31T23:59:59Z"),
        (b"Jan  1 00:00:01", datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC), "2027-01-01T00:00:01Z"),
        (b"Dec  1 00:00:00", datetime(2026, 11, 30, 23, 0, tzinfo=UTC), "2026-12-01T00:00:00Z"),
        (b"Mar 17 18:24:37", NOV_2026, "2026-03-17T18:24:37Z"),
    ],
    ids=["late-december-in-january", "fast-clock-at-new-year", "next-month", "months-old"],
)
def test_rfc3164_year_is_chosen_from_the_arrival_time(stamp: bytes, received: datetime, iso: str) -> None:
    parser = SyslogParser()
    assert parser.parse(b"<13>" + stamp + b" h t: m", received=received)["timestamp"] == iso
    # The second parse is served from the timestamp cache and must agree.
    assert parser.parse(b"<13>" + stamp + b" h t: m", received=received)["timestamp"] == iso


@pytest.mark.parametrize(
    "line",
    [b"<13>Nov  6 00:25:00 h t: m", b"<13>Nov 6 00:25:00 h t: m", b"<13>Nov 06 00:25:00 h t: m"],
    ids=["space-padded", "unpadded", "zero-padded"],
)
def test_rfc3164_day_padding_variants(line: bytes) -> None:
    record = parse(line)
    assert (record["timestamp"], record["hostname"], record["message"]) == ("2021-11-06T00:25:00Z", "h", "m")


def test_rfc3164_leap_day_needs_a_leap_year() -> None:
    assert parse(b"<13>Feb 29 10:00:00 h t: m", received=datetime(2024, 3, 1, tzinfo=UTC))["timestamp"] == (
        "2024-02-29T10:00:00Z"
    )
    with pytest.raises(ParseError, match="invalid RFC 3164 TIMESTAMP"):
        parse(b"<13>Feb 29 10:00:00 h t: m", received=datetime(2025, 3, 1, tzinfo=UTC))


def test_rfc3164_with_rfc3339_timestamp() -> None:
    record = parse(b"<30>2021-11-15T18:25:00-06:00 fw1 kernel: drop")
    assert (record["timestamp"], record["hostname"], record["app_name"]) == (
        "2021-11-16T00:25:00Z",
        "fw1",
        "kernel",
    )


def test_ipv6_hostname_is_not_taken_for_a_tag() -> None:
    record = parse(b"<13>Nov 16 00:25:00 2001:db8:: app[7]: m")
    assert (record["hostname"], record["app_name"], record["procid"]) == ("2001:db8::", "app", "7")


def test_tag_only_message_and_header_only_message() -> None:
    assert parse(b"<13>Nov 16 00:25:00 app:")["message"] == ""
    record = parse(b"<13>Nov 16 00:25:00 host")
    assert (record["hostname"], record["message"]) == ("host", "")


@pytest.mark.parametrize(
    ("stamp", "iso"),
    [
        ("2003-10-11T22:14:15Z", "2003-10-11T22:14:15Z"),
        ("2003-10-11t22:14:15.1z", "2003-10-11T22:14:15.1Z"),
        ("2003-10-11T22:14:15.123456+05:30", "2003-10-11T16:44:15.123456Z"),
        ("2003-10-11T22:14:15-0600", "2003-10-12T04:14:15Z"),
        ("2003-12-31T23:30:00-01:00", "2004-01-01T00:30:00Z"),
        ("2003-10-11T22:14:15", "2003-10-11T20:14:15Z"),
    ],
    ids=[
        "zulu",
        "lowercase",
        "fraction-and-offset",
        "offset-without-colon",
        "crosses-year",
        "no-offset-uses-default-tz",
    ],
)
def test_rfc5424_timestamps_become_utc(stamp: str, iso: str) -> None:
    line = f"<13>1 {stamp} h a - - - m".encode()
    assert parse(line, default_tz=ZoneInfo("Europe/Berlin"))["timestamp"] == iso


def test_structured_data_escapes_and_repeats() -> None:
    line = rb'<13>1 - h a - - [x@1 a="q\"b" b="back\\slash" c="br\]ack]et" d="keep\n" a="again"][x@1 e=""] m'
    record = parse(line)
    assert record["structured_data"] == {
        "x@1": {"a": ['q"b', "again"], "b": "back\\slash", "c": "br]ack]et", "d": "keep\\n", "e": ""}
    }
    assert record["message"] == "m"


def test_sd_element_without_params() -> None:
    assert parse(b"<13>1 - h a - - [origin] m")["structured_data"] == {"origin": {}}


def test_nilvalues_become_none() -> None:
    record = parse(b"<13>1 - - - - - -")
    assert [
        record[k] for k in ("timestamp", "hostname", "app_name", "procid", "msgid", "structured_data")
    ] == [None] * 6
    assert record["message"] is None


def test_keep_raw_keeps_the_line_without_its_trailer() -> None:
    record = parse(b"<13>Nov 16 00:25:00 h t: m\r\n", keep_raw=True)
    assert record["raw"] == "<13>Nov 16 00:25:00 h t: m"
    assert "raw" not in parse(b"<13>Nov 16 00:25:00 h t: m")


def test_invalid_utf8_keeps_the_byte_values() -> None:
    assert parse(b"<13>1 - h a - - - caf\xe9")["message"] == "caf\\xe9"


def test_parse_syslog_function_takes_a_time_zone() -> None:
    record = parse_syslog(
        b"<13>Nov 16 00:25:00 h t: m", received=NOV_2021, default_tz=ZoneInfo("Asia/Kolkata")
    )
    assert record["timestamp"] == "2021-11-15T18:55:00Z"
    assert (
        parse_syslog(b"<13>Nov 16 00:25:00 h t: m", received=NOV_2021)["timestamp"] == "2021-11-16T00:25:00Z"
    )


MALFORMED = [
    (b"", "empty syslog message"),
    (b"\r\n", "empty syslog message"),
    (b"<192>1 - - - - - - m", "invalid PRI"),
    (b"<abc>m", "invalid PRI"),
    (b"<-1>m", "invalid PRI"),
    (b"<>m", "invalid PRI"),
    (b"<13", "invalid PRI"),
    (b"<1234>m", "invalid PRI"),
    (b"<0192>m", "invalid PRI"),
    (b"< 13>m", "invalid PRI"),
    (b"<13>1 - h a -", "fewer than 6 fields"),
    (b"<13>1 -  a - - - m", "empty RFC 5424 header field"),
    (b"<13>1 - h a - - x m", "STRUCTURED-DATA must be"),
    (b"<13>1 - h a - - -m", "expected a space after STRUCTURED-DATA"),
    (b'<13>1 - h a - - [x a="1"]m', "expected a space after STRUCTURED-DATA"),
    (b'<13>1 - h a - - [x a="1"', "unterminated SD-ELEMENT"),
    (b'<13>1 - h a - - [x a="1" m', 'expected PARAM-NAME="PARAM-VALUE"'),
    (b'<13>1 - h a - - [x a="1', "unterminated PARAM-VALUE"),
    (b'<13>1 - h a - - [x a="1\\"', "unterminated PARAM-VALUE"),
    (b"<13>1 - h a - - [x a=1] m", 'expected PARAM-NAME="PARAM-VALUE"'),
    (b'<13>1 - h a - - [x ="1"] m', "invalid PARAM-NAME"),
    (b'<13>1 - h a - - [ a="1"] m', "invalid SD-ID"),
    (b'<13>1 - h a - - [x a="1"x] m', "expected ' ' or ']'"),
    (b"<13>1 2003-10-11 h a - - - m", "invalid TIMESTAMP"),
    (b"<13>1 2003-13-11T22:14:15Z h a - - - m", "invalid TIMESTAMP"),
    (b"<13>1 2003-10-11T22:14:60Z h a - - - m", "invalid TIMESTAMP"),
    (b"<13>1 2003-10-11T22:14:15.1234567Z h a - - - m", "invalid TIMESTAMP"),
    (b"<13>1 2003-10-11T22:14:15.Z h a - - - m", "invalid TIMESTAMP"),
    (b"<13>1 2003-10-11T22:14:15+25:00 h a - - - m", "invalid TIMESTAMP"),
    (b"<13>1 2003-10-11T22:14:15*05:00 h a - - - m", "invalid TIMESTAMP"),
    (b"<13>1 +003-10-11T22:14:15Z h a - - - m", "invalid TIMESTAMP"),
    (b"<13>1 2003-1a-11T22:14:15Z h a - - - m", "invalid TIMESTAMP"),
    (b"<13>Nov 16 00:25", "truncated or malformed RFC 3164 TIMESTAMP"),
    (b"<13>Nov 16 00:25:00x h t: m", "truncated or malformed RFC 3164 TIMESTAMP"),
    (b"<13>Nov 31 00:25:00 h t: m", "invalid RFC 3164 TIMESTAMP"),
    (b"<13>Nov 16 24:25:00 h t: m", "invalid RFC 3164 TIMESTAMP"),
    (b"<13>Nov 16 00-25-00 h t: m", "invalid RFC 3164 TIMESTAMP"),
    (b"<13>Nov +6 00:25:00 h t: m", "invalid RFC 3164 TIMESTAMP"),
    (b"<13>Nov 16 0 :25:00 h t: m", "invalid RFC 3164 TIMESTAMP"),
]


@pytest.mark.parametrize(("line", "reason"), MALFORMED, ids=[r for _, r in MALFORMED])
def test_malformed_input_raises_parse_error_with_reason(line: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(line)
    assert reason in str(info.value)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_record_or_parse_error(data: bytes) -> None:
    try:
        record = parse(data)
    except ParseError:
        return
    assert isinstance(record["message"], str | None)


_TOKEN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20).filter(
    lambda s: s != "-"
)
_NAME = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='= ]"'), min_size=1, max_size=12
)
_VALUE = st.text(st.characters(codec="utf-8"), max_size=20)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


@given(
    host=_TOKEN,
    app=_TOKEN,
    procid=_TOKEN,
    msgid=_TOKEN,
    sd=st.dictionaries(_NAME, st.dictionaries(_NAME, _VALUE, max_size=3), max_size=3),
    msg=st.none()
    | st.text(st.characters(codec="utf-8"), max_size=40).filter(lambda m: m == m.rstrip("\r\n\x00")),
)
def test_rfc5424_round_trip(
    host: str, app: str, procid: str, msgid: str, sd: dict[str, dict[str, str]], msg: str | None
) -> None:
    sd_text = "".join(
        f"[{sd_id}" + "".join(f' {k}="{_escape(v)}"' for k, v in params.items()) + "]"
        for sd_id, params in sd.items()
    )
    line = f"<165>1 2003-10-11T22:14:15.003Z {host} {app} {procid} {msgid} {sd_text or '-'}"
    if msg is not None:
        line += " \ufeff" + msg
    record = parse(line.encode())
    assert (record["hostname"], record["app_name"], record["procid"], record["msgid"]) == (
        host,
        app,
        procid,
        msgid,
    )
    assert record["structured_data"] == (sd or None)
    assert record["message"] == msg


def test_cached_rfc3164_stamp_follows_the_arrival_year() -> None:
    parser = SyslogParser()
    line = b"<13>Dec 31 23:59:59 h t: m"
    assert (
        parser.parse(line, received=datetime(2026, 12, 31, tzinfo=UTC))["timestamp"] == "2026-12-31T23:59:59Z"
    )
    assert (
        parser.parse(line, received=datetime(2027, 1, 1, tzinfo=UTC))["timestamp"] == "2026-12-31T23:59:59Z"
    )
    assert (
        parser.parse(line, received=datetime(2027, 12, 31, tzinfo=UTC))["timestamp"] == "2027-12-31T23:59:59Z"
    )


def test_timestamp_cache_stays_bounded() -> None:
    parser = SyslogParser()
    for second in range(5000):
        stamp = f"Nov 16 {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        line = f"<13>1 2021-11-16T{stamp[7:]}.{second % 1000:03d}+01:00 h a - - - m"
        assert (
            parser.parse(f"<13>{stamp} h t: m".encode(), received=NOV_2021)["timestamp"]
            == f"2021-11-16T{stamp[7:]}Z"
        )
        assert parser.parse(line.encode(), received=NOV_2021)["timestamp"] is not None
    assert len(parser._cache) <= 4096 and len(parser._cache_5424) <= 4096


def test_pri_with_leading_zero_is_read() -> None:
    assert parse(b"<013>Nov 16 00:25:00 h t: m")["severity_name"] == "notice"


def test_digit_after_pri_other_than_version_1_is_rfc3164_content() -> None:
    record = parse(b"<13>2 files lost")
    assert (record["syslog_format"], record["timestamp"], record["message"]) == (
        "rfc3164",
        None,
        "2 files lost",
    )
