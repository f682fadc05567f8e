from __future__ import annotations

import pytest

from logferry.sim.faults import Fault, FaultInjector, FaultRule, parse_rules


def test_rule_defaults_fail_one_request_with_503() -> None:
    (rule,) = parse_rules([{}])
    assert rule == FaultRule(path="*", status=503, count=1, after=0, retry_after=None, body=None)


def test_a_single_object_is_accepted_as_one_rule() -> None:
    assert parse_rules({"status": 429}) == [FaultRule(status=429)]


@pytest.mark.parametrize(
    "raw",
    [[{"status": "503"}], [{"count": -1}], [{"after": 1.5}], [{"nope": 1}], ["503"], "503"],
    ids=["status_string", "negative_count", "fractional_after", "unknown_key", "not_object", "not_list"],
)
def test_bad_rules_are_refused(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_rules(raw)


def test_every_matching_rule_counts_but_only_the_first_active_one_fires() -> None:
    injector = FaultInjector([FaultRule(status=500, after=1), FaultRule(status=429, count=2)])
    decisions = [injector.check("/x", now=0.0) for _ in range(4)]
    assert [d.status if d else None for d in decisions] == [429, 500, 429, None]


def test_path_glob_limits_a_rule() -> None:
    injector = FaultInjector([FaultRule(path="/api/*", status=401, count=None)])
    assert injector.check("/login", 0.0) is None
    assert injector.check("/api/items", 0.0) == Fault(status=401)
    assert injector.check("/api/items/1", 0.0) == Fault(status=401)


def test_outage_wins_over_rules_until_it_ends() -> None:
    injector = FaultInjector([FaultRule(status=429)])
    injector.start_outage(now=10.0, seconds=5.0, status=503, retry_after=5)
    assert injector.check("/x", 12.0) == Fault(status=503, retry_after=5)
    assert injector.check("/x", 15.0) == Fault(status=429)
    assert injector.injected == 2
