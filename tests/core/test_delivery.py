"""The delivery loop's answers to what a sink says (or fails to say) about one request."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence

import pytest

from logferry.core.delivery import DeliveryLoop
from logferry.core.sink import BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.net.retry import Backoff
from logferry.observe.metrics import Metrics


class ScriptedSink:
    """A destination that answers each request with the next scripted reply and records what it got."""

    def __init__(self, replies: Sequence[Callable[[list[bytes]], Resolution]]) -> None:
        self.name = "dst"
        self.limits = BatchLimits(max_bytes=1 << 20, max_events=1000)
        self.requests: list[list[bytes]] = []
        self._replies = list(replies)

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return [str(r["n"]).encode() for r in records]

    async def start(self) -> None:
        pass

    async def send(self, lines: list[bytes]) -> Resolution:
        self.requests.append(lines)
        reply = self._replies.pop(0) if self._replies else (lambda _: Resolution.delivered())
        return reply(lines)

    async def healthcheck(self) -> CheckResult:
        return CheckResult(True, "ok")

    async def close(self) -> None:
        pass


def loop_for(sink: ScriptedSink, max_backoff_secs: float = 0.05) -> DeliveryLoop:
    return DeliveryLoop("dst", sink, None, Metrics(), max_backoff_secs, on_freed=None)  # type: ignore[arg-type]


LINES = [b"0", b"1", b"2", b"3", b"4"]


def raise_value_error(lines: list[bytes]) -> Resolution:
    raise ValueError("Forbidden control character detected in headers")


async def test_a_sink_that_raises_is_retried_instead_of_stopping_delivery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = ScriptedSink([raise_value_error])
    loop = loop_for(sink)
    rejected = await loop._deliver(list(LINES), Backoff(initial_secs=0.01, max_secs=0.01))
    assert rejected == []
    assert sink.requests == [LINES, LINES]
    assert loop.health.retries == 1 and loop.health.delivered == 5
    assert "sink dst: send raised instead of answering" in caplog.text


async def test_reject_one_keeps_the_lines_before_it_and_resends_only_those_after() -> None:
    sink = ScriptedSink([lambda lines: Resolution.reject_one(2, "invalid event 2", status=400)])
    loop = loop_for(sink)
    rejected = await loop._deliver(list(LINES), Backoff(initial_secs=0.01, max_secs=0.01))
    assert rejected == [("invalid event 2", b"2")]
    assert sink.requests == [LINES, [b"3", b"4"]]
    assert loop.health.delivered == 4 and loop.health.dead_lettered == 1


async def test_reject_one_of_the_last_line_sends_nothing_again() -> None:
    sink = ScriptedSink([lambda lines: Resolution.reject_one(4, "bad", status=400)])
    rejected = await loop_for(sink)._deliver(list(LINES), Backoff(initial_secs=0.01, max_secs=0.01))
    assert rejected == [("bad", b"4")]
    assert sink.requests == [LINES]


async def test_a_retry_after_beyond_max_backoff_waits_max_backoff() -> None:
    sink = ScriptedSink([lambda lines: Resolution.retry("busy", after=math.inf, status=503)])
    rejected = await asyncio.wait_for(
        loop_for(sink, max_backoff_secs=0.05)._deliver([b"0"], Backoff(initial_secs=0.01, max_secs=0.05)), 5
    )
    assert rejected == [] and len(sink.requests) == 2


def test_backoff_after_thousands_of_attempts_stays_at_its_cap() -> None:
    backoff = Backoff(initial_secs=0.5, max_secs=300.0, attempt=5000)
    assert 0 <= backoff.next_delay() <= 300.0


async def test_reject_one_with_an_index_outside_the_request_halves_it_instead() -> None:
    replies = [lambda lines: Resolution.reject_one(7, "invalid event 7", status=400)]
    sink = ScriptedSink(replies)
    rejected = await loop_for(sink)._deliver(list(LINES), Backoff(initial_secs=0.01, max_secs=0.01))
    assert rejected == []
    assert sink.requests == [LINES, LINES[:2], LINES[2:]]
