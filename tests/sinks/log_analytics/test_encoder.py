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
