"""One bad file never stops the others: parser failures, planted claims, unmovable and undeletable files.

Runs the ``directory`` source (the same code path as ``ssh_drop`` once a file is ready) against
real conditions: a claim directory planted in the watched tree, a symbolic link, a path too long to
move into the work directory, a file made immutable with ``chattr +i`` (which holds even for root).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logferry.service import Service
from tests.conftest import read_ndjson, running, wait_for
from tests.sources.filedrop.conftest import esa_lines, run_client, write_log
from tests.sources.filedrop.test_directory import deliver, source, watch_config


@pytest.fixture(autouse=True)
def drop_dir(tmp_path: Path) -> Path:
    (tmp_path / "drop").mkdir()
    return tmp_path / "drop"


def work(tmp_path: Path) -> Path:
    return tmp_path / "drop" / ".logferry-drop"


def component_reason(svc: Service) -> str:
    (reason,) = [c.reason for c in svc.pipeline.status().components if c.name == "drop"]
    return reason or ""


async def test_a_line_the_parser_cannot_handle_is_dead_lettered_and_the_file_goes_on(tmp_path: Path) -> None:
    # Hostile values that parsers have failed on with OverflowError/ValueError rather than a
    # ParseError. Whatever the parser makes of them, each line is delivered or dead-lettered,
    # and the lines after them are read.
    out = tmp_path / "out.ndjson"
    good = esa_lines(3)
    hostile = [
        "Mon Jan  1 00:00:00 0001 Info: MID 1 ICID 7 From: <year-one@example.com>",
        f"Mon Mar 17 18:00:00 2025 Info: MID {'9' * 5000} ICID 7 From: <huge@example.com>",
    ]
    lines = [good[0], *hostile, good[1], good[2]]
    async with running(watch_config(tmp_path, timezone="Europe/Berlin"), tmp_path) as svc:
        deliver(tmp_path, "mail_logs.@1.s", lines)
        await wait_for(lambda: any(r["line"] == 5 for r in read_ndjson(out)))
        dead = await svc.store.dead_letters()
    delivered = {r["line"] for r in read_ndjson(out)}
    rejected = {int(d.reason.split(" line ")[1].split(":")[0]) for d in dead}
    assert {1, 4, 5} <= delivered
    # The year 0001 cannot be a UTC timestamp in Europe/Berlin: never delivered as if it were.
    assert 2 in rejected
    assert delivered | rejected == {1, 2, 3, 4, 5}
    assert not delivered & rejected
    for d in dead:
        assert d.reason.startswith("mail_logs.@1.s line ")
        assert d.payload.decode() == lines[int(d.reason.split(" line ")[1].split(":")[0]) - 1]
    assert not work(tmp_path).exists() or not any(p.is_file() for p in work(tmp_path).rglob("*"))


async def test_a_planted_claim_with_a_huge_number_does_not_swallow_later_files(tmp_path: Path) -> None:
    # Anyone who can write to the watched tree can create this; before, its number (bigger than
    # any nanosecond clock) made every later claim look "already read" and be archived unread.
    out = tmp_path / "out.ndjson"
    archive = tmp_path / "archive"
    write_log(work(tmp_path) / ("9" * 20) / "mail_logs.@0.s", esa_lines(2, first_mid=900))
    # Not claims at all: a name int() cannot read although str.isdigit() says digits, and a file.
    write_log(work(tmp_path) / "\u00b2" / "mail_logs.@00.s", esa_lines(1, first_mid=800))
    write_log(work(tmp_path) / "12", ["not a directory"])
    async with running(watch_config(tmp_path, archive_dir=str(archive)), tmp_path):
        await wait_for(lambda: len(read_ndjson(out)) >= 2)
        deliver(tmp_path, "mail_logs.@1.s", esa_lines(3, first_mid=1))
        await wait_for(lambda: len(read_ndjson(out)) >= 5)
        await wait_for(lambda: (archive / "mail_logs.@1.s").exists())
    assert sorted(r["mid"] for r in read_ndjson(out)) == [1, 2, 3, 900, 901]


# Short timeouts: the faults these tests guard against hang the event loop (an open() of a FIFO,
# a loop that never awaits), and only pytest-timeout's signal can end the test then.
@pytest.mark.timeout(60)
async def test_a_claim_that_is_a_symbolic_link_is_never_read(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    secret = write_log(tmp_path / "secret" / "private.txt", esa_lines(1, first_mid=666))
    planted = work(tmp_path) / "1" / "mail_logs.@0.s"
    planted.parent.mkdir(parents=True)
    planted.symlink_to(secret)
    fifo = work(tmp_path) / "2" / "mail_logs.@00.s"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    async with running(watch_config(tmp_path), tmp_path) as svc:
        deliver(tmp_path, "mail_logs.@1.s", esa_lines(2, first_mid=1))
        await wait_for(lambda: len(read_ndjson(out)) >= 2)
        dead = await svc.store.dead_letters()
    assert sorted(r["mid"] for r in read_ndjson(out)) == [1, 2]
    reasons = sorted(d.reason for d in dead)
    assert len(reasons) == 2
    assert reasons[0].startswith("mail_logs.@0.s: cannot read it")
    assert reasons[1].startswith("mail_logs.@00.s: cannot read it")
    assert all("moved to" in r and "/failed/" in r for r in reasons)
    # Kept for a human, as they were: the link still a link, the target untouched.
    assert (work(tmp_path) / "failed" / "1" / "mail_logs.@0.s").is_symlink()
    assert secret.read_text() == "".join(line + "\n" for line in esa_lines(1, first_mid=666))


async def test_a_file_that_cannot_be_claimed_is_skipped_once_and_the_others_are_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A real condition that holds for root too: the path fits where it is, but not inside the
    # work directory (longer by ".logferry-drop/<claim>/"), so moving it fails ENAMETOOLONG.
    drop = tmp_path / "drop"
    room = 4090 - len(str(drop)) - len("/mail_logs.@0.s")
    parts = ["d" * 200] * (room // 201) + ["e" * (room % 201 - 1)]
    rel = "/".join(parts) + "/mail_logs.@0.s"
    assert 4080 < len(str(drop / rel)) < 4096
    out = tmp_path / "out.ndjson"
    async with running(watch_config(tmp_path), tmp_path) as svc:
        stuck = deliver(tmp_path, rel, esa_lines(1, first_mid=500))
        # Older than the good file, so it comes first in the claim order.
        os.utime(stuck, (time.time() - 60, time.time() - 60))
        deliver(tmp_path, "mail_logs.@1.s", esa_lines(2, first_mid=1))
        await wait_for(lambda: len(read_ndjson(out)) >= 2)
        scans = source(svc).scans
        await wait_for(lambda: source(svc).scans >= scans + 3)
        assert svc.pipeline.status().healthy, component_reason(svc)
    assert sorted(r["mid"] for r in read_ndjson(out)) == [1, 2]
    assert stuck.exists()
    skipped = [r for r in caplog.records if r.msg == "source_items_skipped"]
    assert len(skipped) == 1, "warned once, however many scans saw it"
    fields = skipped[0].__dict__["fields"]
    assert fields["reason"] == "cannot_claim"
    assert "mail_logs.@0.s: cannot move it out of the inbox (File name too long)" in fields["item"]


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Files made immutable with ``chattr +i`` (not even root may remove them); undone at the end."""
    made: list[Path] = []
    yield made
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], check=False)


async def chattr(flag: str, path: Path) -> None:
    result = await run_client("chattr", flag, str(path))
    assert result.code == 0, result.out


@pytest.mark.timeout(60)
async def test_a_claim_that_cannot_be_deleted_fails_the_poll_without_spinning_and_recovers(
    tmp_path: Path, immutable: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    # A claim left by a crash: read in full, then it cannot be deleted. Before, the source looped
    # on it without ever awaiting (100% CPU, the service frozen).
    caplog.set_level(logging.INFO)
    out = tmp_path / "out.ndjson"
    claimed = write_log(work(tmp_path) / "7" / "mail_logs.@0.s", esa_lines(2, first_mid=70))
    await chattr("+i", claimed)
    immutable.append(claimed)
    async with running(watch_config(tmp_path, after="delete", stale_after_secs=3600), tmp_path) as svc:
        await wait_for(lambda: len(read_ndjson(out)) >= 2)
        rt = svc.pipeline.runtimes["drop"]
        await wait_for(lambda: "cannot delete mail_logs.@0.s (claim 7)" in (rt.last_error or ""))
        assert "Operation not permitted" in (rt.last_error or "")
        deliver(tmp_path, "mail_logs.@1.s", esa_lines(1, first_mid=1))
        await chattr("-i", claimed)
        await wait_for(lambda: len(read_ndjson(out)) >= 3)
        await wait_for(lambda: not claimed.exists())
    # Only the deletion was retried (nothing read twice), and the next file waited for it.
    assert [r["mid"] for r in read_ndjson(out)] == [70, 71, 1]
