"""Which files in a drop directory are ready to read.

A file is ready when it is whole. Uploads to the SSH drop only appear under their name once the
client closed them cleanly (see :mod:`logferry.sources.filedrop.jail`); files delivered by other
means should be renamed into the watched directory, and ``settle_secs`` covers senders that write
in place. On top of that the format has its own rule: Cisco Secure Email writes
``<name>.@<timestamp>.c``/``.current`` while a log is open and renames it to ``.s`` at rollover, so
only ``.s`` files are read (spec §4: "transfer or delete only .s files").

Names starting with ``.`` (temporary files of rsync, editors, logferry's own work directory) and
anything that is not a regular file (symlinks included) are never read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from logferry.formats import ParseError
from logferry.formats.esa import parse_log_filename

__all__ = ["Format", "Found", "not_ready", "scan"]

Format = Literal["esa", "lines"]


@dataclass(frozen=True, slots=True)
class Found:
    """A file ready to read: where it is and the name it is reported under (``source_file``)."""

    path: Path
    rel: str
    mtime: float
    size: int


def not_ready(name: str, fmt: Format) -> str | None:
    """Why a file of this name is not read (yet), or ``None`` when it is."""
    if fmt != "esa":
        return None
    try:
        log_file = parse_log_filename(name)
    except ParseError as exc:
        return f"{exc}; only Cisco Secure Email log files are read with format: esa"
    return None if log_file.complete else "still being written (only '.s' files are complete)"


def scan(root: Path, prefix: str, fmt: Format, settle_secs: float, now: float) -> Iterator[Found | str]:
    """Ready files under ``root`` (recursively), oldest first per directory; for each file that is
    skipped for good (not for a while), its reported name and why, as a ``"name: reason"`` string."""
    for dirpath, dirnames, filenames in os.walk(root):
        # Hidden directories hold work in progress (logferry's own and other tools').
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        base = Path(dirpath)
        entries: list[Found] = []
        for name in filenames:
            if name.startswith("."):
                continue
            path = base / name
            rel = prefix + path.relative_to(root).as_posix()
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue  # taken away between listing and looking
            if not stat.S_ISREG(st.st_mode):
                yield f"{rel}: not a regular file"
                continue
            if now - st.st_mtime < settle_secs:
                continue
            reason = not_ready(name, fmt)
            if reason is not None:
                if not reason.startswith("still"):
                    yield f"{rel}: {reason}"
                continue
            entries.append(Found(path, rel, st.st_mtime, st.st_size))
        yield from sorted(entries, key=lambda f: (f.mtime, f.rel))
