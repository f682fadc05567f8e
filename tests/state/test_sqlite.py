"""The SQLite state store: atomic commits, dedupe, outbox acks, dead letters, migrations."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import orjson
import pytest

from logferry.core.errors import StateError
from logferry.core.types import Record
from logferry.state.sqlite import MIGRATIONS, SQLiteStateStore


def enc(records: Sequence[Record]) -> list[bytes]:
    return [orjson.dumps(r) for r in records]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStateStore]:
    s = SQLiteStateStore(tmp_path / "state.db")
    await s.open()
    yield s
    await s.close()


async def test_commit_writes_every_routed_outbox_and_the_cursor(store: SQLiteStateStore) -> None:
    recs = [{"n": i} for i in range(3)]
    res = await store.commit("src", {"page": 1}, recs, None, {"a": enc, "b": enc}, 60)
    assert (res.accepted, res.duplicates) == (3, 0)
    assert await store.get_cursor("src") == {"page": 1}
    for sink in ("a", "b"):
        (entry,) = await store.outbox_read(sink, 10, 1 << 30)
        assert [orjson.loads(x) for x in entry.lines] == recs
    stats = await store.outbox_stats()
    assert stats["a"].events == 3 and stats["a"].bytes == res.outbox_bytes["a"]


async def test_commit_drops_ids_seen_before_and_within_the_batch(store: SQLiteStateStore) -> None:
    await store.commit("src", 1, [{"n": 1}, {"n": 2}], ["x", "y"], {"a": enc}, 60)
    res = await store.commit("src", 2, [{"n": 2}, {"n": 3}, {"n": 3}], ["y", "z", "z"], {"a": enc}, 60)
    assert (res.accepted, res.duplicates) == (1, 2)
    entries = await store.outbox_read("a", 10, 1 << 30)
    assert [orjson.loads(x) for e in entries for x in e.lines] == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_seen_ids_are_per_source_and_expire(store: SQLiteStateStore) -> None:
    await store.commit("one", 1, [{"n": 1}], ["x"], {"a": enc}, 60)
    res = await store.commit("two", 1, [{"n": 1}], ["x"], {"a": enc}, 60)
    assert res.accepted == 1
    await store.commit("three", 1, [{"n": 1}], ["x"], {"a": enc}, -1)  # already expired
    assert (await store.commit("three", 2, [{"n": 1}], ["x"], {"a": enc}, 60)).accepted == 1
    assert await store.prune_seen() >= 0


async def test_failed_encoder_rolls_back_cursor_and_outbox(store: SQLiteStateStore) -> None:
    def broken(records: Sequence[Record]) -> list[bytes]:
        raise ValueError("boom")

    await store.commit("src", "before", [{"n": 0}], ["id0"], {"a": enc}, 60)
    with pytest.raises(ValueError):
        await store.commit("src", "after", [{"n": 1}], ["id1"], {"a": enc, "b": broken}, 60)
    assert await store.get_cursor("src") == "before"
    assert len(await store.outbox_read("a", 10, 1 << 30)) == 1
    # id1 was not remembered, so the retried batch is not mistaken for a duplicate.
    assert (await store.commit("src", "after", [{"n": 1}], ["id1"], {"a": enc}, 60)).accepted == 1


async def test_ack_deletes_done_entries_and_remembers_a_partial_one(store: SQLiteStateStore) -> None:
    for i in range(3):
        await store.commit("src", i, [{"e": i, "k": k} for k in range(4)], None, {"a": enc}, 60)
    e1, e2, e3 = await store.outbox_read("a", 10, 1 << 30)
    freed = await store.outbox_ack("a", e1.id, (e2.id, 3), [("bad row", b"{}")])
    assert freed > 0
    left = await store.outbox_read("a", 10, 1 << 30)
    assert [e.id for e in left] == [e2.id, e3.id]
    assert left[0].offset == 3 and len(left[0].lines) == 1
    assert (await store.outbox_stats())["a"].events == 5
    (dl,) = await store.dead_letters()
    assert (dl.component, dl.stage, dl.sink, dl.reason) == ("a", "deliver", "a", "bad row")


async def test_outbox_read_stops_at_the_byte_budget_but_returns_at_least_one_entry(
    store: SQLiteStateStore,
) -> None:
    for i in range(5):
        await store.commit("src", i, [{"pad": "x" * 1000, "i": i}], None, {"a": enc}, 60)
    assert len(await store.outbox_read("a", 10, 2500)) == 3
    assert len(await store.outbox_read("a", 10, 1)) == 1
    assert [e.id for e in await store.outbox_read("a", 2, 1 << 30)] == [1, 2]


async def test_replay_moves_sink_dead_letters_back_to_the_outbox(store: SQLiteStateStore) -> None:
    await store.outbox_ack("a", 0, None, [("rejected", b'{"x":1}')])
    await store.add_dead_letter("src", "source", "unparseable page", b"<html>")
    assert await store.replay_dead_letters() == 1
    (entry,) = await store.outbox_read("a", 10, 1 << 30)
    assert entry.lines == [b'{"x":1}']
    (left,) = await store.dead_letters()
    assert left.stage == "source"


async def test_reset_source_forgets_cursor_and_seen_ids(store: SQLiteStateStore) -> None:
    await store.commit("src", 5, [{"n": 1}], ["x"], {"a": enc}, 60)
    await store.reset_source("src")
    assert await store.get_cursor("src") is None
    assert (await store.commit("src", 1, [{"n": 1}], ["x"], {"a": enc}, 60)).accepted == 1


async def test_state_survives_reopen(tmp_path: Path) -> None:
    s = SQLiteStateStore(tmp_path / "s.db")
    await s.open()
    await s.commit("src", {"w": 1}, [{"n": 1}], ["x"], {"a": enc}, 60)
    await s.close()
    s2 = SQLiteStateStore(tmp_path / "s.db")
    await s2.open()
    assert await s2.get_cursor("src") == {"w": 1}
    assert (await s2.commit("src", 2, [{"n": 1}], ["x"], {"a": enc}, 60)).duplicates == 1
    await s2.close()


async def test_open_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(len(MIGRATIONS) + 1),))
    db.commit()
    db.close()
    with pytest.raises(StateError, match="upgrade logferry"):
        await SQLiteStateStore(path).open()
