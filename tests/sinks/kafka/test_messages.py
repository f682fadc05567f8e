"""Outbox line framing, partition keys and message shapes (pure functions: no broker needed)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.core.sink import Action
from logferry.sinks.kafka.messages import LineEncoder, Message, MessageShape, split_line

# Records come from JSON: no lone surrogates, integers within 64 bits (orjson's domain).
TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]))
INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@given(st.one_of(st.none(), TEXT), st.dictionaries(TEXT, st.one_of(TEXT, INTS)))
def test_framing_round_trips_any_key_and_is_newline_free(key: str | None, record: dict[str, object]) -> None:
    encoder = LineEncoder("field", "k")
    (line,) = encoder.encode("src", [{**record, "k": key}])
    assert b"\n" not in line and b"\r" not in line
    got_key, value = split_line(line)
    assert got_key == (None if key is None else key.encode())
    assert orjson.loads(value) == {**record, "k": key}


def keys(encoder: LineEncoder, records: list[dict[str, object]], source: str = "o365") -> list[bytes | None]:
    return [split_line(line)[0] for line in encoder.encode(source, records)]


def test_tenant_key_takes_the_first_present_well_known_field() -> None:
    records: list[dict[str, object]] = [
        {"TenantId": "a", "OrganizationId": "b"},
        {"OrganizationId": "b", "tenantId": "c"},
        {"tenantId": "c"},
        {"tenant_id": 42},
        {"TenantId": None, "AADTenantId": "d"},
        {"other": "x"},
    ]
    assert keys(LineEncoder("tenant"), records) == [b"a", b"b", b"c", b"42", b"d", None]


def test_field_key_follows_a_dotted_path_and_skips_non_scalars() -> None:
    records: list[dict[str, object]] = [
        {"properties": {"tenantId": "t1"}},
        {"properties.tenantId": "flat"},
        {"properties": {"tenantId": True}},
        {"properties": {"tenantId": {"x": 1}}},
        {"properties": "text"},
    ]
    assert keys(LineEncoder("field", "properties.tenantId"), records) == [b"t1", b"flat", b"true", None, None]


def test_source_key_is_the_source_name_and_none_sends_no_key() -> None:
    assert keys(LineEncoder("source"), [{"a": 1}, {"b": 2}], source="duo-auth") == [b"duo-auth", b"duo-auth"]
    assert keys(LineEncoder("none"), [{"a": 1}], source="duo-auth") == [None]


def test_array_format_groups_by_key_and_keeps_each_message_under_the_limit() -> None:
    encoder = LineEncoder("field", "k")
    records = [{"k": "a" if i % 3 else "b", "n": i, "pad": "x" * 50} for i in range(60)]
    lines = encoder.encode("s", records)
    shape = MessageShape("array", max_bytes=400)
    messages = shape.build(lines)
    assert isinstance(messages, list)
    assert all(len(m.value) + len(m.key or b"") <= 400 for m in messages)
    assert len(messages) > 2
    by_key: dict[bytes | None, list[object]] = {}
    for m in messages:
        by_key.setdefault(m.key, []).extend(orjson.loads(m.value))
    assert by_key[b"a"] == [r for r in records if r["k"] == "a"]
    assert by_key[b"b"] == [r for r in records if r["k"] == "b"]


def test_event_format_is_one_message_per_record_in_order() -> None:
    lines = LineEncoder("none").encode("s", [{"n": 1}, {"n": 2}])
    assert MessageShape("event", 1024).build(lines) == [Message(None, b'{"n":1}'), Message(None, b'{"n":2}')]


@pytest.mark.parametrize("fmt", ["event", "array"])
def test_a_record_too_large_for_one_message_is_split_out_then_rejected(fmt: str) -> None:
    shape = MessageShape(fmt, max_bytes=1024)  # type: ignore[arg-type]
    lines = LineEncoder("none").encode("s", [{"n": 1}, {"big": "x" * 2000}, {"n": 3}])
    split = shape.build(lines)
    assert not isinstance(split, list) and split.action is Action.SPLIT
    reject = shape.build(lines[1:2])
    assert not isinstance(reject, list) and reject.action is Action.REJECT
    assert "does not fit one message" in reject.reason and "max_message_bytes is 1024" in reject.reason


def test_a_line_in_another_framing_is_rejected_not_sent() -> None:
    result = MessageShape("event", 1024).build([b'{"n":1}'])
    assert not isinstance(result, list) and result.action is Action.REJECT
    assert "framing" in result.reason
