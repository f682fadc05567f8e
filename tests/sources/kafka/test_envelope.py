"""Message values → records: the diagnostic-settings envelope, plain JSON, text, rejects."""

from __future__ import annotations

import orjson

from logferry.sources.kafka.envelope import Envelope

SIGNIN = {
    "time": "2026-11-21T10:00:00Z",
    "category": "SignInLogs",
    "operationName": "Sign-in activity",
    "properties": {"id": "a"},
}
AUDIT = {"time": "2026-11-21T10:00:01Z", "Category": "AuditLogs", "properties": {"id": "b"}}


def test_envelope_is_split_with_positions_and_a_bad_entry_rejected_alone() -> None:
    value = orjson.dumps({"records": [SIGNIN, "oops", AUDIT]})
    out = Envelope(unwrap_records=True).decode(value)
    assert out.records == [(0, SIGNIN), (2, AUDIT)]
    assert [r for r, _ in out.rejects] == ["records[1] is a JSON str, not an object"]
    assert out.rejects[0][1] == b'"oops"'


def test_without_unwrap_an_envelope_is_one_record() -> None:
    value = orjson.dumps({"records": [SIGNIN]})
    assert Envelope().decode(value).records == [(None, {"records": [SIGNIN]})]


def test_object_array_and_scalar() -> None:
    e = Envelope(unwrap_records=True)
    assert e.decode(b'{"a": 1}').records == [(None, {"a": 1})]
    assert e.decode(b'[{"a": 1}, {"b": 2}]').records == [(0, {"a": 1}), (1, {"b": 2})]
    out = e.decode(b"42")
    assert not out.records and out.rejects == [("message is a JSON int, not an object or array", b"42")]


def test_not_json_is_dead_lettered_with_the_fix() -> None:
    out = Envelope().decode(b"<134>plain syslog line")
    assert not out.records
    reason, payload = out.rejects[0]
    assert "message is not JSON" in reason and "format: text" in reason
    assert payload == b"<134>plain syslog line"


def test_text_format() -> None:
    e = Envelope(format="text")
    assert e.decode(b"hello \xc3\xa9").records == [(None, {"message": "hello é"})]
    out = e.decode(b"\xff\xfe")
    assert not out.records and "not UTF-8" in out.rejects[0][0]


def test_tombstone_is_nothing() -> None:
    out = Envelope().decode(None)
    assert not out.records and not out.rejects


def test_category_filter_is_case_insensitive_and_reads_both_spellings() -> None:
    e = Envelope(unwrap_records=True, categories=frozenset({"signinlogs", "auditlogs"}))
    other = {"category": "RiskyUsers"}
    out = e.decode(orjson.dumps({"records": [SIGNIN, other, AUDIT, {"no": "category"}]}))
    assert out.records == [(0, SIGNIN), (2, AUDIT)]
    assert out.filtered == 2 and not out.rejects
