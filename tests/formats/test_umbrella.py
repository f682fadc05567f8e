"""Umbrella S3 exports: object keys, column layouts per type and version, CSV quirks, gzip streaming."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.formats import ParseError
from logferry.formats.umbrella import (
    _INLINE,
    SCHEMAS,
    UNKNOWN_VERSION_FLAG,
    Reject,
    Schema,
    decode_gzip,
    decode_row,
    iter_gzip,
    iter_rows,
    parse_object_key,
)

DNS_13 = (
    '"2020-01-01 00:00:00","Acme Laptop","Acme Laptop,Acme HQ","10.10.1.100","24.123.132.133","Allowed",'
    '"1 (A)","NOERROR","domain-visited.com.","Search Engines,Software/Technology","Roaming Computers",'
    '"Roaming Computers,Networks",""\n'
)
# Vendor samples put a space after each delimiter.
DNS_SPACED = (
    '"2020-01-01 00:00:01", "Last, First (user@example.com)", "Last, First (user@example.com),Acme HQ", '
    '"10.10.1.100", "24.123.132.133", "Blocked", "28 (AAAA)", "NXDOMAIN", "bad.example.", "Malware", '
    '"AD Users", "AD Users,Networks", "Malware"\n'
)
# The Elastic test data's unquoted cloud firewall row.
FIREWALL_UNQUOTED = (
    "2020-07-23 18:03:46,[211039844],Passive Monitor,CDFW Tunnel Device,OUTBOUND,1,84,172.17.3.4,0,"
    "146.112.255.129,0,ams1.edc,12,ALLOW\n"
)
AUDIT_HEADER = '"ID","Time","Email","User","Type","Action","Logged in from","Before","After"\n'
AUDIT_MULTILINE = (
    '"1340048","2019-01-01 12:00:00","admin@example.com","Admin User","roamingdevices","update",'
    '"192.0.2.10","name: laptop-1\nstatus: active","name: laptop-1\nstatus: disabled"\n'
)


def gz(text: str) -> bytes:
    return gzip.compress(text.encode())


def proxy_row(n: int) -> list[str]:
    base = [
        "2020-02-02 10:00:00",
        "Acme HQ",
        "10.0.0.5",
        "198.51.100.7",
        "203.0.113.9",
        "text/html",
        "ALLOWED",
        "https://example.com/index.html",
        "https://ref.example/",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "200",
        "512",
        "4096",
        "4000",
        "",
        "News/Media,Business Services",
        "",
        "",
        "",
        "",
        "",
        "Networks",
        "",
        "Acme HQ,Jane Doe",
        "Networks,AD Users",
        "GET",
        "NONE",
        "",
        "index.html",
        "1234",
        "5678",
        "11,12",
        "",
        "",
        "",
    ]
    return base[:n]


def test_dns_classic_row_is_named_and_typed() -> None:
    records, rejects = decode_gzip(gz(DNS_13), "dns")
    assert rejects == []
    assert records == [
        {
            "log_type": "dns",
            "timestamp": "2020-01-01T00:00:00Z",
            "most_granular_identity": "Acme Laptop",
            "identities": "Acme Laptop,Acme HQ",
            "internal_ip": "10.10.1.100",
            "external_ip": "24.123.132.133",
            "action": "Allowed",
            "query_type": "1 (A)",
            "response_code": "NOERROR",
            "domain": "domain-visited.com.",
            "categories": ["Search Engines", "Software/Technology"],
            "most_granular_identity_type": "Roaming Computers",
            "identity_types": ["Roaming Computers", "Networks"],
            "blocked_categories": [],
        }
    ]


def test_space_after_delimiter_and_identities_with_commas_stay_in_their_columns() -> None:
    [rec], _ = decode_gzip(gz(DNS_SPACED), "dns")
    assert rec["most_granular_identity"] == "Last, First (user@example.com)"
    assert rec["identities"] == "Last, First (user@example.com),Acme HQ"
    assert (rec["action"], rec["query_type"], rec["domain"]) == ("Blocked", "28 (AAAA)", "bad.example.")
    assert rec["blocked_categories"] == ["Malware"]


def test_unquoted_cloud_firewall_row() -> None:
    [rec], rejects = decode_gzip(gz(FIREWALL_UNQUOTED), "firewall")
    assert rejects == []
    assert rec == {
        "log_type": "firewall",
        "timestamp": "2020-07-23T18:03:46Z",
        "origin_id": 211039844,
        "identity": "Passive Monitor",
        "identity_type": "CDFW Tunnel Device",
        "direction": "OUTBOUND",
        "ip_protocol": "1",
        "packet_size": 84,
        "source_ip": "172.17.3.4",
        "source_port": 0,
        "destination_ip": "146.112.255.129",
        "destination_port": 0,
        "data_center": "ams1.edc",
        "rule_id": 12,
        "verdict": "ALLOW",
    }


def test_audit_header_is_skipped_and_multiline_before_after_become_key_values() -> None:
    records, rejects = decode_gzip(gz(AUDIT_HEADER + AUDIT_MULTILINE), "audit")
    assert rejects == []
    [rec] = records
    assert rec["id"] == 1340048
    assert rec["logged_in_from"] == "192.0.2.10"
    assert rec["before"] == {"name": "laptop-1", "status": "active"}
    assert rec["after"] == {"name": "laptop-1", "status": "disabled"}


def test_audit_value_that_is_not_key_value_text_stays_a_string() -> None:
    row = ["1", "2019-01-01 12:00:00", "a@example.com", "A", "policy", "create", "192.0.2.1", "", "free text"]
    rec = decode_row("audit", row)
    assert (rec["before"], rec["after"]) == (None, "free text")


@pytest.mark.parametrize("n", [23, 26, 32, 33, 35], ids=["v4", "v5", "v6", "elastic+isolate", "elastic"])
def test_each_proxy_version_names_its_columns(n: int) -> None:
    rec = decode_row("proxy", proxy_row(n))
    assert len(rec) == n + 1
    assert (rec["status_code"], rec["request_size"], rec["response_size"]) == (200, 512, 4096)
    assert rec["categories"] == ["News/Media", "Business Services"]
    assert rec["user_agent"] == "Mozilla/5.0 (X11; Linux x86_64)"
    if n >= 26:
        assert (rec["identities"], rec["request_method"]) == ("Acme HQ,Jane Doe", "GET")
    if n >= 32:
        assert (rec["ruleset_id"], rec["rule_id"], rec["destination_list_ids"]) == (1234, 5678, ["11", "12"])


def test_missing_trailing_columns_between_versions_are_tolerated() -> None:
    rec = decode_row("proxy", proxy_row(24))
    assert rec["identities"] == "Acme HQ,Jane Doe"
    assert "identity_types" not in rec
    assert UNKNOWN_VERSION_FLAG not in rec


def test_legacy_ten_column_dns_row() -> None:
    rec = decode_row("dns", next(csv.reader([DNS_13]))[:10])
    assert rec["categories"] == ["Search Engines", "Software/Technology"]
    assert "most_granular_identity_type" not in rec


@pytest.mark.parametrize(
    ("log_type", "row"),
    [
        ("ip", ["2017-10-02 23:41:00", "Acme HQ", "192.0.2.1", "55043", "198.51.100.2", "443", "Malware"]),
        (
            "intrusion",
            [
                "2020-05-05 05:05:05",
                "Acme HQ",
                "Networks",
                "1",
                "2023001",
                "ET TROJAN test",
                "7",
                "HIGH",
                "trojan-activity",
                "CVE-2020-0001",
                "TCP",
                "9988",
                "10.0.0.1",
                "51515",
                "203.0.113.5",
                "80",
                "Would Block",
            ],
        ),
    ],
    ids=["ip", "intrusion"],
)
def test_ip_and_intrusion_rows(log_type: str, row: list[str]) -> None:
    rec = decode_row(log_type, row)
    assert rec["log_type"] == log_type
    assert rec["timestamp"].endswith("Z")
    assert isinstance(rec["source_port"], int)
    assert isinstance(rec["destination_port"], int)
    assert len(rec) == len(row) + 1


def test_firewall_ccp_version_names_all_columns() -> None:
    row = FIREWALL_UNQUOTED.strip().split(",") + ["a.example", "7"] + ["2020-07-23 18:03:40"] * 2 + ["3"] * 19
    rec = decode_row("firewall", row)
    assert rec["first_packet_timestamp"] == "2020-07-23T18:03:40Z"
    assert rec["bytes_received"] == 3
    assert rec["event_correlation_id"] == "3"
    assert UNKNOWN_VERSION_FLAG not in rec


def test_row_longer_than_every_known_version_keeps_raw_columns_and_a_flag() -> None:
    row = [*next(csv.reader([DNS_13])), "r1", "US", "42", "new-in-a-later-version"]
    rec = decode_row("dns", row)
    assert rec[UNKNOWN_VERSION_FLAG] is True
    assert rec["column_1"] == "2020-01-01 00:00:00"
    assert rec["column_17"] == "new-in-a-later-version"
    assert len(rec) == 17 + 2


def test_types_without_a_column_list_keep_raw_columns() -> None:
    records, rejects = decode_gzip(gz('"2024-01-01 00:00:00","Acme","policy x"\n'), "dlp")
    assert rejects == []
    assert records == [
        {
            "log_type": "dlp",
            UNKNOWN_VERSION_FLAG: True,
            "column_1": "2024-01-01 00:00:00",
            "column_2": "Acme",
            "column_3": "policy x",
        }
    ]


def test_short_rows_are_rejected_with_their_cells_and_the_rest_decoded() -> None:
    body = DNS_13 + '"2020-01-01 00:00:00","truncated"\n' + DNS_SPACED
    records, rejects = decode_gzip(gz(body), "dns")
    assert len(records) == 2
    assert rejects == [
        Reject(
            2, "dns row has 2 columns; the oldest known version has 10", ("2020-01-01 00:00:00", "truncated")
        )
    ]


def test_decode_row_raises_on_too_few_columns() -> None:
    with pytest.raises(ParseError, match="ip row has 6 columns; the oldest known version has 7"):
        decode_row("ip", ["2017-10-02 23:41:00", "Acme HQ", "192.0.2.1", "55043", "198.51.100.2", "443"])


def test_a_number_too_long_for_int_is_a_parse_error_and_the_rest_decoded() -> None:
    # Python refuses int() on more than 4300 digits (ValueError): the row is a reject, not a crash.
    huge = "9" * 5000
    row = ["2017-10-02 23:41:00", "Acme HQ", "192.0.2.1", huge, "198.51.100.2", "443", ""]
    with pytest.raises(ParseError, match="cannot be converted"):
        decode_row("ip", row)
    body = DNS_13.rstrip("\n") + f',"{huge}"\n' + DNS_13
    records, rejects = decode_gzip(gz(body), "dns")
    assert [r["domain"] for r in records] == ["domain-visited.com."]
    assert len(rejects) == 1 and rejects[0].line == 1 and "cannot be converted" in rejects[0].reason
    assert rejects[0].fields[-1] == huge


def test_iter_rows_splits_without_decoding_and_skips_the_header() -> None:
    assert list(iter_rows(gz(AUDIT_HEADER + DNS_13))) == [(2, next(csv.reader([DNS_13])))]


def test_odd_typed_values_are_kept_as_logged() -> None:
    row = ["not-a-time", "Acme HQ", "192.0.2.1", "n/a", "198.51.100.2", "", ""]
    rec = decode_row("ip", row)
    assert (rec["timestamp"], rec["source_port"], rec["destination_port"], rec["categories"]) == (
        "not-a-time",
        "n/a",
        None,
        [],
    )


def test_csv_errors_are_rejects_not_exceptions() -> None:
    # csv's default field limit (128 KiB) is the error a real object can hit.
    body = DNS_13 + '"2020-01-01 00:00:00","' + "x" * 200_000 + '"\n' + DNS_13
    records, rejects = decode_gzip(gz(body), "dns")
    assert len(records) == 2
    assert len(rejects) == 1
    assert rejects[0].reason.startswith("CSV: ")


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    raw = DNS_13.encode().replace(b"Acme Laptop", b"Acme \xff Laptop", 1)
    [rec], _ = decode_gzip(gzip.compress(raw), "dns")
    assert rec["most_granular_identity"] == "Acme \ufffd Laptop"


def test_crlf_line_ends_and_blank_lines() -> None:
    records, rejects = decode_gzip(gz(DNS_13.replace("\n", "\r\n") + "\r\n" + DNS_13), "dns")
    assert (len(records), rejects) == (2, [])
    assert records[0]["blocked_categories"] == []


def test_concatenated_gzip_members_are_one_object() -> None:
    records, _ = decode_gzip(gz(DNS_13) + gz(DNS_SPACED), "dns")
    assert [r["action"] for r in records] == ["Allowed", "Blocked"]


@pytest.mark.parametrize(
    "body",
    [b"not gzip at all", gzip.compress(DNS_13.encode())[:-6], gzip.compress(DNS_13.encode())[:12], b""],
    ids=["not-gzip", "no-trailer", "cut-in-deflate", "empty"],
)
def test_corrupt_or_truncated_objects_raise_parse_error(body: bytes) -> None:
    if not body:
        assert decode_gzip(body, "dns") == ([], [])
        return
    with pytest.raises(ParseError, match="gzip"):
        decode_gzip(body, "dns")


def test_rows_stream_out_before_a_corrupt_tail_is_reached() -> None:
    body = gzip.compress((DNS_13 * 20_000).encode())
    rows = iter_gzip(body[: len(body) // 2], "dns")
    first = next(rows)
    assert not isinstance(first, Reject)
    assert first["domain"] == "domain-visited.com."
    with pytest.raises(ParseError, match="gzip"):
        for _ in rows:
            pass


def test_schema_refuses_a_longest_version_that_does_not_name_every_column() -> None:
    with pytest.raises(ValueError, match="longest version"):
        Schema("x", ("a", "b"), {"v1": 1})


def test_every_schema_longest_version_names_all_columns() -> None:
    assert set(SCHEMAS) == {"dns", "proxy", "ip", "firewall", "audit", "intrusion"}
    for schema in SCHEMAS.values():
        assert len(set(schema.columns)) == len(schema.columns)


KEYS = [
    (
        "dnslogs/2019-01-01/2019-01-01-00-00-e4e1.csv.gz",
        ("", "dnslogs", "dns", "2019-01-01", "00:00", "e4e1"),
    ),
    (
        "acme-logs/1234567/proxylogs/2024-05-06/2024-05-06-13-50-ab9Z.csv.gz",
        ("acme-logs/1234567", "proxylogs", "proxy", "2024-05-06", "13:50", "ab9Z"),
    ),
    (
        "p/cdfwlogs/2020-07-23/2020-07-23-18-00-0a0b.csv.gz",
        ("p", "cdfwlogs", "firewall", "2020-07-23", "18:00", "0a0b"),
    ),
    (
        "cloudfirewalllogs/2020-07-23/2020-07-23-18-10-zzzz.csv.gz",
        ("", "cloudfirewalllogs", "firewall", "2020-07-23", "18:10", "zzzz"),
    ),
    (
        "x/auditlogs/2019-01-01/2019-01-01-12-00-1a2b.csv.gz",
        ("x", "auditlogs", "audit", "2019-01-01", "12:00", "1a2b"),
    ),
    (
        "ztnalogs/2025-01-01/2025-01-01-00-10-abcd.csv.gz",
        ("", "ztnalogs", "ztna", "2025-01-01", "00:10", "abcd"),
    ),
    (
        "newthinglogs/2025-01-01/2025-01-01-00-10-abcd.csv.gz",
        ("", "newthinglogs", "newthing", "2025-01-01", "00:10", "abcd"),
    ),
]


@pytest.mark.parametrize(("key", "parts"), KEYS, ids=[k for k, _ in KEYS])
def test_object_keys_give_prefix_type_and_time(key: str, parts: tuple[str, ...]) -> None:
    k = parse_object_key(key)
    assert (k.prefix, k.folder, k.log_type, k.date, k.time, k.suffix) == parts


@pytest.mark.parametrize(
    "key",
    [
        "dnslogs/2019-01-01.csv.gz",
        "dnslogs/2019-01-01/2019-01-01-00-00-e4e1.csv",
        "dnslogs/2019-01-01/2019-01-02-00-00-e4e1.csv.gz",
        "dnslogs/2019-1-01/2019-1-01-00-00-e4e1.csv.gz",
        "dnslogs/2019-01-01/2019-01-01-0-00-e4e1.csv.gz",
        "dnslogs/2019-01-01/2019-01-01-00-00-e4-1.csv.gz",
        "dnslogs/2019-01-01/2019-01-01-00-00-.csv.gz",
    ],
)
def test_other_keys_are_a_parse_error(key: str) -> None:
    with pytest.raises(ParseError, match="key"):
        parse_object_key(key)


_CELL = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=30)


@given(st.lists(st.lists(_CELL, min_size=1, max_size=12), max_size=20))
def test_raw_columns_round_trip_through_csv_and_gzip(rows: list[list[str]]) -> None:
    rows = [r for r in rows if r != [""]]
    buf = io.StringIO()
    # A first data row is never a header: real ones start with a timestamp or an id number.
    buf.write('"2024-01-01 00:00:00"\n')
    csv.writer(buf, quoting=csv.QUOTE_ALL).writerows(rows)
    records, rejects = decode_gzip(gz(buf.getvalue()), "dlp")
    assert rejects == []
    decoded = [[r[f"column_{i}"] for i in range(1, len(r) - 1)] for r in records[1:]]
    # skipinitialspace drops spaces before a field's opening quote only, so quoted cells survive whole.
    assert decoded == rows


@given(st.one_of(_CELL, st.sampled_from(["", "42", "²", "2020-01-01 00:00:00", "a, b,c", "[7]"])))
def test_inlined_converters_match_their_functions(v: str) -> None:
    for convert, expr in _INLINE.items():
        assert eval(expr.replace("$", "v"), {}, {"v": v}) == convert(v)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_parse_error(body: bytes) -> None:
    with contextlib.suppress(ParseError):
        decode_gzip(body, "dns")


@given(
    st.text(alphabet=st.sampled_from('ab,"\n\r 1:-'), max_size=300),
    st.sampled_from([*sorted(SCHEMAS), "dlp"]),
)
def test_arbitrary_csv_text_gives_records_or_rejects_only(text: str, log_type: str) -> None:
    records, rejects = decode_gzip(gz(text), log_type)
    for rec in records:
        assert rec["log_type"] == log_type
    for rej in rejects:
        assert rej.reason
