"""ESA text mail logs: both line variants, the ICID/MID/DCID/RID lifecycle, file names, malformed input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.formats import ParseError
from logferry.formats.esa import EsaParser, parse_log_filename, parse_message, zone
from logferry.formats.syslog import SyslogParser

TS = "Mon Apr 17 19:56:22 2003"
NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)


def file_line(message: str, level: str = "Info") -> dict[str, Any]:
    return EsaParser().parse_file_line(f"{TS} {level}: {message}")


def test_file_line_from_the_sma_sample() -> None:
    rec = EsaParser().parse_file_line(
        "Mon Apr 17 19:56:22 2003 Info: New SMTP ICID 5 interface Management (10.1.1.1) "
        "address 10.1.1.209 reverse dns host remotehost.com verified yes"
    )
    assert rec == {
        "timestamp": "2003-04-17T19:56:22Z",
        "level": "Info",
        "message": "New SMTP ICID 5 interface Management (10.1.1.1) address 10.1.1.209 "
        "reverse dns host remotehost.com verified yes",
        "event": "connection_new",
        "icid": 5,
        "interface": "Management",
        "interface_ip": "10.1.1.1",
        "remote_ip": "10.1.1.209",
        "reverse_dns": "remotehost.com",
        "reverse_dns_verified": True,
    }


def test_space_padded_day_is_accepted() -> None:
    rec = EsaParser().parse_file_line("Mon Apr  7 09:05:02 2003 Warning: ICID 5 close")
    assert rec["timestamp"] == "2003-04-07T09:05:02Z"
    assert rec["level"] == "Warning"
    assert (rec["event"], rec["icid"]) == ("connection_close", 5)


def test_configured_zone_moves_the_timestamp_to_utc() -> None:
    assert (
        EsaParser(zone("+0200")).parse_file_line(f"{TS} Info: x")["timestamp"] == "2003-04-17T17:56:22Z"
    )
    assert (
        EsaParser(zone("-05:30")).parse_file_line(f"{TS} Info: x")["timestamp"] == "2003-04-18T01:26:22Z"
    )
    assert EsaParser(zone("Europe/Berlin")).parse_file_line(f"{TS} Info: x")["timestamp"] == (
        "2003-04-17T17:56:22Z"
    )
    assert zone("UTC") is UTC


@pytest.mark.parametrize("spec", ["+2", "+25:99", "Mars/Olympus", "+02:0x"])
def test_bad_zone_is_a_parse_error(spec: str) -> None:
    with pytest.raises(ParseError, match="time zone"):
        zone(spec)


LIFECYCLE = [
    ("Start MID 6 ICID 5", {"event": "message_start", "mid": 6, "icid": 5}),
    (
        "MID 6 ICID 5 From: <sender@example.com>",
        {"event": "mail_from", "mid": 6, "icid": 5, "mail_from": "sender@example.com"},
    ),
    (
        "MID 6 ICID 5 RID 0 To: <rcpt@example.org>",
        {"event": "rcpt_to", "mid": 6, "icid": 5, "rid": 0, "rcpt_to": "rcpt@example.org"},
    ),
    (
        "MID 6 Message-ID '<abc@example.com>'",
        {"event": "message_id", "mid": 6, "message_id": "<abc@example.com>"},
    ),
    ('MID 6 Subject "Quarterly report"', {"event": "subject", "mid": 6, "subject": "Quarterly report"}),
    (
        "MID 6 Subject Re: hello\\r\\n world",
        {"event": "subject", "mid": 6, "subject": "Re: hello\\r\\n world"},
    ),
    (
        "MID 6 ready 2048 bytes from <sender@example.com>",
        {"event": "message_ready", "mid": 6, "size": 2048, "mail_from": "sender@example.com"},
    ),
    (
        "MID 6 matched all recipients for per-recipient policy DEFAULT in the inbound table",
        {"event": "policy_match", "mid": 6, "policy": "DEFAULT", "policy_direction": "inbound"},
    ),
    (
        "MID 6 interim verdict using engine: CASE bulk",
        {"event": "verdict", "mid": 6, "engine": "CASE", "verdict": "bulk", "interim": True},
    ),
    (
        "MID 6 interim AV verdict using Sophos CLEAN",
        {
            "event": "verdict",
            "mid": 6,
            "engine": "Sophos",
            "verdict": "CLEAN",
            "interim": True,
            "scanner": "antivirus",
        },
    ),
    (
        "MID 6 using engine: GRAYMAIL positive",
        {"event": "verdict", "mid": 6, "engine": "GRAYMAIL", "verdict": "positive", "interim": False},
    ),
    (
        "MID 6 Outbreak Filters: verdict negative",
        {"event": "verdict", "mid": 6, "engine": "Outbreak Filters", "verdict": "negative", "interim": False},
    ),
    (
        "MID 6 AMP file reputation verdict : SKIPPED (no attachment in message)",
        {
            "event": "verdict",
            "mid": 6,
            "engine": "AMP",
            "verdict": "SKIPPED (no attachment in message)",
            "interim": False,
        },
    ),
    (
        "MID 6 SPF: mailfrom identity sender@example.com Pass (v=spf1)",
        {
            "event": "spf",
            "mid": 6,
            "spf_scope": "mailfrom",
            "spf_identity": "sender@example.com",
            "spf_result": "Pass",
        },
    ),
    (
        "MID 6 DKIM: pass signature verified (d=example.com s=sel1 i=@example.com)",
        {
            "event": "dkim",
            "mid": 6,
            "dkim_result": "pass",
            "dkim_domain": "example.com",
            "dkim_selector": "sel1",
            "dkim_identity": "@example.com",
        },
    ),
    (
        "MID 6 DMARC: Message from domain example.com, DMARC pass (SPF aligned True, DKIM aligned True)",
        {"event": "dmarc", "mid": 6, "dmarc_domain": "example.com", "dmarc_result": "pass"},
    ),
    (
        "MID 6 SDR: Domains for which SDR is requested",
        {"event": "sdr", "mid": 6, "sdr": "Domains for which SDR is requested"},
    ),
    (
        "MID 6 URL http://bad.example/x has reputation -9.5 matched Condition: URL Reputation Rule",
        {
            "event": "url_reputation",
            "mid": 6,
            "url": "http://bad.example/x",
            "url_reputation": -9.5,
            "condition": "URL Reputation Rule",
        },
    ),
    ("MID 6 queued for delivery", {"event": "queued", "mid": 6}),
    ("ICID 5 close", {"event": "connection_close", "icid": 5}),
    (
        "New SMTP DCID 8 interface 10.1.1.1 address 10.2.2.2 port 25",
        {
            "event": "delivery_connection_new",
            "dcid": 8,
            "interface": "10.1.1.1",
            "remote_ip": "10.2.2.2",
            "remote_port": 25,
        },
    ),
    (
        "New SMTP DCID 8 interface 10.1.1.1 address 10.2.2.2",
        {"event": "delivery_connection_new", "dcid": 8, "interface": "10.1.1.1", "remote_ip": "10.2.2.2"},
    ),
    ("Delivery start DCID 8 MID 6 to RID [0]", {"event": "delivery_start", "dcid": 8, "mid": 6, "rids": [0]}),
    (
        "Delivery start DCID 8 MID 6 to RID [0, 1]",
        {"event": "delivery_start", "dcid": 8, "mid": 6, "rids": [0, 1]},
    ),
    (
        "MID 6 RID [0] Response '2.0.0 Ok: queued as 4AB'",
        {"event": "delivery_response", "mid": 6, "rids": [0], "response": "2.0.0 Ok: queued as 4AB"},
    ),
    ("Message done DCID 8 MID 6 to RID [0]", {"event": "delivery_done", "dcid": 8, "mid": 6, "rids": [0]}),
    (
        "Message done DCID 8 MID 6 to RID [0] [('from', 'a@example.com'), ('to', 'b@example.org')]",
        {"event": "delivery_done", "dcid": 8, "mid": 6, "rids": [0]},
    ),
    ("DCID 8 close", {"event": "delivery_connection_close", "dcid": 8}),
    ("Message finished MID 6 done", {"event": "message_finished", "mid": 6, "outcome": "done"}),
    (
        "MID 6 DLP violation. Severity: LOW (Risk Factor: 15). DLP policy match: 'PCI Compliance'.",
        {
            "event": "dlp_violation",
            "mid": 6,
            "dlp_severity": "LOW",
            "dlp_risk_factor": 15,
            "dlp_policy": "PCI Compliance",
        },
    ),
    (
        "Bounced: DCID 8 MID 6 From:<a@example.com> To:<b@example.org> RID 0 - 5.1.0 - Unknown address error",
        {
            "event": "bounce",
            "dcid": 8,
            "mid": 6,
            "mail_from": "a@example.com",
            "rcpt_to": "b@example.org",
            "rid": 0,
            "bounce_code": "5.1.0",
            "bounce_reason": "Unknown address error",
        },
    ),
]


@pytest.mark.parametrize(("message", "fields"), LIFECYCLE, ids=[m[:40] for m, _ in LIFECYCLE])
def test_lifecycle_messages_give_their_event_and_ids(message: str, fields: dict[str, Any]) -> None:
    assert parse_message(message) == fields
    rec = file_line(message)
    assert rec["message"] == message
    assert {k: rec[k] for k in fields} == fields


OTHER = [
    ("Internal SMTP system successfully sent a message to admin@example.com", {"event": "other"}),
    ("A System/Warning alert was sent to admin@example.com", {"event": "other"}),
    ("MID 6 rewritten to MID 7 by antispam", {"event": "other", "mid": 6}),
    (
        "MID 6 ICID 5 RID 1 To: <b@example.org> Rcpt Host Unknown",
        {"event": "rcpt_to", "mid": 6, "icid": 5, "rid": 1},
    ),
    ("MID 6 URL missing-reputation", {"event": "other", "mid": 6}),
    ("MID 6 ready lots bytes from <a@b>", {"event": "other", "mid": 6}),
    ("ICID 5 ACCEPT SG UNKNOWNLIST match sbrs[none] SBRS None", {"event": "connection", "icid": 5}),
    ("Delivery start DCID 8 MID 6 to RID 0", {"event": "other"}),
    ("Message done DCID x MID 6 to RID [0]", {"event": "other"}),
    ("Start MID 6", {"event": "other"}),
    ("New SMTP XCID 8", {"event": "other"}),
    ("MID x From: <a@b>", {"event": "other"}),
    ("RCID 3 close", {"event": "rpc_connection_close", "rcid": 3}),
]


@pytest.mark.parametrize(("message", "fields"), OTHER, ids=[m[:40] for m, _ in OTHER])
def test_unknown_shapes_are_kept_with_the_ids_their_head_names(message: str, fields: dict[str, Any]) -> None:
    rec = file_line(message)
    assert rec["message"] == message
    assert {k: rec[k] for k in fields} == fields


def test_mid_is_taken_from_the_head_not_from_a_subject_quoting_another_mid() -> None:
    assert parse_message("MID 6 Subject 'MID 9 ICID 1 From: <x@y>'") == {
        "event": "subject",
        "mid": 6,
        "subject": "MID 9 ICID 1 From: <x@y>",
    }


def syslog_line(line: str, now: datetime = NOW, tz: tzinfo = UTC) -> dict[str, Any]:
    """The syslog variant as a listener reads it: SyslogParser takes the header, ESA the body."""
    header = SyslogParser(default_tz=tz).parse(line.encode(), received=now)
    return EsaParser().parse_syslog_record(header)


def test_syslog_line_without_host() -> None:
    rec = syslog_line("<166>Mar 17 18:24:37 mail_logs: Info: MID 6 ICID 5 From: <x@y>")
    assert rec == {
        "facility": 20,
        "severity": 6,
        "log_name": "mail_logs",
        "timestamp": "2025-03-17T18:24:37Z",
        "level": "Info",
        "message": "MID 6 ICID 5 From: <x@y>",
        "event": "mail_from",
        "mid": 6,
        "icid": 5,
        "mail_from": "x@y",
    }


def test_syslog_line_with_host_from_the_elastic_test_data() -> None:
    rec = syslog_line(
        "<94>Nov 24 14:22:57 REDACTED.africa.example.net mail_logs: Info: Message finished MID 6 done"
    )
    assert rec["host"] == "REDACTED.africa.example.net"
    assert rec["log_name"] == "mail_logs"
    assert (rec["facility"], rec["severity"]) == (11, 6)
    # November is months after the March receive time: the line was logged the previous year.
    assert rec["timestamp"] == "2024-11-24T14:22:57Z"
    assert (rec["event"], rec["mid"]) == ("message_finished", 6)


def test_syslog_line_without_priority_as_a_receiver_may_hand_it_over() -> None:
    rec = syslog_line("Mar  7 08:00:01 esa1 mail_logs: Critical: DCID 8 close")
    assert rec["timestamp"] == "2025-03-07T08:00:01Z"
    assert (rec["host"], rec["level"], rec["dcid"]) == ("esa1", "Critical", 8)


def test_syslog_year_and_zone_come_from_the_syslog_parser() -> None:
    # A December line read on 1 January was logged last year; the appliance zone moves it to UTC.
    now = datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert syslog_line("<166>Dec 31 23:59:00 mail_logs: Info: x", now)["timestamp"] == "2024-12-31T23:59:00Z"
    rec = syslog_line("<166>Jan  1 01:00:00 mail_logs: Info: x", now, timezone(timedelta(hours=2)))
    assert rec["timestamp"] == "2024-12-31T23:00:00Z"


def test_syslog_record_keeps_the_same_fields_as_a_file_line() -> None:
    body = "New SMTP ICID 5 interface Management (10.1.1.1) address 10.1.1.209 reverse dns host h verified no"
    from_file = EsaParser().parse_file_line(f"Mon Mar 17 18:24:37 2025 Info: {body}")
    from_syslog = syslog_line(f"<166>Mar 17 18:24:37 mail_logs: Info: {body}")
    assert {k: v for k, v in from_syslog.items() if k not in ("facility", "severity", "log_name")} == (
        from_file | {"timestamp": "2025-03-17T18:24:37Z"}
    )


MALFORMED = [
    ("", "timestamp"),
    ("Info: MID 6 ICID 5", "timestamp"),
    ("Apr 17 19:56:22 2003 Info: x", "timestamp"),
    ("Mon Foo 17 19:56:22 2003 Info: x", "bad timestamp"),
    ("Mon Apr 31 19:56:22 2003 Info: x", "bad timestamp"),
    ("Mon Apr 17 19:56 2003 Info: x", "bad timestamp"),
    ("Mon Apr 17 19:56:22 2003 MID 6 ICID 5", "Level"),
    ("Mon Apr 17 19:56:22 2003 Info:MID 6", "Level"),
    ("Mon Apr 17 19:56:22", "timestamp"),
]


@pytest.mark.parametrize(("line", "reason"), MALFORMED, ids=[r + ":" + ln[:20] for ln, r in MALFORMED])
def test_malformed_file_lines_raise_parse_error_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        EsaParser().parse_file_line(line)


SYSLOG_MALFORMED = [
    ("<999>Mar 17 18:24:37 mail_logs: Info: x", "PRI"),
    ("<16Mar 17 18:24:37 mail_logs: Info: x", "PRI"),
    ("<166>17 Mar 18:24:37 mail_logs: Info: x", "timestamp"),
    ("<166>Mar 17 18:24:37 host name Info: x", "subscription"),
    ("<166>Mar 17 18:24:37 mail_logs: x", "Level"),
    ("<166>Mar 32 18:24:37 mail_logs: Info: x", "TIMESTAMP"),
    ("<166>Mar 17", "TIMESTAMP"),
]


@pytest.mark.parametrize(("line", "reason"), SYSLOG_MALFORMED, ids=[r for _, r in SYSLOG_MALFORMED])
def test_malformed_syslog_lines_raise_parse_error_with_a_reason(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        syslog_line(line)


def test_repeated_timestamps_come_from_the_cache_and_stay_right() -> None:
    parser = EsaParser(zone("+0100"))
    first = [parser.parse_file_line(f"Tue Jan  1 00:00:{s:02d} 2019 Info: x")["timestamp"] for s in range(60)]
    again = [parser.parse_file_line(f"Tue Jan  1 00:00:{s:02d} 2019 Info: x")["timestamp"] for s in range(60)]
    assert first == again
    assert first[0] == "2018-12-31T23:00:00Z"


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=80))
def test_any_message_text_is_kept_whole_and_never_rejected(message: str) -> None:
    rec = EsaParser().parse_file_line(f"{TS} Info: {message}")
    assert rec["message"] == message
    assert isinstance(rec["event"], str)


@given(
    mid=st.integers(min_value=0, max_value=2**40),
    icid=st.integers(min_value=0, max_value=2**40),
    rid=st.integers(min_value=0, max_value=1000),
    dcid=st.integers(min_value=0, max_value=2**40),
)
def test_ids_round_trip_through_lifecycle_lines(mid: int, icid: int, rid: int, dcid: int) -> None:
    assert parse_message(f"MID {mid} ICID {icid} RID {rid} To: <a@b>")["rid"] == rid
    assert parse_message(f"Start MID {mid} ICID {icid}") == {
        "event": "message_start",
        "mid": mid,
        "icid": icid,
    }
    done = parse_message(f"Message done DCID {dcid} MID {mid} to RID [{rid}, {rid + 1}]")
    assert (done["dcid"], done["mid"], done["rids"]) == (dcid, mid, [rid, rid + 1])


def test_file_names_tell_rolled_files_from_the_current_one() -> None:
    saved = parse_log_filename("/mail_logs/mail_logs.@20240101T000000.s")
    assert (saved.name, saved.timestamp, saved.status, saved.complete) == (
        "mail_logs",
        "20240101T000000",
        "s",
        True,
    )
    assert parse_log_filename("mail_logs.@123456789.s").timestamp == "123456789"
    host = parse_log_filename("authentication.example.com.@20240101T000000.s")
    assert (host.name, host.complete) == ("authentication.example.com", True)
    assert not parse_log_filename("mail_logs.@20240101T000000.current").complete
    assert not parse_log_filename("mail_logs.@20240101T000000.c").complete
    # The timestamp's format is unconfirmed: any text between ".@" and the last dot is kept.
    assert parse_log_filename("mail_logs.@2024.01.01-00h.s").timestamp == "2024.01.01-00h"


@pytest.mark.parametrize(
    "name",
    [
        "mail_logs.s",
        "mail_logs.@.s",
        ".@2024.s",
        "mail_logs.@2024",
        "mail_logs.@2024.tmp",
        "mail_logs.@2024.s.part",
    ],
)
def test_other_file_names_are_a_parse_error(name: str) -> None:
    with pytest.raises(ParseError, match="file name"):
        parse_log_filename(name)


@given(
    name=st.from_regex(r"[a-z_][a-z0-9_.]{0,20}", fullmatch=True).filter(lambda s: ".@" not in s),
    stamp=st.from_regex(r"[0-9A-Za-z.]{1,20}", fullmatch=True),
    status=st.sampled_from(["s", "c", "current"]),
)
def test_file_names_round_trip(name: str, stamp: str, status: str) -> None:
    parsed = parse_log_filename(f"/upload/{name}.@{stamp}.{status}")
    assert (parsed.name, parsed.timestamp, parsed.status) == (name, stamp, status)
    assert parsed.complete == (status == "s")
