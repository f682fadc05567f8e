"""Fault injection shared by every simulator: scripted error responses and timed outages.

A rule says "the next ``count`` requests whose path matches ``path``, after skipping ``after`` of
them, get ``status``". Rules come from the simulator's ``faults`` option or, at runtime, from
``POST /sim/faults`` (a JSON list that replaces the current rules)::

    [{"path": "/dataCollectionRules/*", "status": 503, "count": 1, "retry_after": 2}]

``POST /sim/outage {"seconds": 60, "status": 503}`` fails every request for a while, which is how
tests play "destination down for a minute, then back". Neither ever applies to ``/sim/*``.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Fault", "FaultInjector", "FaultRule", "parse_rules"]

_RULE_KEYS = frozenset({"path", "status", "count", "after", "retry_after", "body", "delay_secs"})


@dataclass(frozen=True)
class FaultRule:
    """One scripted fault.

    ``status`` ``None`` means "do not fail, only delay by ``delay_secs``" (slow responses for timeout
    tests); ``count`` ``None`` means the rule never runs out; ``body`` replaces the simulator's
    usual error body for ``status``.
    """

    path: str = "*"
    status: int | None = 503
    count: int | None = 1
    after: int = 0
    retry_after: float | None = None
    body: Any = None
    delay_secs: float = 0.0

    @classmethod
    def from_json(cls, raw: Any) -> FaultRule:
        """Build a rule from its JSON form, refusing unknown keys and wrong types with ``ValueError``."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"a fault rule must be a JSON object, got {type(raw).__name__}")
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise ValueError(f"unknown fault rule keys {sorted(unknown)}; allowed: {sorted(_RULE_KEYS)}")
        rule = cls(**raw)
        _check(isinstance(rule.path, str), "path must be a string glob")
        _check(rule.status is None or (_is_int(rule.status) and 100 <= rule.status <= 599), "bad status")
        _check(rule.count is None or (_is_int(rule.count) and rule.count >= 0), "count must be >= 0 or null")
        _check(_is_int(rule.after) and rule.after >= 0, "after must be an integer >= 0")
        _check(rule.retry_after is None or _is_number(rule.retry_after), "retry_after must be a number")
        _check(_is_number(rule.delay_secs) and rule.delay_secs >= 0, "delay_secs must be >= 0")
        return rule

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_rules(raw: Any) -> list[FaultRule]:
    """Parse the JSON list accepted by ``POST /sim/faults`` and the ``faults`` option."""
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list):
        raise ValueError("faults must be a JSON list of rule objects")
    return [r if isinstance(r, FaultRule) else FaultRule.from_json(r) for r in raw]


@dataclass(frozen=True)
class Fault:
    """What to do to one request: fail with ``status`` (or only delay when ``status`` is None)."""

    status: int | None
    retry_after: float | None = None
    body: Any = None
    delay_secs: float = 0.0


class _Armed:
    """A rule with its counters; kept apart from the rule so rules stay plain values."""

    __slots__ = ("fired", "rule", "seen")

    def __init__(self, rule: FaultRule) -> None:
        self.rule = rule
        self.seen = 0
        self.fired = 0

    def observe(self, path: str) -> bool:
        """Count a request; return True when the rule applies to it."""
        if not fnmatch.fnmatchcase(path, self.rule.path):
            return False
        self.seen += 1
        if self.seen <= self.rule.after:
            return False
        return self.rule.count is None or self.fired < self.rule.count


class FaultInjector:
    """Decides, per request, whether a rule or an outage fails it."""

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._armed = [_Armed(r) for r in rules]
        self._outage_until = -math.inf
        self._outage = Fault(status=503)
        self.injected = 0

    def set_rules(self, rules: Iterable[FaultRule]) -> None:
        self._armed = [_Armed(r) for r in rules]

    def start_outage(
        self, now: float, seconds: float, status: int = 503, retry_after: float | None = None
    ) -> None:
        self._outage_until = now + seconds
        self._outage = Fault(status=status, retry_after=retry_after)

    def end_outage(self) -> None:
        self._outage_until = -math.inf

    def check(self, path: str, now: float) -> Fault | None:
        """The fault for a request to ``path`` at monotonic time ``now``, or None to serve it normally."""
        if now < self._outage_until:
            self.injected += 1
            return self._outage
        chosen: _Armed | None = None
        # Every matching rule sees the request (so "after" counts are independent of other rules),
        # but only the first applicable one fires and spends its count.
        for armed in self._armed:
            if armed.observe(path) and chosen is None:
                chosen = armed
        if chosen is None:
            return None
        chosen.fired += 1
        self.injected += 1
        r = chosen.rule
        return Fault(status=r.status, retry_after=r.retry_after, body=r.body, delay_secs=r.delay_secs)

    def describe(self, now: float) -> dict[str, Any]:
        return {
            "rules": [{**a.rule.to_json(), "seen": a.seen, "fired": a.fired} for a in self._armed],
            "outage_remaining_secs": max(0.0, self._outage_until - now),
            "injected": self.injected,
        }


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"invalid fault rule: {message}")
