"""Window arithmetic of the shared polling base: lookback, window cuts, lag, resume."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from logferry.core.polling import (
    MalformedStreak,
    Page,
    PollingSource,
    Window,
    WindowSettings,
    format_time,
    parse_time,
)
from logferry.core.sink import CheckResult
from logferry.core.types import JSONValue

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC).timestamp()


class Windows(PollingSource):
    def fetch(self, window: Window, page_token: JSONValue | None) -> AsyncIterator[Page]:
        raise AssertionError("not used")

    async def check(self) -> CheckResult:
        return CheckResult(True, "")


def source(
    window: float = 300, lookback: float = 3600, lag: float = 30, retention: float | None = None
) -> Windows:
    settings = WindowSettings(
        interval_secs=60, window_secs=window, lookback_secs=lookback, lag_secs=lag, retention_secs=retention
    )
    return Windows("w", settings, clock=lambda: NOW)


def test_first_window_starts_at_the_lookback_and_is_cut_to_window_secs() -> None:
    s = source()
    w = s.next_window(s.planner.initial())
    assert w == Window(parse_time("2026-11-21T11:00:00Z"), parse_time("2026-11-21T11:05:00Z"))


def test_last_window_ends_lag_secs_before_now() -> None:
    s = source()
    w = s.next_window({"start": "2026-11-21T11:58:00Z", "end": None, "page": None})
    assert w is not None and format_time(w.end) == "2026-11-21T11:59:30Z"


def test_no_window_when_caught_up() -> None:
    s = source()
    assert s.next_window({"start": "2026-11-21T11:59:30Z", "end": None, "page": None}) is None


def test_a_window_in_progress_is_resumed_with_its_own_bounds() -> None:
    s = source()
    start, end = "2026-11-21T10:00:00Z", "2026-11-21T10:05:00Z"
    assert s.next_window({"start": start, "end": end, "page": 7}) == Window(
        parse_time(start), parse_time(end)
    )


def test_start_older_than_retention_is_clamped() -> None:
    s = source(retention=600)
    w = s.next_window({"start": "2026-11-20T00:00:00Z", "end": None, "page": None})
    assert w is not None and format_time(w.start) == "2026-11-21T11:50:00Z"


def test_format_time_keeps_fractions_only_when_present() -> None:
    assert format_time(parse_time("2026-01-02T03:04:05Z")) == "2026-01-02T03:04:05Z"
    assert format_time(parse_time("2026-01-02T03:04:05.250000Z")) == "2026-01-02T03:04:05.250000Z"


def test_initial_lookback_beyond_retention_starts_at_the_retention_edge() -> None:
    s = source(lookback=7200, retention=600)
    assert s.planner.initial()["start"] == "2026-11-21T11:50:00Z"


def test_lag_is_the_distance_from_the_cursor_start_to_now() -> None:
    assert source().planner.lag({"start": "2026-11-21T11:00:00Z"}) == 3600.0


def test_a_window_left_in_progress_past_retention_is_planned_afresh() -> None:
    # A long outage: resuming the saved window would be refused by the vendor for ever.
    s = source(retention=600)
    w = s.next_window({"start": "2026-11-20T00:00:00Z", "end": "2026-11-20T00:05:00Z", "page": "tok"})
    assert w is not None
    assert format_time(w.start) == "2026-11-21T11:50:00Z" and format_time(w.end) == "2026-11-21T11:55:00Z"


def test_malformed_streak_gives_up_after_the_attempts_at_one_position() -> None:
    streak = MalformedStreak(attempts=3)
    assert [streak.give_up("page-2") for _ in range(3)] == [False, False, True]
    # A new position starts counting again.
    assert not streak.give_up("page-3") and streak.count == 1
