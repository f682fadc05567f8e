from __future__ import annotations

import asyncio
import calendar
import os
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from logferry.config.base import BuildContext
from logferry.core.registry import SINK_TYPES
from logferry.core.sink import Action, Sink
from logferry.observe.metrics import Metrics
from logferry.sinks.file import (
    DEFAULT_MAX_FILES,
    DEFAULT_ROTATE_MAX_BYTES,
    NDJSON_LIMITS,
    FileConfig,
    FileSink,
    rotated_files,
)

T0 = float(calendar.timegm((2024, 5, 1, 23, 59, 0, 0, 0, 0)))  # 2024-05-01T23:59:00Z


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def config(path: Path | str, **overrides: Any) -> FileConfig:
    return FileConfig.model_validate({"type": "file", "inputs": ["src"], "path": str(path), **overrides})


@pytest.fixture
async def make_sink() -> AsyncIterator[Callable[..., FileSink]]:
    sinks: list[FileSink] = []

    def make(
        path: Path | str, clock: Clock | None = None, name: str = "archive", **overrides: Any
    ) -> FileSink:
        sink = FileSink(name, config(path, **overrides), clock=clock or Clock())
        sinks.append(sink)
        return sink

    yield make
    for sink in sinks:
        await sink.close()


def read_records(path: Path | str) -> list[Any]:
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines()]


def all_files(path: Path) -> list[str]:
    return [*rotated_files(str(path)), str(path)]


def contents(path: Path) -> list[bytes]:
    """Every file of ``path``, oldest rotated file first, current file last."""
    return [Path(f).read_bytes() for f in all_files(path)]


def line_of(size: int, n: int) -> bytes:
    """A JSON line of exactly ``size`` bytes (without its newline)."""
    line = orjson.dumps({"n": n, "pad": ""})
    return orjson.dumps({"n": n, "pad": "x" * (size - len(line))})


# -- delivery -------------------------------------------------------------------------------------


async def test_send_round_trips_records(tmp_path: Path, make_sink: Callable[..., FileSink]) -> None:
    sink = make_sink(tmp_path / "out.ndjson")
    records = [{"id": i, "msg": "line\nbreak", "nested": {"ok": True, "u": "é"}} for i in range(5)]

    result = await sink.send(sink.encode(records))

    assert result.action is Action.DELIVERED
    assert read_records(tmp_path / "out.ndjson") == records


async def test_send_appends_across_requests_and_restarts(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    path = tmp_path / "out.ndjson"
    first = make_sink(path)
    await first.send(first.encode([{"a": 1}]))
    await first.close()
    second = make_sink(path)

    await second.send(second.encode([{"a": 2}, {"a": 3}]))

    assert read_records(path) == [{"a": 1}, {"a": 2}, {"a": 3}]


async def test_empty_request_is_delivered_without_creating_the_file(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    sink = make_sink(tmp_path / "out.ndjson")

    assert (await sink.send([])).action is Action.DELIVERED
    assert not (tmp_path / "out.ndjson").exists()


async def test_missing_parent_directories_are_created(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    path = tmp_path / "a" / "b" / "out.ndjson"
    sink = make_sink(path)

    assert (await sink.send([b"{}"])).action is Action.DELIVERED
    assert path.read_bytes() == b"{}\n"
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750


async def test_new_file_gets_the_configured_mode_whatever_the_umask(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    sink = make_sink(tmp_path / "out.ndjson", mode="0600")
    old = os.umask(0o077)
    try:
        await sink.send([b"{}"])
    finally:
        os.umask(old)

    assert stat.S_IMODE((tmp_path / "out.ndjson").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("before", "kept"),
    [
        (b'{"a":1}\n{"trunc', [b'{"a":1}']),  # what a crash mid-write leaves behind
        (b'{"a":1}\n{"b":' + b"x" * 200_000, [b'{"a":1}']),  # a fragment longer than one read
        (b'{"trunc', []),  # no complete line at all
    ],
    ids=["short_fragment", "long_fragment", "only_a_fragment"],
)
async def test_half_written_last_line_is_cut_off_before_appending(
    tmp_path: Path, make_sink: Callable[..., FileSink], before: bytes, kept: list[bytes]
) -> None:
    path = tmp_path / "out.ndjson"
    path.write_bytes(before)
    sink = make_sink(path)

    await sink.send([b'{"a":2}'])

    # The fragment's request was never acknowledged: the outbox sends it again in full.
    assert path.read_bytes().splitlines() == [*kept, b'{"a":2}']


@pytest.mark.parametrize(
    ("lines", "action"),
    [([b'{"a":\n1}'], Action.REJECT), ([b"{}", b'{"a":\n1}'], Action.SPLIT)],
    ids=["single_line_rejected", "batch_split_to_isolate_it"],
)
async def test_line_with_raw_newline_is_never_written(
    tmp_path: Path, make_sink: Callable[..., FileSink], lines: list[bytes], action: Action
) -> None:
    sink = make_sink(tmp_path / "out.ndjson")

    result = await sink.send(lines)

    assert result.action is action
    assert "newline" in result.reason
    assert not (tmp_path / "out.ndjson").exists()


# -- rotation -------------------------------------------------------------------------------------


async def test_rotate_by_size_keeps_every_file_under_the_cap(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    path = tmp_path / "out.ndjson"
    sink = make_sink(path, rotate_max_bytes=100, max_files=0)
    lines = [line_of(29, n) for n in range(20)]  # 30 bytes with the newline: 3 per file

    for i in range(0, 20, 7):  # requests that straddle file boundaries
        assert (await sink.send(lines[i : i + 7])).action is Action.DELIVERED

    files = all_files(path)
    assert len(files) == 7
    assert all(len(data) <= 100 for data in contents(path))
    assert [r for f in files for r in read_records(f)] == [orjson.loads(line) for line in lines]


async def test_oversized_line_goes_into_a_file_of_its_own(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    path = tmp_path / "out.ndjson"
    sink = make_sink(path, rotate_max_bytes=100, max_files=0)
    small, big = line_of(20, 1), line_of(250, 2)

    await sink.send([small, big, small])

    assert contents(path) == [small + b"\n", big + b"\n", small + b"\n"]


async def test_rotated_files_are_named_by_utc_time_with_a_counter_for_the_same_second(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    path = tmp_path / "out.ndjson"
    sink = make_sink(path, rotate_max_bytes=10, max_files=0)

    await sink.send([line_of(8, n) for n in range(4)])

    assert [os.path.basename(f) for f in rotated_files(str(path))] == [
        "out.ndjson.20240501T235900Z",
        "out.ndjson.20240501T235900Z-1",
        "out.ndjson.20240501T235900Z-2",
    ]


async def test_rotate_by_interval_uses_the_injected_clock(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    path = tmp_path / "out.ndjson"
    clock = Clock()
    sink = make_sink(path, clock=clock, rotate_interval_secs=60)

    await sink.send([b'{"n":1}'])
    clock.now += 59
    await sink.send([b'{"n":2}'])
    assert rotated_files(str(path)) == []
    clock.now += 1
    await sink.send([b'{"n":3}'])

    assert [read_records(f) for f in all_files(path)] == [[{"n": 1}, {"n": 2}], [{"n": 3}]]


async def test_interval_rotation_after_restart_counts_age_from_last_modification(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    path = tmp_path / "out.ndjson"
    path.write_bytes(b'{"n":0}\n')
    os.utime(path, (T0 - 3600, T0 - 3600))
    sink = make_sink(path, rotate_interval_secs=600)

    await sink.send([b'{"n":1}'])

    assert [read_records(f) for f in all_files(path)] == [[{"n": 0}], [{"n": 1}]]


@pytest.mark.parametrize(("max_files", "kept"), [(2, 2), (0, 5)], ids=["keeps_newest_two", "zero_keeps_all"])
async def test_max_files_prunes_oldest_rotated_files(
    tmp_path: Path, make_sink: Callable[..., FileSink], max_files: int, kept: int
) -> None:
    path = tmp_path / "out.ndjson"
    clock = Clock()
    sink = make_sink(path, clock=clock, rotate_max_bytes=10, max_files=max_files)

    for n in range(6):  # each line fills a file; every send after the first rotates
        await sink.send([line_of(8, n)])
        clock.now += 1

    rotated = rotated_files(str(path))
    assert len(rotated) == kept
    assert [read_records(f)[0]["n"] for f in rotated] == list(range(5 - kept, 5))
    assert read_records(path)[0]["n"] == 5


async def test_pruning_leaves_unrelated_files_alone(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    path = tmp_path / "out.ndjson"
    (tmp_path / "out.ndjson.bak").write_bytes(b"keep")
    (tmp_path / "other.ndjson.20000101T000000Z").write_bytes(b"keep")
    sink = make_sink(path, rotate_max_bytes=10, max_files=1)

    await sink.send([line_of(8, n) for n in range(4)])

    assert (tmp_path / "out.ndjson.bak").exists()
    assert (tmp_path / "other.ndjson.20000101T000000Z").exists()
    assert len(rotated_files(str(path))) == 1


# -- path templates -------------------------------------------------------------------------------


async def test_path_expands_strftime_in_utc_and_sink_name(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    sink = make_sink(tmp_path / "{sink}" / "{sink}-%Y%m%d.ndjson", name="edge%d")

    await sink.send([b"{}"])

    assert (tmp_path / "edge%d" / "edge%d-20240501.ndjson").read_bytes() == b"{}\n"


async def test_dated_path_switches_file_when_the_date_changes(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    clock = Clock()
    sink = make_sink(tmp_path / "%Y-%m-%d.ndjson", clock=clock)

    await sink.send([b'{"n":1}'])
    clock.now += 120  # past midnight UTC
    await sink.send([b'{"n":2}'])

    assert read_records(tmp_path / "2024-05-01.ndjson") == [{"n": 1}]
    assert read_records(tmp_path / "2024-05-02.ndjson") == [{"n": 2}]


# -- fsync ----------------------------------------------------------------------------------------


async def test_fsync_always_syncs_every_request_before_reporting_delivered(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    sink = make_sink(tmp_path / "out.ndjson")

    for n in range(3):
        assert (await sink.send([b"{}"])).action is Action.DELIVERED
        assert sink.fsync_count == n + 1


async def test_fsync_always_syncs_a_file_before_rotating_it(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    sink = make_sink(tmp_path / "out.ndjson", rotate_max_bytes=10)

    await sink.send([line_of(8, n) for n in range(3)])  # three files

    assert sink.fsync_count == 3


async def test_fsync_never_leaves_syncing_to_the_kernel(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    sink = make_sink(tmp_path / "out.ndjson", fsync="never", rotate_max_bytes=10)

    await sink.send([line_of(8, n) for n in range(3)])
    await sink.close()

    assert sink.fsync_count == 0


async def test_fsync_interval_syncs_at_most_once_per_interval(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    clock = Clock()
    sink = make_sink(tmp_path / "out.ndjson", clock=clock, fsync="interval", fsync_interval_secs=60)

    counts = []
    for step in (0, 30, 29, 1, 10):
        clock.now += step
        await sink.send([b"{}"])
        counts.append(sink.fsync_count)

    assert counts == [0, 0, 0, 1, 1]
    await sink.close()
    assert sink.fsync_count == 2  # pending data is synced on close


async def test_fsync_interval_syncs_pending_data_in_the_background(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    sink = FileSink("bg", config(tmp_path / "out.ndjson", fsync="interval", fsync_interval_secs=0.05))

    await sink.send([b"{}"])
    assert sink.fsync_count == 0
    for _ in range(100):
        if sink.fsync_count:
            break
        await asyncio.sleep(0.02)

    assert sink.fsync_count == 1
    await sink.close()


# -- failures -------------------------------------------------------------------------------------


async def test_path_under_a_regular_file_returns_retry_naming_the_path(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    path = blocker / "out.ndjson"
    sink = make_sink(path)

    result = await sink.send([b"{}"])

    assert result.action is Action.RETRY
    assert str(path) in result.reason
    assert "regular file, not a directory" in result.reason


async def test_send_recovers_once_the_path_is_usable(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_bytes(b"")
    sink = make_sink(blocker / "out.ndjson")
    assert (await sink.send([b'{"n":1}'])).action is Action.RETRY

    blocker.unlink()

    assert (await sink.send([b'{"n":1}'])).action is Action.DELIVERED
    assert read_records(blocker / "out.ndjson") == [{"n": 1}]


async def test_path_that_is_a_directory_returns_retry(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    (tmp_path / "out.ndjson").mkdir()
    sink = make_sink(tmp_path / "out.ndjson")

    result = await sink.send([b"{}"])

    assert result.action is Action.RETRY
    assert "set it to a file name" in result.reason


async def test_full_disk_returns_retry_instead_of_raising(make_sink: Callable[..., FileSink]) -> None:
    sink = make_sink("/dev/full", fsync="never")

    result = await sink.send([b"{}"])

    assert result.action is Action.RETRY
    assert "disk is full" in result.reason


# -- healthcheck ----------------------------------------------------------------------------------


async def test_healthcheck_passes_for_a_writable_directory(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    sink = make_sink(tmp_path / "new" / "out.ndjson")

    result = await sink.healthcheck()

    assert result.ok, result.message
    assert os.listdir(tmp_path / "new") == []  # the probe file is gone


async def test_healthcheck_names_the_path_and_the_fix_when_unusable(
    tmp_path: Path, make_sink: Callable[..., FileSink]
) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    sink = make_sink(tmp_path / "blocker" / "out.ndjson")

    result = await sink.healthcheck()

    assert not result.ok
    assert str(tmp_path / "blocker") in result.message
    assert "regular file" in result.message


# -- config ---------------------------------------------------------------------------------------


def test_defaults() -> None:
    cfg = config("/var/log/out.ndjson")

    assert (cfg.rotate_max_bytes, cfg.rotate_interval_secs, cfg.max_files) == (
        DEFAULT_ROTATE_MAX_BYTES,
        None,
        DEFAULT_MAX_FILES,
    )
    assert (cfg.fsync, cfg.mode, cfg.encoding) == ("always", 0o640, "json")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"colour": "blue"}, "colour"),
        ({"rotate_max_bytes": -1}, "rotate_max_bytes"),
        ({"max_files": -1}, "max_files"),
        ({"rotate_interval_secs": 0}, "rotate_interval_secs"),
        ({"fsync": "sometimes"}, "fsync"),
        ({"encoding": "cef"}, "encoding"),
        ({"mode": "0999"}, "mode"),
        ({"mode": 0o1777}, "mode"),
        ({"path": "/var/log/{name}.ndjson"}, "path"),
        ({"path": "/var/log/"}, "path"),
        ({"path": ""}, "path"),
    ],
    ids=[
        "unknown_key",
        "negative_rotate_max_bytes",
        "negative_max_files",
        "zero_interval",
        "unknown_fsync_policy",
        "unknown_encoding",
        "non_octal_mode",
        "mode_beyond_permission_bits",
        "unknown_placeholder",
        "directory_path",
        "empty_path",
    ],
)
def test_validation_rejects(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(**{"path": "/var/log/out.ndjson", **overrides})

    assert field in str(info.value)


@pytest.mark.parametrize(
    "mode", ["0640", "0o640", "640", 0o640], ids=["string", "python_octal", "bare", "int"]
)
def test_mode_accepts_octal_strings(mode: object) -> None:
    assert config("/x.ndjson", mode=mode).mode == 0o640


def test_registered_as_file_and_builds_a_sink(tmp_path: Path) -> None:
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())

    sink = (
        SINK_TYPES["file"]
        .model_validate({"type": "file", "inputs": ["src"], "path": str(tmp_path / "x.ndjson")})
        .build("archive", ctx)
    )

    assert isinstance(sink, FileSink)
    assert isinstance(sink, Sink)
    assert sink.limits == NDJSON_LIMITS
    assert (NDJSON_LIMITS.max_bytes, NDJSON_LIMITS.max_events) == (4 * 1024 * 1024, 100_000)
