"""The ``directory`` source, and what both drop sources share: reading, resuming, dead letters, health."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.observe.metrics import Metrics
from logferry.service import Service
from logferry.sources.filedrop.source import FileDropSource
from tests.conftest import read_ndjson, running, wait_for
from tests.sources.filedrop.conftest import Key, esa_lines, write_log


def watch_config(tmp_path: Path, **source: Any) -> dict[str, Any]:
    return {
        "sources": {
            "drop": {
                "type": "directory",
                "path": str(tmp_path / "drop"),
                "settle_secs": 0,
                "scan_interval_secs": 0.2,
                **source,
            }
        },
        "sinks": {
            "out": {
                "type": "file",
                "inputs": ["drop"],
                "path": str(tmp_path / "out.ndjson"),
                "rotate_max_bytes": 0,
            }
        },
    }


def sink(source: str) -> dict[str, Any]:
    return {"out": {"type": "file", "inputs": [source], "path": "/tmp/unused.ndjson"}}


def deliver(tmp_path: Path, name: str, lines: list[str]) -> Path:
    """Write elsewhere, then rename into the watched directory: how a finished file should arrive."""
    staged = write_log(tmp_path / "staging" / name, lines)
    dest = tmp_path / "drop" / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(staged, dest)
    return dest


def source(svc: Service) -> FileDropSource:
    src = svc.sources["drop"]
    assert isinstance(src, FileDropSource)
    return src


@pytest.fixture(autouse=True)
def drop_dir(tmp_path: Path) -> Path:
    (tmp_path / "drop").mkdir()
    return tmp_path / "drop"


@pytest.mark.parametrize("after", ["archive", "delete"])
async def test_files_moved_in_are_read_once_then_archived_or_deleted(tmp_path: Path, after: str) -> None:
    out = tmp_path / "out.ndjson"
    archive = tmp_path / "archive"
    cfg = watch_config(tmp_path, after=after, archive_dir=str(archive))
    async with running(cfg, tmp_path) as svc:
        deliver(tmp_path, "mail_logs.@20250317T180000.s", esa_lines(5))
        deliver(tmp_path, "sub/mail_logs.@20250317T190000.s", esa_lines(5, first_mid=100))
        await wait_for(lambda: len(read_ndjson(out)) >= 10)
        scans = source(svc).scans
        await wait_for(lambda: source(svc).scans >= scans + 3)
        # Nothing is left to read, and nothing is read twice.
        assert not any(p.is_file() for p in (tmp_path / "drop").rglob("*"))
    records = read_ndjson(out)
    assert len(records) == 10
    assert {r["source_file"] for r in records} == {
        "mail_logs.@20250317T180000.s",
        "sub/mail_logs.@20250317T190000.s",
    }
    kept = sorted(p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file())
    if after == "archive":
        assert kept == ["mail_logs.@20250317T180000.s", "sub/mail_logs.@20250317T190000.s"]
    else:
        assert kept == []


@pytest.mark.parametrize(("fmt", "expected"), [("esa", 3), ("lines", 6)])
async def test_a_file_delivered_again_under_its_name(tmp_path: Path, fmt: str, expected: int) -> None:
    # esa: the appliance re-pushes a file whose transfer failed, so a name seen before is dropped
    # line by line; lines: senders may reuse names for new content, so nothing is dropped.
    out = tmp_path / "out.ndjson"
    archive = tmp_path / "archive"
    async with running(watch_config(tmp_path, format=fmt, archive_dir=str(archive)), tmp_path):
        for _ in range(2):
            deliver(tmp_path, "mail_logs.@1.s", esa_lines(3))
            count = len(list(archive.glob("*")))
            await wait_for(lambda c=count: len(list(archive.glob("*"))) == c + 1)  # type: ignore[misc]
        await wait_for(lambda: len(read_ndjson(out)) >= expected)
    assert len(read_ndjson(out)) == expected


async def test_archive_keeps_only_the_newest_files(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    cfg = watch_config(tmp_path, archive_dir=str(archive), archive_max_files=2)
    async with running(cfg, tmp_path):
        for i in range(4):
            path = deliver(tmp_path, f"mail_logs.@{i}.s", esa_lines(1, first_mid=i))
            os.utime(path, (time.time() - 100 + i, time.time() - 100 + i))
            await wait_for(lambda i=i: (archive / f"mail_logs.@{i}.s").exists())  # type: ignore[misc]
    assert sorted(p.name for p in archive.iterdir()) == ["mail_logs.@2.s", "mail_logs.@3.s"]


async def test_lines_format_gives_one_raw_record_per_line(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    async with running(watch_config(tmp_path, format="lines"), tmp_path):
        deliver(tmp_path, "export.txt", ["first line", "", "second \u00e9 line\r"])
        await wait_for(lambda: len(read_ndjson(out)) >= 2)
    assert read_ndjson(out) == [
        {"message": "first line", "source_file": "export.txt", "line": 1},
        {"message": "second \u00e9 line", "source_file": "export.txt", "line": 3},
    ]


async def test_malformed_lines_go_to_dead_letters_with_file_and_line(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    good = esa_lines(2)
    async with running(watch_config(tmp_path), tmp_path) as svc:
        deliver(tmp_path, "mail_logs.@1.s", [good[0], "garbage without a timestamp", good[1]])
        await wait_for(lambda: len(read_ndjson(out)) >= 2)
        dead = await svc.store.dead_letters()
    assert [r["line"] for r in read_ndjson(out)] == [1, 3]
    assert len(dead) == 1
    assert dead[0].payload == b"garbage without a timestamp"
    assert dead[0].reason.startswith("mail_logs.@1.s line 2: no 'Ddd Mmm dd HH:MM:SS YYYY' timestamp")


async def test_only_complete_esa_names_are_read_and_others_stay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.ndjson"
    async with running(watch_config(tmp_path), tmp_path) as svc:
        deliver(tmp_path, "mail_logs.@1.current", esa_lines(1))
        deliver(tmp_path, "mail_logs.@1.c", esa_lines(1))
        deliver(tmp_path, "notes.txt", ["hello"])
        deliver(tmp_path, ".hidden.@1.s", esa_lines(1))
        deliver(tmp_path, "mail_logs.@2.s", esa_lines(1, first_mid=7))
        await wait_for(lambda: len(read_ndjson(out)) >= 1)
        scans = source(svc).scans
        await wait_for(lambda: source(svc).scans >= scans + 3)
    assert [r["mid"] for r in read_ndjson(out)] == [7]
    assert sorted(p.name for p in (tmp_path / "drop").iterdir() if p.is_file()) == [
        ".hidden.@1.s",
        "mail_logs.@1.c",
        "mail_logs.@1.current",
        "notes.txt",
    ]
    skipped = [r for r in caplog.records if r.msg == "file_skipped"]
    # Said once, however many scans saw it.
    assert len(skipped) == 1
    assert "notes.txt" in str(skipped[0].__dict__["fields"]["reason"])


async def test_a_file_still_changing_waits_for_settle_secs(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    path = tmp_path / "drop" / "mail_logs.@1.s"
    write_log(path, esa_lines(3))
    async with running(watch_config(tmp_path, settle_secs=3600), tmp_path) as svc:
        await wait_for(lambda: source(svc).scans >= 3)
        assert read_ndjson(out) == []
        old = time.time() - 3601
        os.utime(path, (old, old))
        await wait_for(lambda: len(read_ndjson(out)) >= 3)


async def test_stopped_mid_file_the_restart_resumes_without_loss_or_repeat(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    total = 60000
    cfg = watch_config(tmp_path, dedupe_by_file_name=False)
    async with running(dict(cfg), tmp_path) as svc:
        size = deliver(tmp_path, "mail_logs.@1.s", esa_lines(total)).stat().st_size
        rt = svc.pipeline.runtimes["drop"]
        await wait_for(lambda: rt.received >= 1)
    cursor = rt.cursor
    assert isinstance(cursor, dict)
    # Stopped inside the file: only whole chunks are committed, the rest is left for the restart.
    assert cursor["done"] is False
    assert 0 < cursor["line"] < total
    assert cursor["line"] % 1000 == 0
    end = {"offset": size, "line": total, "done": True}
    async with running(dict(cfg), tmp_path) as svc:
        await wait_for(lambda: len(read_ndjson(out)) >= total, timeout=60)
        await wait_for(lambda: svc.pipeline.runtimes["drop"].cursor == cursor | end)
    mids = [r["mid"] for r in read_ndjson(out)]
    assert len(mids) == total
    assert set(mids) == set(range(1, total + 1))


async def test_health_turns_red_without_files_and_green_when_one_arrives(tmp_path: Path) -> None:
    async with running(watch_config(tmp_path, stale_after_secs=0.5), tmp_path) as svc:

        def healthy() -> bool:
            return bool(svc.pipeline.status().healthy)

        await wait_for(lambda: not healthy())
        (reason,) = [c.reason for c in svc.pipeline.status().components if c.name == "drop"]
        assert reason is not None and "no successful poll since start" in reason
        deliver(tmp_path, "mail_logs.@1.s", esa_lines(1))
        await wait_for(healthy)


def drop_reason(svc: Service) -> str | None:
    (reason,) = [c.reason for c in svc.pipeline.status().components if c.name == "drop"]
    return reason


async def test_a_missing_directory_turns_health_red_with_the_reason(tmp_path: Path) -> None:
    cfg = watch_config(tmp_path, path=str(tmp_path / "not-mounted"), stale_after_secs=0.5)
    async with running(cfg, tmp_path) as svc:
        # The reason, not just red: the 0.5 s staleness alone can turn health red first.
        await wait_for(lambda: "is not a directory" in (drop_reason(svc) or ""))
        assert not svc.pipeline.status().healthy
        reason = drop_reason(svc)
    assert reason is not None and "not-mounted is not a directory" in reason
    assert not (tmp_path / "not-mounted").exists()


async def test_check_says_what_is_wrong(tmp_path: Path, key: Key) -> None:
    ctx = BuildContext(data_dir=tmp_path / "data", metrics=Metrics())
    missing = parse_config(watch_config(tmp_path, path=str(tmp_path / "nope")), tmp_path)
    result = await missing.sources["drop"].build("drop", ctx).check()
    assert not result.ok
    assert "nope is not a directory" in result.message

    drop: dict[str, Any] = {"type": "ssh_drop", "users": {"esa1": str(key.authorized_keys)}}
    cfg = parse_config({"sources": {"esa": drop}, "sinks": sink("esa")}, tmp_path)
    result = await cfg.sources["esa"].build("esa", ctx).check()
    assert result.ok, result.message
    assert "host key SHA256:" in result.message

    gone = drop | {"users": {"esa1": str(tmp_path / "gone")}}
    cfg = parse_config({"sources": {"esa": gone}, "sinks": sink("esa")})
    result = await cfg.sources["esa"].build("esa", ctx).check()
    assert not result.ok
    assert "users.esa1: cannot read authorized keys" in result.message


def test_an_archive_inside_the_watched_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="archive_dir is inside path"):
        parse_config(watch_config(tmp_path, archive_dir=str(tmp_path / "drop" / "done")))
    parse_config(watch_config(tmp_path, archive_dir=str(tmp_path / "drop" / ".done")))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("users", {"../etc": "/k"}, "sources.esa.users"),
        ("listen", "2222", "sources.esa.listen: must be HOST:PORT"),
        ("timezone", "Mars/Olympus", "sources.esa.timezone"),
        ("after", "keep", "sources.esa.after"),
    ],
)
def test_config_errors_name_the_field_and_the_fix(field: str, value: Any, expected: str) -> None:
    drop: dict[str, Any] = {"type": "ssh_drop", "users": {"esa1": "/etc/logferry/esa1"}, field: value}
    with pytest.raises(ConfigError) as exc:
        parse_config({"sources": {"esa": drop}, "sinks": sink("esa")})
    assert any(p.startswith(expected) for p in exc.value.problems), exc.value.problems
