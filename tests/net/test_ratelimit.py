"""The client rate limiter keeps its schedule: late wake-ups do not cost budget, bursts stay bounded."""

from __future__ import annotations

import asyncio

from logferry.net.ratelimit import RateLimiter


class VirtualTime:
    """A clock whose sleeps return ``overshoot`` seconds late, as a busy event loop's do."""

    def __init__(self, overshoot: float = 0.0) -> None:
        self.now = 0.0
        self.overshoot = overshoot
        self.sent: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, secs: float) -> None:
        self.now += secs + self.overshoot
        await asyncio.sleep(0)


async def drive(limiter: RateLimiter, t: VirtualTime, until: float) -> None:
    while t.now < until:
        async with limiter.slot():
            t.sent.append(t.now)


def most_in_any(window: float, times: list[float]) -> int:
    """The most times in any half-open ``window`` starting at one of them (``times`` ascending)."""
    most, end = 0, 0
    for start, s in enumerate(times):
        while end < len(times) and times[end] < s + window:
            end += 1
        most = max(most, end - start)
    return most


async def test_late_wake_ups_do_not_lower_the_rate() -> None:
    # 1,900 a minute with every sleep 5 ms late: the old token bucket managed ~1,850.
    t = VirtualTime(overshoot=0.005)
    limiter = RateLimiter(1900 / 60, clock=t.clock, sleep=t.sleep)
    await drive(limiter, t, 600.0)
    per_minute = len(t.sent) / (t.sent[-1] / 60)
    assert 1890 <= per_minute <= 1901, per_minute
    assert most_in_any(60.0, t.sent) <= 1902, "a late request's successors must not bunch up"


async def test_burst_allows_that_many_ahead_of_schedule_then_holds_the_rate() -> None:
    t = VirtualTime()
    limiter = RateLimiter(10, burst=3, clock=t.clock, sleep=t.sleep)
    await drive(limiter, t, 10.0)
    assert t.sent[:3] == [0.0, 0.0, 0.0]
    # 10 s at 10/s, plus the two that went ahead of the schedule at the start.
    assert 100 <= len(t.sent) <= 104
    assert most_in_any(1.0, t.sent) <= 10 + 3


async def test_penalize_pushes_the_next_request_back() -> None:
    t = VirtualTime()
    limiter = RateLimiter(10, clock=t.clock, sleep=t.sleep)
    async with limiter.slot():
        pass
    limiter.penalize(30.0)
    async with limiter.slot():
        assert t.now >= 30.0


async def test_holds_do_not_add_up_and_apply_without_a_rate() -> None:
    t = VirtualTime()
    limiter = RateLimiter(None, clock=t.clock, sleep=t.sleep)
    # Three answers in flight together all say "refills in 10 s".
    for _ in range(3):
        limiter.hold(10.0)
    for _ in range(2):
        async with limiter.slot():
            t.sent.append(t.now)
    assert t.sent == [10.0, 10.0]
