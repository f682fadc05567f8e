"""The SFTP side of the SSH drop: each user writes into its own directory and can do nothing else.

asyncssh serves both SFTP and SCP through this :class:`asyncssh.SFTPServer` (``allow_scp=True``
runs SCP on top of it), so every rule here holds for both protocols:

* **Jail.** The user's directory is the ``chroot``; a path with a ``..`` component is refused
  outright, and a path that resolves through a symbolic link is refused, so a link an admin left
  there cannot lead out. Creating links is refused.
* **Upload only.** Files cannot be read back, removed or linked; listing, ``mkdir`` and renames
  inside the jail are allowed (Cisco Secure Email may rename ``.c`` to ``.s`` after the upload).
  Nothing is ever replaced: an upload or a rename onto a name that exists fails, since that file
  is waiting to be read. Names starting with ``.`` are refused anywhere in a path: the reader skips
  them, so they would only fill the quota.
* **Whole files or nothing.** Bytes go to a private temporary file outside the jail and the file
  appears under its name (one atomic rename) only when the client closes it cleanly -- for SCP,
  only once the sender's status byte says the file is good (see
  :mod:`~logferry.sources.filedrop.scp`). A close because the connection dropped, or an upload that
  broke a limit, discards the temporary file, so the reader never sees part of a file. The file is
  fsynced before the rename and the directory after it: once published (and so acknowledged to the
  sender, which may delete its copy) it survives a power cut.
* **Limits.** ``max_file_bytes`` per file and the spool quota are checked on every write, and the
  per-connection byte rate is taken before the write, so an upload over a limit fails at once with
  an SFTP error.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
from asyncssh import SFTPAttrs, SFTPName

from logferry.sources.filedrop.limits import ByteRate, SpoolQuota

__all__ = ["DropRules", "JailSFTPServer"]

_WAITING = "a file of that name is already waiting to be read: send it under another name"


@dataclass
class DropRules:
    """What every upload session shares: where temporary files go, the limits, who to tell."""

    upload_dir: Path
    max_file_bytes: int
    quota: SpoolQuota
    on_upload: Callable[[str, int], None] = field(default=lambda rel, size: None)
    on_discard: Callable[[str, str], None] = field(default=lambda rel, why: None)


@dataclass(slots=True)
class _Upload:
    fd: int
    tmp: str
    final: Path
    rel: str
    size: int = 0
    error: str | None = None


class JailSFTPServer(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], user: str, jail: Path, rules: DropRules,
                 rate: ByteRate | None) -> None:  # fmt: skip
        super().__init__(chan, chroot=os.fsencode(jail))
        self._user = user
        self._jail = os.path.realpath(jail)
        self._rules = rules
        self._rate = rate
        self._defer = False
        self._pending: _Upload | None = None

    def map_path(self, path: bytes) -> bytes:
        parts = path.split(b"/")
        if b".." in parts:
            raise asyncssh.SFTPPermissionDenied("'..' is not allowed: paths stay inside your directory")
        if any(p.startswith(b".") and p != b"." for p in parts):
            # The reader never looks at hidden names (see watch.py), so such a file or directory
            # would only sit there taking room in the spool quota.
            raise asyncssh.SFTPPermissionDenied("names starting with '.' are not accepted")
        local = super().map_path(path)
        # Any symbolic link on the way (only an admin could have put one there) is not followed.
        if os.path.realpath(local) != os.path.normpath(local):
            raise asyncssh.SFTPPermissionDenied("symbolic links are not followed")
        return local

    # --- uploads ------------------------------------------------------------------------------

    def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> object:
        if not pflags & asyncssh.FXF_WRITE or pflags & asyncssh.FXF_READ:
            raise asyncssh.SFTPPermissionDenied("this drop box only accepts uploads")
        if pflags & asyncssh.FXF_APPEND:
            raise asyncssh.SFTPOpUnsupported("appending is not supported: upload whole files")
        final = Path(os.fsdecode(self.map_path(path)))
        if not final.parent.is_dir():
            raise asyncssh.SFTPNoSuchFile("no such directory")
        if final.is_dir():
            raise asyncssh.SFTPFailure("a directory has that name")
        if os.path.lexists(final):
            # Replacing it would lose a file that arrived whole and is not read yet.
            raise asyncssh.SFTPFailure(_WAITING)
        fd, tmp = tempfile.mkstemp(dir=self._rules.upload_dir, prefix=f"{self._user}.")
        rel = f"{self._user}/{final.relative_to(self._jail).as_posix()}"
        return _Upload(fd, tmp, final, rel)

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        up = _upload(file_obj)
        if up.error is None:
            # The sender is gone (bytes still buffered here keep arriving): the upload cannot end
            # cleanly, so stop spending the rate budget and disk on it.
            up.error = self._interrupted()
        if up.error is not None:
            raise asyncssh.SFTPFailure(up.error)
        end = offset + len(data)
        if end > self._rules.max_file_bytes:
            up.error = f"file larger than the limit of {self._rules.max_file_bytes} bytes"
            raise asyncssh.SFTPFailure(up.error)
        grow = max(0, end - up.size)
        if grow and not self._rules.quota.reserve(grow):
            up.error = "the spool is full; try again later"
            raise asyncssh.SFTPFailure(up.error)
        up.size += grow
        if self._rate is not None:
            await self._rate.take(len(data))
        return os.pwrite(up.fd, data, offset)

    async def close(self, file_obj: object) -> None:
        if not isinstance(file_obj, _Upload):
            await _maybe_await(super().close(file_obj))
            return
        up = file_obj
        why = up.error or self._interrupted()
        stored: str | None = None
        if why is None:
            try:
                await asyncio.to_thread(os.fsync, up.fd)
            except OSError as exc:
                why = stored = f"cannot store the upload: {exc.strerror}"
        os.close(up.fd)
        if why is not None:
            self._discard(up, why)
        elif self._defer:
            self._pending = up
        else:
            stored = await self._publish(up)
        if stored is not None:
            # The client is still there to be told (SFTP's CLOSE answer): not stored, send again.
            raise asyncssh.SFTPFailure(stored)

    def defer_publish(self) -> None:
        """From now on a closed upload waits for :meth:`settle_deferred` (SCP's status byte)."""
        self._defer = True

    async def settle_deferred(self, failure: str | None) -> None:
        """Publish the upload closed last (``failure`` is ``None``) or discard it with that reason.

        SCP has already answered the sender by then, so a failure to store it is only logged
        (``upload_discarded``); it is a failure of logferry's own disk."""
        up, self._pending = self._pending, None
        if up is None:
            return
        if failure is None:
            await self._publish(up)
        else:
            self._discard(up, failure)

    async def _publish(self, up: _Upload) -> str | None:
        """Make the upload appear under its name; why not, when it could not."""
        try:
            await asyncio.to_thread(_publish, up.tmp, up.final)
        except FileExistsError:
            why = _WAITING
        except OSError as exc:
            why = f"cannot store the upload: {exc.strerror}"
        else:
            self._rules.on_upload(up.rel, up.size)
            return None
        self._discard(up, why)
        return why

    def _discard(self, up: _Upload, why: str) -> None:
        # Never a partial file under its name: the next push brings it again whole.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(up.tmp)
        self._rules.quota.release(up.size)
        self._rules.on_discard(up.rel, why)

    def _interrupted(self) -> str | None:
        """Why a close is not the end of an upload, or ``None`` for a clean close.

        asyncssh also closes files left open when the session ends: the connection dropped, or the
        client ended its side. A clean close (SFTP ``CLOSE``, or SCP's end of file data) happens
        while both directions of the channel are still open. The receive state has no public
        accessor, hence the private attribute (with a safe default).
        """
        chan = self.channel
        if chan.is_closing() or getattr(chan, "_recv_state", "open") != "open":
            return "the upload was interrupted (connection closed before the file was)"
        return None

    def fstat(self, file_obj: object) -> os.stat_result:
        if isinstance(file_obj, _Upload):
            return os.fstat(file_obj.fd)
        raise asyncssh.SFTPPermissionDenied("not allowed")

    def fsync(self, file_obj: object) -> None:
        os.fsync(_upload(file_obj).fd)

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        # The default lists ".." through a path ending in "..", which map_path refuses; the jail's
        # root has no parent anyway, so "." and ".." both describe the directory itself.
        local = self.map_path(path)
        here = SFTPAttrs.from_local(os.lstat(local))
        for name in (b".", b".."):
            yield SFTPName(name, attrs=here)
        with os.scandir(local) as entries:
            for entry in entries:
                yield SFTPName(
                    os.fsencode(entry.name), attrs=SFTPAttrs.from_local(entry.stat(follow_symlinks=False))
                )

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self.posix_rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        # Never onto an existing name, whichever rename the client asks for: that would replace a
        # file waiting to be read.
        old, new = self.map_path(oldpath), self.map_path(newpath)
        if os.path.lexists(new):
            raise asyncssh.SFTPFailure(_WAITING)
        os.rename(old, new)

    # Attributes (times, modes) that scp -p / sftp put -p send are accepted and ignored: files
    # are read and archived by logferry, never served back.
    def setstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self.map_path(path)

    def lsetstat(self, path: bytes, attrs: SFTPAttrs) -> None:
        self.map_path(path)

    def fsetstat(self, file_obj: object, attrs: SFTPAttrs) -> None:
        return None

    # --- refused ------------------------------------------------------------------------------

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        raise asyncssh.SFTPPermissionDenied("this drop box only accepts uploads")

    def remove(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("files cannot be removed")

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("directories cannot be removed")

    def readlink(self, path: bytes) -> bytes:
        raise asyncssh.SFTPPermissionDenied("symbolic links are not followed")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("symbolic links are not allowed")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not allowed")


def _publish(tmp: str, final: Path) -> None:
    """Move the (already fsynced) upload into place, then make that durable.

    A hard link, then removing the temporary name, rather than a rename: the link fails with
    :class:`FileExistsError` instead of replacing a file of that name that arrived meanwhile.
    """
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise
    except OSError as exc:
        # A file system without hard links (some network mounts): check, then rename. The window
        # between the two is one only another upload to the same name could use.
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise
        if os.path.lexists(final):
            raise FileExistsError(errno.EEXIST, "exists", str(final)) from exc
        os.rename(tmp, final)
    else:
        os.unlink(tmp)
    fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _maybe_await(result: object) -> None:
    if inspect.isawaitable(result):
        await result


def _upload(file_obj: object) -> _Upload:
    if not isinstance(file_obj, _Upload):
        raise asyncssh.SFTPPermissionDenied("not an upload")
    return file_obj
