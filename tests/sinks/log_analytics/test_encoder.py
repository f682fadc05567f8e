"""Top-level names become ones the API accepts, without losing a field; oversized values are counted."""

from __future__ import annotations

from typing import Any

import orjson

from logferry.sinks.log_analytics.encoder import RecordEncoder, column_name


def encode_one(record: dict[str, Any]) -> dict[str, Any]:
    lines, _ = RecordEncoder().encode([record])
    decoded: dict[str, Any] = orjson.loads(lines[0])
    return decoded


def test_valid_names_are_sent_unchanged_and_nested_keys_untouched() -> None:
    record = {"auditType": "x", "n_1": 2, "details": {"user.name": "a", "@t": 1}}
    assert encode_one(record) == record


def test_invalid_and_reserved_names_are_renamed() -> None:
    assert column_name("user.name") == "user_name"
    assert column_name("@timestamp") == "_timestamp"
    assert column_name("Jürgen-Feld") == "J_rgen_Feld"
    assert column_name("") == "_"
    assert [column_name(k) for k in ("tenant", "TimeGenerated", "rawdata")] == [
        "tenant_",
        "TimeGenerated_",
        "rawdata_",
    ]


def test_a_clash_keeps_both_values_and_the_valid_name_keeps_its_own() -> None:
    record = {"a.b": 1, "a_b": 2, "a-b": 3, "a_b_2": 4}
    assert encode_one(record) == {"a_b": 2, "a_b_2": 4, "a_b_3": 1, "a_b_4": 3}


def test_only_values_over_32_kb_are_counted() -> None:
    records: list[dict[str, Any]] = [
        {"s": "x" * 32 * 1024},  # exactly at the limit: kept whole
        {"s": "x" * (32 * 1024 + 1), "t": "é" * 16_385},  # two values over it
        {"nested": {"k": ["y" * 20_000, "z" * 20_000]}},  # a nested value counts as its JSON text
    ]
    lines, oversized = RecordEncoder().encode(records)
    assert oversized == 3 and len(lines) == 3


def test_the_time_field_keeps_its_column_and_a_clashing_key_is_renamed() -> None:
    encoder = RecordEncoder("@timestamp")
    assert encoder.time_column == "_timestamp"
    records: list[dict[str, Any]] = [
        {"@timestamp": "2026-11-22T09:00:00Z", "_timestamp": "not a time", "#timestamp": 1},
        {"_timestamp": "not a time"},  # without the time field the column still holds nothing else
        {"@timestamp": "2026-11-22T10:00:00Z", "other": 2},
    ]
    lines, _ = encoder.encode(records)
    assert [orjson.loads(line) for line in lines] == [
        {"_timestamp": "2026-11-22T09:00:00Z", "_timestamp_2": "not a time", "_timestamp_3": 1},
        {"_timestamp_2": "not a time"},
        {"_timestamp": "2026-11-22T10:00:00Z", "other": 2},
    ]


def test_a_valid_time_field_is_sent_under_its_own_name() -> None:
    encoder = RecordEncoder("time_generated")
    lines, _ = encoder.encode([{"time_generated": "t", "time.generated": "u"}])
    assert encoder.time_column == "time_generated"
    assert orjson.loads(lines[0]) == {"time_generated": "t", "time_generated_2": "u"}
