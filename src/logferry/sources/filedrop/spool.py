"""Where a drop source keeps files between arrival and the end: claimed, then archived or deleted.

A ready file is first *claimed*: renamed (atomically, same file system) into ``work/<claim>/<name>``,
where ``<claim>`` is a number unique to that arrival. From then on no sender can touch it and the
cursor names it by claim, so a new file arriving later under the same name is a different claim and
never mistaken for the old one. Claims are read strictly in claim order, one at a time; after the
cursor says a claim is done, the file is archived or deleted. A crash between any two steps leaves
the file in ``work/`` and the cursor says what is left to do (see
:mod:`logferry.sources.filedrop.source`).

Claim numbers are a counter, not a clock: each new claim is one more than the highest claim in
``work/`` and the one the cursor names (:meth:`Spool.raise_floor`). A clock set back across a
restart, or a directory someone planted under ``work/`` with a huge number, therefore never puts a
new arrival "before" the cursor; and the cursor is only ever compared for equality anyway.

Claimed files are opened without following symbolic links and must be regular files: in directory
mode ``work/`` sits inside the watched tree, so anyone who can write there could plant a link to a
file logferry can read. A claim that cannot be opened (a link, a FIFO, a permission error) moves to
``work/failed/`` for a human to look at; it is never retried for ever nor read.

The heavy calls (moving across file systems, walking trees) block; the source runs them in a worker
thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

__all__ = ["FAILED_DIR", "Claim", "Spool", "open_claim", "tree_bytes"]

#: Under ``work/``: claims that could not be read, kept for a human (not a number, so never a claim).
FAILED_DIR = "failed"


@dataclass(frozen=True, slots=True)
class Claim:
    id: str
    rel: str
    path: Path


class Spool:
    def __init__(
        self, work: Path, archive: Path, after: Literal["archive", "delete"], archive_max_files: int
    ) -> None:
        self.work = work
        self.archive = archive
        self.after = after
        self.archive_max_files = archive_max_files
        self.failed = work / FAILED_DIR
        self._last_id = 0

    def prepare(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.after == "archive":
            self.archive.mkdir(parents=True, exist_ok=True, mode=0o700)

    def raise_floor(self, claim_id: object) -> None:
        """New claims get numbers above ``claim_id`` (the cursor's claim, when it has one)."""
        if isinstance(claim_id, str) and (num := _claim_number(claim_id)) is not None:
            self._last_id = max(self._last_id, num)

    def claims(self) -> list[Claim]:
        """Files claimed earlier and not finished yet, in claim order."""
        found: list[tuple[int, Claim]] = []
        with os.scandir(self.work) as entries:
            for entry in entries:
                # Not a number: not a claim (``failed/``, or something that is not logferry's).
                # A link is never followed: it could lead anywhere.
                num = _claim_number(entry.name)
                if num is None or not entry.is_dir(follow_symlinks=False):
                    continue
                self._last_id = max(self._last_id, num)
                root = Path(entry.path)
                files = list(_files(root))
                if not files:
                    # A claim whose file is already gone (archived or deleted before a crash).
                    shutil.rmtree(root, ignore_errors=True)
                    continue
                for p in files:
                    found.append((num, Claim(entry.name, p.relative_to(root).as_posix(), p)))
        if self.failed.is_dir():
            # Their numbers are not handed out again either: a new failure must not land on an old one.
            for name in os.listdir(self.failed):
                self.raise_floor(name)
        found.sort(key=lambda c: (c[0], c[1].rel))
        return [c for _, c in found]

    def claim(self, path: Path, rel: str) -> Claim | None:
        """Take ``path`` out of the sender's reach; ``None`` if it vanished meanwhile.

        Any other :class:`OSError` (no permission, another file system, a name too long) is
        raised for the caller to skip this one file; nothing of the attempt is left in ``work/``.
        """
        self._last_id += 1
        cid = str(self._last_id)
        dest = self.work / cid / rel
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, dest)
        except FileNotFoundError:
            shutil.rmtree(self.work / cid, ignore_errors=True)
            return None
        except OSError:
            shutil.rmtree(self.work / cid, ignore_errors=True)
            raise
        return Claim(cid, rel, dest)

    def fail(self, claim: Claim) -> Path:
        """Move an unreadable claim to ``failed/<claim>/<name>``; where it went."""
        dest = self.failed / claim.id / claim.rel
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.rename(claim.path, dest)
        _remove_tree(self.work / claim.id)
        return dest

    def finish(self, claim: Claim) -> None:
        """Archive or delete a fully committed claim; safe to repeat after a crash.

        Raises :class:`OSError` when the claim cannot be archived or removed: the caller must not
        go on to the next claim (it would see this one again and again) but retry later.
        """
        if self.after == "archive" and os.path.lexists(claim.path):
            dest = self.archive / claim.rel
            if dest.exists():
                # The same name again (a re-push): keep both.
                dest = dest.with_name(f"{dest.name}.{claim.id}")
            dest.parent.mkdir(parents=True, exist_ok=True)
            _move(claim.path, dest, claim.id)
            self._trim_archive()
        _remove_tree(self.work / claim.id)

    def _trim_archive(self) -> None:
        files = [(p.stat().st_mtime, p) for p in _files(self.archive)]
        excess = len(files) - self.archive_max_files
        if excess > 0:
            for _, p in sorted(files)[:excess]:
                p.unlink(missing_ok=True)


def open_claim(path: Path) -> BinaryIO:
    """Open a claimed file for reading: never through a symbolic link, only a regular file.

    :class:`OSError` says why not. ``O_NONBLOCK`` keeps a FIFO from blocking the open; it is
    cleared again at once (it means nothing for a regular file).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _move(src: Path, dest: Path, tag: str) -> None:
    """Rename, or copy when the archive is on another file system.

    The copy goes to a hidden name first and is renamed into place once whole, so a crash mid-copy
    leaves no half file under the real name; the restart repeats the move (the claim is still in
    ``work/``). Any other rename error is raised as it is: copying around it (as ``shutil.move``
    does) would leave one more copy in the archive at every retry.
    """
    try:
        os.rename(src, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = dest.with_name(f".{dest.name}.{tag}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dest)
    os.unlink(src)


def _remove_tree(root: Path) -> None:
    """``rmtree`` that raises what stops it (but a file already gone is fine)."""

    def raise_unless_gone(_f: object, _p: str, info: tuple[type[BaseException], BaseException, Any]) -> None:
        if not isinstance(info[1], FileNotFoundError):
            raise info[1]

    if os.path.lexists(root):
        shutil.rmtree(root, onerror=raise_unless_gone)


def _claim_number(name: str) -> int | None:
    # ASCII only: str.isdigit() also accepts characters such as '²' that int() refuses.
    return int(name) if name.isascii() and name.isdigit() else None


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            yield Path(dirpath) / name


def tree_bytes(root: Path) -> int:
    """Bytes of the regular files under ``root`` (0 when it does not exist)."""
    total = 0
    for p in _files(root):
        try:
            total += p.lstat().st_size
        except FileNotFoundError:
            continue
    return total
