"""LEEF 1.0 (tab) and 2.0 (declared delimiter, as a character or xHH).

crowdstrike.md §5 leaves the Falcon LEEF preset's header unconfirmed, so these lines reuse the vendor,
product and version of its CEF header_prefix and the keys of its DetectionSummaryEvent mapping.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.formats import ParseError
from logferry.formats.leef import encode_leef, parse_leef

V1 = (
    "LEEF:1.0|CrowdStrike|FalconHost|1.0|DetectionSummaryEvent|"
    "cat=Credential Access\tdhost=WIN-ACC-01\tduser=CORP\\alice\tmsg=A process attempted to dump credentials"
    "\tcs6=https://falcon.crowdstrike.com/detail/abc?x=1&y=2\tcn3=184467"
)
V2_CARET = (
    "LEEF:2.0|CrowdStrike|FalconHost|1.0|UserActivityAuditEvent|^|"
    "duser=alice@example.com^destinationTranslatedAddress=203.0.113.7^outcome=true^cn3=99"
)


def test_leef_1_tab_separated() -> None:
    record = parse_leef(V1)
    assert {k: record[k] for k in ("leef_version", "device_vendor", "device_product", "device_version")} == {
        "leef_version": "1.0",
        "device_vendor": "CrowdStrike",
        "device_product": "FalconHost",
        "device_version": "1.0",
    }
    assert record["event_id"] == "DetectionSummaryEvent"
    assert record["delimiter"] == "\t"
    assert record["attributes"] == {
        "cat": "Credential Access",
        "dhost": "WIN-ACC-01",
        "duser": "CORP\\alice",
        "msg": "A process attempted to dump credentials",
        "cs6": "https://falcon.crowdstrike.com/detail/abc?x=1&y=2",
        "cn3": "184467",
    }


def test_leef_2_caret_delimiter() -> None:
    record = parse_leef(V2_CARET)
    assert record["delimiter"] == "^"
    assert record["attributes"]["destinationTranslatedAddress"] == "203.0.113.7"
    assert len(record["attributes"]) == 4


@pytest.mark.parametrize(
    ("field", "delimiter"),
    [("x09", "\t"), ("0x09", "\t"), ("X5E", "^"), ("x7C7C", "\u7c7c"), ("", "\t"), (";", ";")],
    ids=["x09", "0x09", "upper-x", "four-hex-digits", "empty-means-tab", "literal"],
)
def test_leef_2_delimiter_forms(field: str, delimiter: str) -> None:
    line = f"LEEF:2.0|V|P|1|E|{field}|a=1{delimiter}b=two words"
    record = parse_leef(line)
    assert record["delimiter"] == delimiter
    assert record["attributes"] == {"a": "1", "b": "two words"}


def test_empty_segments_and_trailing_delimiter_are_skipped() -> None:
    assert parse_leef("LEEF:1.0|V|P|1|E|a=1\t\tb=\t\n")["attributes"] == {"a": "1", "b": ""}


def test_pipes_and_equals_in_values() -> None:
    assert parse_leef("LEEF:1.0|V|P|1|E|q=a|b=c\tn=1")["attributes"] == {"q": "a|b=c", "n": "1"}


def test_no_attributes() -> None:
    assert parse_leef("LEEF:2.0|V|P|1|E|^|")["attributes"] == {}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("CEF:0|V|P|1|1|N|5|", "not LEEF"),
        ("LEEF:1.0|CrowdStrike|FalconHost", "2 of its 5"),
        ("LEEF:2.0|V|P|1|E|a=1", "no delimiter field"),
        ("LEEF:3.0|V|P|1|E|a=1", "unsupported LEEF version '3.0'"),
        ("LEEF:2.0|V|P|1|E|tab|a=1", "delimiter 'tab' at position 17"),
        ("LEEF:2.0|V|P|1|E|x3D|a=1", "would be ambiguous"),
        ("LEEF:1.0|V|P|1|E|a=1\tjunk", "expected key=value at position 21"),
        ("LEEF:1.0|V|P|1|E|=1", "expected key=value at position 17"),
    ],
    ids=[
        "cef",
        "truncated",
        "v2-no-delimiter",
        "version",
        "bad-delimiter",
        "equals-delimiter",
        "no-equals",
        "no-key",
    ],
)
def test_malformed_lines_raise_parse_error(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_leef(line)


def test_encode_rejects_what_leef_cannot_carry() -> None:
    with pytest.raises(ValueError, match="cannot contain"):
        encode_leef({"device_vendor": "a|b"})
    with pytest.raises(ValueError, match="cannot be written"):
        encode_leef({"delimiter": "^", "attributes": {"k": "a^b"}})


def test_encode_writes_tab_as_hex() -> None:
    assert (
        encode_leef({"event_id": "E", "delimiter": "\t", "attributes": {"a": "1"}}) == "LEEF:2.0||||E|x09|a=1"
    )


_plain = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=15)
_delims = st.sampled_from(["\t", "^", ";", "\x01", " ", "#"])


@given(st.data(), st.sampled_from(["1.0", "2.0"]), _delims)
def test_parse_of_encode_is_identity(data: st.DataObject, version: str, delimiter: str) -> None:
    if version == "1.0":
        delimiter = "\t"
    header = data.draw(st.lists(_plain.filter(lambda s: "|" not in s), min_size=4, max_size=4))
    key = _plain.filter(lambda s: bool(s) and "=" not in s and delimiter not in s)
    value = _plain.filter(lambda s: delimiter not in s)
    attributes = data.draw(st.dictionaries(key, value, max_size=5))
    record = {
        "leef_version": version,
        "device_vendor": header[0],
        "device_product": header[1],
        "device_version": header[2],
        "event_id": header[3],
        "delimiter": delimiter,
        "attributes": attributes,
    }
    assert parse_leef(encode_leef(record)) == record


@given(st.text(max_size=60))
def test_arbitrary_text_parses_or_raises_parse_error(text: str) -> None:
    for prefix in ("LEEF:1.0|", "LEEF:2.0|"):
        with contextlib.suppress(ParseError):
            parse_leef(prefix + text)
