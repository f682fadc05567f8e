"""CEF as the Falcon SIEM Connector writes it (crowdstrike.md §5): header, escapes, extension values."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.formats import ParseError
from logferry.formats.cef import HEADER_FIELDS, encode_cef, parse_cef

# header_prefix from the template, then __header.0/1/2 and the DetectionSummaryEvent mapping keys.
DETECTION = (
    "CEF:0|CrowdStrike|FalconHost|1.0|DetectionSummaryEvent|DetectionSummaryEvent|2|"
    "cat=Credential Access externalId=2ec5bc4ad8d44f4c8ddfd0f5b1d4f4b9 cn1=4312 cn2=5120 cn3Label=Offset "
    "cn3=184467 dhost=WIN-ACC-01 duser=CORP\\\\alice msg=A process attempted to dump credentials "
    "fname=procdump64.exe filePath=\\\\Device\\\\HarddiskVolume2\\\\Tools\\\\ "
    "fileHash=0123456789abcdef0123456789abcdef dntdom=CORP "
    'cs5=procdump64.exe -ma lsass.exe C:\\\\temp\\\\l.dmp "quoted" '
    "cs6=https://falcon.crowdstrike.com/activity/detections/detail/abc?x\\=1 "
    "rt=1732252800000 deviceCustomDate1=Nov 22 2024 05:20:00 outcome=1"
)
AUTH = (
    "CEF:0|CrowdStrike|FalconHost|1.0|UserActivityAuditEvent|UserActivityAuditEvent|2|"
    "duser=alice@example.com destinationTranslatedAddress=203.0.113.7 "
    "deviceProcessName=detections outcome=true cn3Label=Offset cn3=99"
)


def test_detection_summary_event() -> None:
    record = parse_cef(DETECTION)
    assert record["cef_version"] == 0
    assert [record[f] for f in HEADER_FIELDS] == [
        "CrowdStrike",
        "FalconHost",
        "1.0",
        "DetectionSummaryEvent",
        "DetectionSummaryEvent",
        "2",
    ]
    ext = record["extensions"]
    assert ext["cat"] == "Credential Access"
    assert ext["duser"] == "CORP\\alice"
    assert ext["msg"] == "A process attempted to dump credentials"
    assert ext["filePath"] == "\\Device\\HarddiskVolume2\\Tools\\"
    assert ext["cs5"] == 'procdump64.exe -ma lsass.exe C:\\temp\\l.dmp "quoted"'
    assert ext["cs6"] == "https://falcon.crowdstrike.com/activity/detections/detail/abc?x=1"
    assert ext["deviceCustomDate1"] == "Nov 22 2024 05:20:00"
    assert ext["cn3"] == "184467"
    assert len(ext) == 18


def test_auth_activity_event() -> None:
    ext = parse_cef(AUTH)["extensions"]
    assert ext == {
        "duser": "alice@example.com",
        "destinationTranslatedAddress": "203.0.113.7",
        "deviceProcessName": "detections",
        "outcome": "true",
        "cn3Label": "Offset",
        "cn3": "99",
    }


def test_header_escapes() -> None:
    record = parse_cef(r"CEF:0|Vendor\|Inc|Prod\\uct|1.0|100|name with \| pipe|5|src=10.0.0.1")
    assert record["device_vendor"] == "Vendor|Inc"
    assert record["device_product"] == "Prod\\uct"
    assert record["name"] == "name with | pipe"
    assert record["extensions"] == {"src": "10.0.0.1"}


def test_extension_escapes_newlines_and_unknown_sequences() -> None:
    ext = parse_cef(r"CEF:0|V|P|1|1|N|1|msg=line1\nline2\r\nend a\=b \| kept\t k2=v")["extensions"]
    assert ext == {"msg": "line1\nline2\r\nend a=b \\| kept\\t", "k2": "v"}


def test_pipes_in_extension_need_no_escape() -> None:
    assert parse_cef("CEF:0|V|P|1|1|N|1|request=/a|b|c x=1")["extensions"] == {"request": "/a|b|c", "x": "1"}


def test_empty_extension_and_trailing_newline() -> None:
    assert parse_cef("CEF:1|V|P|1|1|N|Very-High|\n")["extensions"] == {}


def test_truncated_extension_keeps_what_arrived() -> None:
    # max_length = 2048 in the connector's [Syslog] section cuts long lines mid-value.
    line = DETECTION[:200]
    ext = parse_cef(line)["extensions"]
    assert ext["cat"] == "Credential Access"
    assert list(ext.items())[-1] == ("dhost", line.rsplit("=", 1)[1])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("LEEF:1.0|V|P|1|E|", "not CEF"),
        ("CEF:0|CrowdStrike|FalconHost|1.0|DetectionSummaryEvent", "4 of its 7"),
        (r"CEF:0|V|P|1|1|N\|5", "5 of its 7"),
        ("CEF:x|V|P|1|1|N|5|", "version 'x' is not a number"),
        ("CEF:0|V|P|1|1|N|5|junk k=v", "expected key=value at position 18"),
        ("CEF:0|V|P|1|1|N|5|=x", "invalid key '' at position 18"),
    ],
    ids=["leef", "truncated-header", "escaped-pipe-truncates", "bad-version", "junk-extension", "bad-key"],
)
def test_malformed_lines_raise_parse_error(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_cef(line)


def test_encode_detection_event_reads_back() -> None:
    record = parse_cef(DETECTION)
    assert parse_cef(encode_cef(record)) == record


def test_encode_rejects_unsplittable_key() -> None:
    with pytest.raises(ValueError, match="extension key"):
        encode_cef({"extensions": {"bad key": "v"}})


_text = st.text(st.characters(codec="utf-8"), max_size=20)
_header = _text.filter(lambda s: "\r" not in s and "\n" not in s)
_ext_value = _text.map(lambda s: s.rstrip(" "))
_keys = st.from_regex(r"[A-Za-z0-9_.\-]{1,10}", fullmatch=True)


@given(
    st.integers(0, 9),
    st.lists(_header, min_size=6, max_size=6),
    st.dictionaries(_keys, _ext_value, max_size=6),
)
def test_parse_of_encode_is_identity(version: int, header: list[str], ext: dict[str, str]) -> None:
    record = {"cef_version": version, **dict(zip(HEADER_FIELDS, header, strict=True)), "extensions": ext}
    assert parse_cef(encode_cef(record)) == record


@given(st.text(max_size=60))
def test_arbitrary_text_after_prefix_parses_or_raises_parse_error(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_cef("CEF:0|" + text)
