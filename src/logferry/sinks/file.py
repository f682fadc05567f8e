"""NDJSON file sink: one record per line, with rotation, pruning and an fsync policy.

The outbox deletes a request's lines as soon as ``send`` reports them delivered, so with the
default ``fsync: always`` a request counts as delivered only once its bytes (and, after a file
was created or rotated, the directory entry) are on stable storage. All disk work runs in a
worker thread, so a slow disk never stalls the event loop.

Rotation renames the current file to ``<path>.<UTC time of rotation>`` (for example
``archive.ndjson.20240501T120000Z``, with ``-1``, ``-2`` ... appended when several rotations fall
in the same second) and starts a new, empty ``<path>``. The names sort oldest first, nothing is
renamed twice, and a crash between two steps leaves every rotated file intact. ``max_files``
keeps the newest rotated files of the current path; files from earlier expansions of a dated
path (``%Y%m%d``) are left to your retention tool.

Usage::

    sinks:
      archive:
        type: file
        inputs: [o365]
        path: /var/log/logferry/{sink}-%Y%m%d.ndjson
        rotate_max_bytes: 104857600
        max_files: 10
        fsync: always
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Literal

import orjson
from pydantic import Field, WithJsonSchema, field_validator

from logferry.config.base import BuildContext, SinkConfig
from logferry.core.registry import register_sink
from logferry.core.sink import BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.observe.logging import log_event

__all__ = [
    "DEFAULT_FSYNC_INTERVAL_SECS",
    "DEFAULT_MAX_FILES",
    "DEFAULT_MODE",
    "DEFAULT_ROTATE_MAX_BYTES",
    "NDJSON_LIMITS",
    "FileConfig",
    "FileSink",
    "encode_json",
    "expand_path",
    "framing_problem",
    "rotated_files",
]

DEFAULT_ROTATE_MAX_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_FILES = 10
DEFAULT_FSYNC_INTERVAL_SECS = 1.0
DEFAULT_MODE = 0o640

# Lines are newline-terminated, so ``frame(lines)`` is exactly the bytes appended to the file.
NDJSON_LIMITS = BatchLimits(
    max_bytes=4 * 1024 * 1024, max_events=100_000, prefix=b"", separator=b"\n", suffix=b"\n"
)

_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_ROTATED_SUFFIX = re.compile(r"\.(\d{8}T\d{6}Z)(?:-(\d+))?")

# The validator also takes octal strings, which YAML 1.2 and JSON need; say so in the schema.
_MODE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": 0o777},
        {"type": "string", "pattern": "^(0o|0)?[0-7]{1,3}$"},
    ]
}

# errno → what the operator should do about it; appended to retry reasons and check messages.
_HINTS = {
    errno.EACCES: "give the logferry user write access to the directory",
    errno.EPERM: "give the logferry user write access to the directory",
    errno.EROFS: "the file system is mounted read-only",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EEXIST: "a parent of the path is a regular file, not a directory",
    errno.ENOTDIR: "a parent of the path is a regular file, not a directory",
    errno.EISDIR: "path names a directory; set it to a file name",
}


def encode_json(records: Sequence[Record]) -> list[bytes]:
    """One compact JSON document per record; orjson never emits a raw newline."""
    return [orjson.dumps(r) for r in records]


def framing_problem(lines: Sequence[bytes]) -> Resolution | None:
    """``split``/``reject`` for a line that would break NDJSON framing, else ``None``.

    Lines from :func:`encode_json` never contain a newline; this guards the outbox against lines
    written by another encoder, which would otherwise corrupt every reader of the file.
    """
    if not any(b"\n" in line for line in lines):
        return None
    if len(lines) == 1:
        return Resolution.reject("line contains a raw newline and cannot be written as NDJSON")
    return Resolution.split("a line contains a raw newline")


def expand_path(template: str, sink: str, now: float) -> str:
    """Fill strftime fields (UTC) first and ``{sink}`` second, so a ``%`` in a sink name stays literal."""
    return time.strftime(template, time.gmtime(now)).replace("{sink}", sink)


def rotated_files(path: str) -> list[str]:
    """The rotated files of ``path``, oldest first."""
    directory, base = os.path.split(path)
    pattern = re.compile(re.escape(base) + _ROTATED_SUFFIX.pattern)
    found: list[tuple[str, int, str]] = []
    for entry in os.listdir(directory or "."):
        m = pattern.fullmatch(entry)
        if m:
            found.append((m.group(1), int(m.group(2) or 0), os.path.join(directory, entry)))
    return [p for _, _, p in sorted(found)]


@register_sink("file")
class FileConfig(SinkConfig):
    """Append records as NDJSON to a local file, for archives, forwarders that tail files, or tests."""

    type: Literal["file"]
    path: str = Field(
        min_length=1,
        description="File to append to. strftime fields are expanded in UTC when writing, and "
        "{sink} becomes the sink's name; missing directories are created. A relative path is "
        "relative to the working directory.",
        examples=["/var/log/logferry/{sink}-%Y%m%d.ndjson", "./out/events.ndjson"],
    )
    rotate_max_bytes: int = Field(
        DEFAULT_ROTATE_MAX_BYTES,
        ge=0,
        description="Rotate before a write would make the current file larger than this. A single "
        "line larger than the cap is written to a file of its own. 0 disables size rotation.",
        examples=[DEFAULT_ROTATE_MAX_BYTES, 1_073_741_824],
    )
    rotate_interval_secs: float | None = Field(
        None,
        gt=0,
        description="Rotate a non-empty file once it is this old, checked on each write. After a "
        "restart an existing file's age counts from its last modification, so a restart can "
        "delay a rotation by up to one interval but never brings it forward. Unset: no time rotation.",
        examples=[3600, 86400],
    )
    max_files: int = Field(
        DEFAULT_MAX_FILES,
        ge=0,
        description="Keep at most this many rotated files of the current path, deleting the oldest "
        "after each rotation. 0 keeps them all.",
        examples=[DEFAULT_MAX_FILES, 0],
    )
    fsync: Literal["always", "interval", "never"] = Field(
        "always",
        description="When written data is forced to disk. 'always': before a request counts as "
        "delivered; nothing is lost on power loss, at the cost of one fsync per request. "
        "'interval': at most every fsync_interval_secs (after a write, and in the background while "
        "data is pending); a power loss or kernel crash can lose the last interval of delivered "
        "data, a logferry crash cannot. 'never': leave it to the kernel's writeback (~30 s on Linux).",
        examples=["always", "interval"],
    )
    fsync_interval_secs: float = Field(
        DEFAULT_FSYNC_INTERVAL_SECS,
        gt=0,
        description="Longest time delivered data may stay unsynced with fsync: interval.",
        examples=[DEFAULT_FSYNC_INTERVAL_SECS, 5],
    )
    mode: Annotated[int, WithJsonSchema(_MODE_SCHEMA)] = Field(
        DEFAULT_MODE,
        ge=0,
        le=0o777,
        description="Permissions of files the sink creates (not applied to existing files), as an "
        "octal string or YAML 1.1 octal. Directories it creates also get x where r is set.",
        examples=["0640", "0600"],
    )
    encoding: Literal["json"] = Field(
        "json",
        description="How a record becomes a line. 'json': the record as the source produced it, "
        "as compact JSON.",
        examples=["json"],
    )

    @field_validator("path")
    @classmethod
    def _check_path(cls, v: str) -> str:
        if "\0" in v:
            raise ValueError("path must not contain a NUL byte")
        if v.endswith(("/", os.sep)):
            raise ValueError("path must name a file, not a directory: remove the trailing '/'")
        if "{" in v.replace("{sink}", "") or "}" in v.replace("{sink}", ""):
            raise ValueError("the only {...} placeholder is {sink}; use strftime fields like %Y for dates")
        try:
            time.strftime(v, time.gmtime(0))
        except ValueError as exc:
            raise ValueError(f"invalid strftime field in path: {exc}") from exc
        return v

    @field_validator("mode", mode="before")
    @classmethod
    def _parse_octal(cls, v: object) -> object:
        # YAML 1.2 and JSON have no octal literal; "0640" as a decimal int would be a wrong mode.
        if isinstance(v, str):
            try:
                return int(v, 8)
            except ValueError as exc:
                raise ValueError(f"mode must be octal like '0640', got {v!r}") from exc
        return v

    def build(self, name: str, ctx: BuildContext) -> FileSink:
        return FileSink(name, self, logger=ctx.logger.getChild("sinks.file"))


class FileSink:
    """Appends NDJSON lines to ``config.path``; see the module docstring for rotation and fsync.

    ``clock`` (wall-clock seconds) drives path expansion, rotation and fsync timing, so tests pin
    it. ``fsync_count`` counts data-file fsyncs.
    """

    def __init__(
        self,
        name: str,
        config: FileConfig,
        *,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.limits = NDJSON_LIMITS
        self.config = config
        self.fsync_count = 0
        self._clock = clock
        self._log = logger or logging.getLogger("logferry.sinks.file")
        self._dir_mode = config.mode | ((config.mode & 0o444) >> 2)
        # Writes, rotation and fsync run in worker threads; a cancelled send's thread may still be
        # running when the next send starts, so the state below is guarded by a thread lock.
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path = ""
        self._size = 0
        self._opened_at = 0.0
        self._last_fsync = 0.0
        self._dirty = False
        self._flusher: asyncio.Task[None] | None = None

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return encode_json(records)

    async def start(self) -> None:
        """Nothing to do: the file is opened by the first write, so a bad path only delays delivery."""

    async def send(self, lines: list[bytes]) -> Resolution:
        if not lines:
            return Resolution.delivered()
        problem = framing_problem(lines)
        if problem is not None:
            return problem
        result = await asyncio.to_thread(self._write, lines)
        if self.config.fsync == "interval" and self._dirty and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_later())
        return result

    async def healthcheck(self) -> CheckResult:
        return await asyncio.to_thread(self._check)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await asyncio.to_thread(self._close_quietly)

    # -- worker-thread side -------------------------------------------------------------------

    def _write(self, lines: list[bytes]) -> Resolution:
        with self._lock:
            now = self._clock()
            path = expand_path(self.config.path, self.name, now)
            start = self._size
            try:
                if self._fd is not None and path != self._path:
                    self._close_file()
                fd = self._fd if self._fd is not None else self._open(path, now)
                interval = self.config.rotate_interval_secs
                if interval is not None and self._size > 0 and now - self._opened_at >= interval:
                    fd = self._rotate(now)
                i = 0
                while i < len(lines):
                    j, used = self._fit(lines, i)
                    if j == i:
                        fd = self._rotate(now)
                        continue
                    start = self._size
                    _write_all(fd, self.limits.frame(lines[i:j]))
                    self._size += used
                    self._dirty = True
                    i = j
                if self.config.fsync == "always" or (
                    self.config.fsync == "interval" and self._interval_due(now)
                ):
                    self._sync()
            except OSError as exc:
                self._discard_partial(start)
                return Resolution.retry(_reason(exc, path))
            return Resolution.delivered()

    def _fit(self, lines: list[bytes], i: int) -> tuple[int, int]:
        """How many lines from ``i`` fit the current file (at least one if it is empty), and their bytes."""
        cap = self.config.rotate_max_bytes
        room = cap - self._size if cap else None
        used = 0
        j = i
        while j < len(lines):
            need = len(lines[j]) + 1
            if room is not None and used + need > room and (j > i or self._size > 0):
                break
            used += need
            j += 1
        return j, used

    def _open(self, path: str, now: float) -> int:
        sync = self.config.fsync != "never"
        directory = os.path.dirname(path) or "."
        self._make_dirs(directory, sync)
        flags = os.O_RDWR | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, self.config.mode)
            created = True
        except FileExistsError:
            fd = os.open(path, flags)
            created = False
        try:
            if created:
                os.fchmod(fd, self.config.mode)  # exact mode, whatever the umask
                if sync:
                    _fsync_dir(directory)
            st = os.fstat(fd)
            size = st.st_size
            if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
                # A crash mid-write left half a line. Its request was never acknowledged, so the outbox
                # delivers it again in full: cut the fragment off rather than leave a line no NDJSON
                # reader can parse.
                end = _after_last_newline(fd, size)
                os.ftruncate(fd, end)
                if sync:
                    os.fsync(fd)
                log_event(
                    self._log, logging.WARNING, "file_sink_partial_line_removed", sink=self.name, path=path,
                    bytes=size - end,
                )  # fmt: skip
                size = end
        except OSError:
            os.close(fd)
            raise
        self._fd, self._path, self._size = fd, path, size
        self._opened_at = now if size == 0 else min(now, st.st_mtime)
        self._last_fsync = now
        self._dirty = False
        return fd

    def _make_dirs(self, directory: str, sync: bool) -> None:
        missing: list[str] = []
        d = directory
        while not os.path.isdir(d):
            missing.append(d)
            parent = os.path.dirname(d)
            if parent in ("", d):
                break
            d = parent
        for d in reversed(missing):
            try:
                os.mkdir(d, self._dir_mode)
            except FileExistsError:
                if not os.path.isdir(d):
                    raise
                continue
            os.chmod(d, self._dir_mode)
            if sync:
                _fsync_dir(os.path.dirname(d) or ".")

    def _rotate(self, now: float) -> int:
        path = self._path
        self._close_file()
        stamp = time.strftime(_STAMP_FORMAT, time.gmtime(now))
        target = f"{path}.{stamp}"
        n = 0
        while os.path.lexists(target):
            n += 1
            target = f"{path}.{stamp}-{n}"
        os.rename(path, target)
        if self.config.fsync != "never":
            _fsync_dir(os.path.dirname(path) or ".")
        self._prune(path)
        return self._open(path, now)

    def _prune(self, path: str) -> None:
        keep = self.config.max_files
        if keep == 0:
            return
        try:
            old = rotated_files(path)[:-keep]
        except OSError as exc:
            log_event(self._log, logging.WARNING, "file_sink_prune_failed", sink=self.name, error=str(exc))
            return
        for p in old:
            try:
                os.unlink(p)
            except OSError as exc:
                # Delivery already succeeded; a file we could not delete must not hold it back.
                log_event(
                    self._log, logging.WARNING, "file_sink_prune_failed", sink=self.name, error=str(exc)
                )

    def _interval_due(self, now: float) -> bool:
        elapsed = now - self._last_fsync
        return elapsed >= self.config.fsync_interval_secs or elapsed < 0  # < 0: the clock stepped back

    def _sync(self) -> None:
        if self._dirty and self._fd is not None:
            os.fsync(self._fd)
            self.fsync_count += 1
        self._dirty = False
        self._last_fsync = self._clock()

    def _close_file(self) -> None:
        """Sync (unless fsync: never) and close; on error the fd is closed anyway and the error raised."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._dirty and self.config.fsync != "never":
                os.fsync(fd)
                self.fsync_count += 1
            self._dirty = False
        finally:
            os.close(fd)

    def _discard_partial(self, start: int) -> None:
        """Cut the failed request off the current file so its retry does not duplicate or garble lines."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, start)
            self._size = start
        except OSError:
            # Unknown tail: drop the fd; reopening cuts off any half line before the next write.
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)

    def _check(self) -> CheckResult:
        path = expand_path(self.config.path, self.name, self._clock())
        directory = os.path.dirname(path) or "."
        try:
            self._make_dirs(directory, sync=False)
            if os.path.isdir(path):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            fd, probe = tempfile.mkstemp(prefix=".logferry-check-", dir=directory)
            os.close(fd)
            os.unlink(probe)
            if os.path.exists(path):
                os.close(os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC))
        except OSError as exc:
            return CheckResult(False, _reason(exc, path))
        return CheckResult(True, f"{directory} is writable")

    def _close_quietly(self) -> None:
        with self._lock:
            try:
                self._close_file()
            except OSError as exc:
                log_event(self._log, logging.ERROR, "file_sink_close_failed", sink=self.name, error=str(exc))

    async def _flush_later(self) -> None:
        """Background fsync for ``fsync: interval``, so idle periods do not leave data unsynced."""
        try:
            while self._dirty:
                due = self._last_fsync + self.config.fsync_interval_secs
                await asyncio.sleep(max(0.0, due - self._clock()))
                await asyncio.to_thread(self._sync_if_due)
        finally:
            if self._flusher is asyncio.current_task():
                self._flusher = None

    def _sync_if_due(self) -> None:
        with self._lock:
            if not self._dirty or not self._interval_due(self._clock()):
                return
            try:
                self._sync()
            except OSError as exc:
                # The lines already left the outbox; all that is left is to say so loudly.
                self._dirty = False
                log_event(self._log, logging.ERROR, "file_sink_fsync_failed", sink=self.name, error=str(exc))


def _write_all(fd: int, data: bytes) -> None:
    """One write for the whole request; loops only if the kernel accepts part of it."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_dir(directory: str) -> None:
    # A new or renamed file survives power loss only once its directory entry is synced too.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _after_last_newline(fd: int, size: int, chunk: int = 65536) -> int:
    """The offset just after the last ``\n`` in the file's first ``size`` bytes (0 if there is none)."""
    end = size
    while end > 0:
        start = max(0, end - chunk)
        nl = os.pread(fd, end - start, start).rfind(b"\n")
        if nl >= 0:
            return start + nl + 1
        end = start
    return 0


def _reason(exc: OSError, path: str) -> str:
    detail = exc.strerror or str(exc)
    if exc.filename and exc.filename != path:
        detail = f"{detail}: {exc.filename}"
    hint = _HINTS.get(exc.errno or 0)
    return f"cannot write {path}: {detail}" + (f" ({hint})" if hint else "")
