"""Several cursors in one source: each lane resumes its own position, commits carry all lanes,
health is green only when every lane is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from logferry.core.lanes import run_lanes
from logferry.core.source import EmitResult, SourceContext
from logferry.core.types import JSONValue, Record


class Parent:
    """The pipeline's side of the contract, recording what the lanes hand it."""

    name = "src"
    logger = logging.getLogger("test.lanes")

    def __init__(self, cursor: JSONValue | None = None) -> None:
        self.stopping = asyncio.Event()
        self._cursor = cursor
        self.commits: list[tuple[list[Record], JSONValue]] = []
        self.health: list[tuple[str, Any]] = []

    @property
    def cursor(self) -> JSONValue | None:
        return self._cursor

    async def emit(
        self, records: Sequence[Record], cursor: JSONValue, ids: Sequence[str] | None = None
    ) -> EmitResult:
        self.commits.append((list(records), cursor))
        self._cursor = cursor
        return EmitResult(len(records), 0)

    async def wait_capacity(self) -> None:
        return None

    async def sleep(self, seconds: float) -> bool:
        await asyncio.sleep(0)
        return not self.stopping.is_set()

    def poll_succeeded(self, lag_seconds: float | None = None) -> None:
        self.health.append(("ok", lag_seconds))

    def poll_failed(self, reason: str, error_type: str = "error") -> None:
        self.health.append(("failed", reason))

    async def dead_letter(self, reason: str, payload: bytes) -> None:
        self.health.append(("dead", reason))

    async def dead_letters(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.health.extend(("dead", reason) for reason, _ in items)


class Counter:
    """Emits ``n`` records numbered from its cursor, then reports success and stops."""

    def __init__(self, n: int, lag: float, fail: str | None = None) -> None:
        self.n, self.lag, self.fail = n, lag, fail
        self.started_at: JSONValue | None = None

    async def run(self, ctx: SourceContext) -> None:
        self.started_at = ctx.cursor
        pos = int(ctx.cursor or 0)
        for _ in range(self.n):
            pos += 1
            await ctx.emit([{"pos": pos}], pos)
            await asyncio.sleep(0)
        if self.fail:
            ctx.poll_failed(self.fail, "AuthError")
            await ctx.dead_letter("bad line", b"x")
        else:
            ctx.poll_succeeded(self.lag)


async def test_each_lane_resumes_its_own_cursor_and_every_commit_carries_all_lanes() -> None:
    parent = Parent(cursor={"lanes": {"auth": 10, "telephony": 3}})
    lanes = {"auth": Counter(3, lag=120), "telephony": Counter(2, lag=60), "activity": Counter(1, lag=30)}
    await run_lanes(parent, lanes)
    assert lanes["auth"].started_at == 10 and lanes["telephony"].started_at == 3
    assert lanes["activity"].started_at is None
    assert parent.cursor == {"lanes": {"auth": 13, "telephony": 5, "activity": 1}}
    # A commit never moves another lane's position back.
    seen: dict[str, int] = {}
    for _, cursor in parent.commits:
        assert isinstance(cursor, dict)
        for lane, pos in cursor["lanes"].items():
            assert pos >= seen.get(lane, 0)
            seen[lane] = pos
    # One report for the whole source, once all three lanes succeeded, with the worst lag.
    assert parent.health == [("ok", 120)]


async def test_one_failing_lane_turns_the_source_red_with_its_name() -> None:
    parent = Parent()
    await run_lanes(parent, {"auth": Counter(1, lag=5), "admin": Counter(1, lag=5, fail="HTTP 401: denied")})
    assert ("failed", "admin: HTTP 401: denied") in parent.health
    assert ("dead", "admin: bad line") in parent.health
    assert ("ok", 5) not in parent.health



async def test_a_lane_cancelled_mid_commit_keeps_the_position_the_store_committed() -> None:
    class SlowParent(Parent):
        async def emit(
            self, records: Sequence[Record], cursor: JSONValue, ids: Sequence[str] | None = None
        ) -> EmitResult:
            await asyncio.sleep(0.05)  # the store's worker thread finishes the transaction regardless
            return await super().emit(records, cursor, ids)

    parent = SlowParent()
    slow = asyncio.create_task(run_lanes(parent, {"a": Counter(1, lag=0)}))
    await asyncio.sleep(0.01)
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow
    assert parent.cursor == {"lanes": {"a": 1}}
