"""SCP for the SSH drop: asyncssh's SCP receiver, publishing a file only once the sender says it is good.

In the SCP protocol the sender streams a file's bytes and *then* one status byte: ``\\0`` when it
read its own file fine, or ``\\x01`` and a message when it did not (OpenSSH's scp pads the data with
zeros after a read error and reports it this way). asyncssh's receiver closes the SFTP file -- which
is where :class:`~logferry.sources.filedrop.jail.JailSFTPServer` would publish it -- *before* it
reads that byte, and has no hook for the answer. So this module runs SCP sessions itself
(``session_factory``, instead of asyncssh's ``allow_scp``) with a subclass of its receiver that
tells the jail how each file ended: the jail holds a closed upload back (:meth:`JailSFTPServer.
defer_publish`) and publishes or discards it on that word. A session cut before the status byte
counts as a failure.

asyncssh keeps its SCP classes private (``asyncssh.scp._SCPSink``); the subclass only wraps
``_recv_file`` and calls it unchanged, so the protocol itself stays asyncssh's.

Anything but ``scp -t`` (shells, commands, ``scp -f`` downloads) is refused with exit status 1.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncssh
from asyncssh.scp import _SCPArgParser, _SCPSink
from asyncssh.sftp import SFTPServerFS

from logferry.sources.filedrop.jail import JailSFTPServer

__all__ = ["ScpSessions"]

Reader = asyncssh.SSHReader[bytes]
Writer = asyncssh.SSHWriter[bytes]
JailFactory = Callable[["asyncssh.SSHServerChannel[bytes]"], JailSFTPServer]


class _CheckedSink(_SCPSink):
    """asyncssh's SCP receiver; each file is settled with the jail once its status byte is read."""

    def __init__(
        self, jail: JailSFTPServer, reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes],
        must_be_dir: bool, preserve: bool, recurse: bool,
    ) -> None:  # fmt: skip
        fs = SFTPServerFS(jail)
        super().__init__(fs, reader, writer, must_be_dir, preserve, recurse, error_handler=False, server=True)
        self._jail = jail

    async def _recv_file(self, srcpath: bytes, dstpath: bytes, size: int) -> None:
        try:
            await super()._recv_file(srcpath, dstpath, size)
        except BaseException as exc:
            await self._jail.settle_deferred(f"the sender reported a failure: {_reason(exc)}")
            raise
        await self._jail.settle_deferred(None)


class ScpSessions:
    """The ``session_factory`` of the drop's SSH server: ``scp -t`` only."""

    def __init__(self, jail: JailFactory) -> None:
        self._jail = jail

    def __call__(self, stdin: Reader, stdout: Writer, stderr: Writer) -> object:
        return self._run(stdin, stdout, stderr)

    async def _run(self, stdin: Reader, stdout: Writer, stderr: Writer) -> None:
        chan = stdin.channel
        assert isinstance(chan, asyncssh.SSHServerChannel)
        command = chan.get_command() or ""
        if not command.startswith("scp "):
            return _refuse(stderr, chan, "only SCP uploads and SFTP are available here")
        try:
            args = _SCPArgParser().parse(command)
        except ValueError as exc:
            return _refuse(stderr, chan, str(exc))
        if args.source:
            return _refuse(stderr, chan, "this drop box only accepts uploads")
        jail = self._jail(chan)
        jail.defer_publish()
        sink = _CheckedSink(jail, stdin, stdout, args.must_be_dir, args.preserve, args.recurse)
        try:
            await sink.run(args.path)
        finally:
            await jail.settle_deferred("the session ended before the sender confirmed the file")
            jail.exit()


def _refuse(stderr: asyncssh.SSHWriter[bytes], chan: asyncssh.SSHServerChannel[bytes], why: str) -> None:
    stderr.write(f"scp: {why}\n".encode())
    chan.exit(1)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason) if reason else type(exc).__name__
