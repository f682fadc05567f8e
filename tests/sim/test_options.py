from __future__ import annotations

import pytest

from logferry.sim import SIMULATORS, parse_options
from logferry.sim.faults import FaultRule
from logferry.sim.meshstack import MeshStackOptions
from logferry.sim.sentinel import SentinelOptions


def test_builtin_simulators_are_registered_by_name() -> None:
    assert {"meshstack", "entra", "sentinel"} <= set(SIMULATORS)
    assert all(cls.name == name for name, cls in SIMULATORS.items())


def test_options_are_parsed_from_the_dataclass_fields() -> None:
    options = parse_options("meshstack", ["--live-rate", "5", "--backlog-events", "1000", "--seed=3"])
    assert options == MeshStackOptions(live_rate=5.0, backlog_events=1000, seed=3)


def test_bool_options_take_an_optional_value_and_optional_strings_parse() -> None:
    assert parse_options("sentinel", ["--store-rows", "false"]) == SentinelOptions(store_rows=False)
    assert parse_options("sentinel", ["--store-rows"]) == SentinelOptions(store_rows=True)
    with_url = parse_options("sentinel", ["--entra-url", "https://127.0.0.1:1"])
    assert with_url == SentinelOptions(entra_url="https://127.0.0.1:1")


def test_faults_option_takes_the_json_rule_list() -> None:
    options = parse_options(
        "meshstack", ["--faults", '[{"path": "/api/*", "status": 429, "retry_after": 1}]']
    )
    assert options.faults == (FaultRule(path="/api/*", status=429, retry_after=1),)


@pytest.mark.parametrize(
    ("name", "argv", "message"),
    [
        ("meshstack", ["--bogus", "1"], "unknown option(s) --bogus"),
        ("meshstack", ["--live-rate", "fast"], "--live-rate"),
        ("meshstack", ["--backlog-events", "-1"], "backlog_events must be >= 0"),
        ("meshstack", ["--faults", "[{"], "--faults"),
        ("nope", [], "unknown simulator 'nope'"),
    ],
    ids=["unknown_option", "bad_number", "invalid_value", "bad_json", "unknown_simulator"],
)
def test_mistakes_raise_value_error_naming_the_problem(name: str, argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_options(name, argv)
