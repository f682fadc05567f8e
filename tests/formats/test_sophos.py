"""Sophos SFOS lines, legacy (v17 to v18.x) and SFOS 19+, as sophos.md §1 shows them."""

from __future__ import annotations

import contextlib
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.formats import ParseError
from logferry.formats.sophos import SophosParser

# sophos.md §1.1, with the pairs the spec lists for legacy lines after the "…".
LEGACY = (
    '<30>device="SFW" date=2020-05-18 time=14:38:48 timezone="CEST" device_name="XG230" '
    'device_id=1234567890123456 log_id=041101618035 log_type="Anti-Spam" log_component="SMTP" '
    'log_subtype="Allowed" status="" priority=Information fw_rule_id=0 src_port=25 dst_port= '
    "ether_type=Unknown (0x0000) src_ip=2001:db8::10 user_name=- sent_bytes=N/A"
)
# sophos.md §1.2, with the renamed keys it lists and its double space.
V19 = (
    'Nov 16 00:25:00 sophos device_name="SFW" timestamp="2021-11-15T18:25:00-0600" device_model="SFVH" '
    'device_serial_id="C01001BQC8TFFFF" log_id="010101600001" log_type="Firewall" '
    'log_component="Firewall Rule" log_subtype="Allowed" log_version=1 severity="Information" '
    'src_country="R1" src_trans_ip="" con_id="1543612752" packets_sent=2  packets_received=2 '
    'bytes_received=120 hb_status="No Heartbeat"'
)

BERLIN = ZoneInfo("Europe/Berlin")


def test_legacy_line() -> None:
    record = SophosParser(tz=BERLIN).parse(LEGACY)
    assert record["sfos_format"] == "legacy"
    assert record["syslog_pri"] == 30
    assert record["device_name"] == "XG230"
    assert record["timezone"] == "CEST"
    # CEST is UTC+2 in May: the configured zone, not the abbreviation, decides.
    assert record["event_time"] == "2020-05-18T12:38:48Z"
    assert record["device_serial"] == "1234567890123456"
    assert record["device_id"] == "1234567890123456"
    assert record["log_id"] == "041101618035"
    assert record["severity_code"] == 6
    assert record["status"] == ""
    assert record["fw_rule_id"] == 0
    assert record["src_port"] == 25
    assert record["dst_port"] is None
    assert record["ether_type"] == "Unknown (0x0000)"
    assert record["src_ip"] == "2001:db8::10"
    assert record["user_name"] == ""
    assert record["sent_bytes"] is None
    assert record["device_hostname"] == "XG230"


def test_v19_line() -> None:
    record = SophosParser().parse(V19)
    assert record["sfos_format"] == "v19"
    assert "syslog_pri" not in record
    assert record["timestamp"] == "2021-11-15T18:25:00-0600"
    assert record["event_time"] == "2021-11-16T00:25:00Z"
    assert record["device_serial"] == "C01001BQC8TFFFF"
    assert record["log_component"] == "Firewall Rule"
    assert record["log_version"] == 1
    assert (record["packets_sent"], record["packets_received"], record["bytes_received"]) == (2, 2, 120)
    assert record["con_id"] == "1543612752"
    assert record["hb_status"] == "No Heartbeat"
    assert record["src_trans_ip"] == ""
    assert record["severity_code"] == 6
    assert record["device_hostname"] == "sophos"


def test_v19_line_with_pri_and_space_padded_day() -> None:
    record = SophosParser().parse("<134>" + V19.replace("Nov 16", "Nov  6"))
    assert record["syslog_pri"] == 134
    assert record["device_hostname"] == "sophos"


def test_body_without_header_from_a_syslog_parser() -> None:
    body = V19.split(" ", 4)[4]
    assert SophosParser().parse(body)["event_time"] == "2021-11-16T00:25:00Z"


def test_known_devices_map_serial_to_hostname() -> None:
    parser = SophosParser(
        known_devices={"C01001BQC8TFFFF": "fw-berlin.example", "1234567890123456": "fw-legacy.example"},
        default_host_name="firewall.localgroup.local",
    )
    assert parser.parse(V19)["device_hostname"] == "fw-berlin.example"
    assert parser.parse(LEGACY)["device_hostname"] == "fw-legacy.example"
    other = V19.replace("C01001BQC8TFFFF", "UNKNOWNSERIAL")
    assert parser.parse(other)["device_hostname"] == "firewall.localgroup.local"


def test_known_devices_accepts_a_numeric_serial_as_yaml_reads_it() -> None:
    parser = SophosParser(known_devices={1234567890123456: "fw-legacy.example"})  # type: ignore[dict-item]
    assert parser.parse(LEGACY)["device_hostname"] == "fw-legacy.example"


def test_legacy_time_read_in_configured_zone_default_utc() -> None:
    assert SophosParser().parse(LEGACY)["event_time"] == "2020-05-18T14:38:48Z"


def test_bytes_input_and_trailing_newline() -> None:
    assert SophosParser().parse((V19 + "\n").encode())["hb_status"] == "No Heartbeat"


def test_severity_from_name_when_log_id_is_not_twelve_digits() -> None:
    record = SophosParser().parse('device_name="SFW" log_id=123 severity="Warning"')
    assert record["severity_code"] == 4


def test_non_ascii_digits_in_log_id_are_not_decoded() -> None:
    record = SophosParser().parse("log_id=00000\u00b2000000 device_name=SFW")
    assert "severity_code" not in record


def test_repeated_timestamps_give_the_same_result() -> None:
    parser = SophosParser()
    first = [parser.parse(V19)["event_time"] for _ in range(3)]
    assert first == ["2021-11-16T00:25:00Z"] * 3


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('<30>device="SFW" date=2020-05-18 time=14:38:48 log_type="Firewall', "unterminated quote"),
        ("<30>", "no key=value pairs"),
        ("<999>device=SFW", "invalid PRI"),
        ("<3x>device=SFW", "invalid PRI"),
        ("<\u00b2>device=SFW", "invalid PRI"),
        ("hello world", "expected key=value at position 0"),
        ('device="SFW" timestamp="yesterday"', "bad timestamp 'yesterday'"),
        ('device="SFW" timestamp="2021-11-15T18:25:00"', "has no UTC offset"),
        ("device=SFW date=2020-05-18", "only one of date and time"),
        ("device=SFW date=2020-13-18 time=14:38:48", "bad legacy date/time"),
        (b"device=\xff", "not UTF-8 at byte 7"),
        ("Nov 16 00:25:00 device=SFW", "syslog header without a host"),
    ],
    ids=[
        "unterminated-quote",
        "pri-only",
        "pri-range",
        "pri-not-digits",
        "pri-superscript-digit",
        "not-kv",
        "bad-timestamp",
        "timestamp-without-offset",
        "date-without-time",
        "bad-date",
        "not-utf8",
        "header-without-host",
    ],
)
def test_malformed_lines_raise_parse_error(line: str | bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        SophosParser().parse(line)


@given(st.text(max_size=80))
def test_arbitrary_text_never_raises_anything_but_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        SophosParser().parse(text)
