"""The file drop sources: ``ssh_drop`` (SCP/SFTP uploads) and ``directory`` (a watched directory).

Both are one :class:`FileDropSource`: look for ready files in the inbox directories (the users'
upload directories, or the watched directory), claim them into the spool's ``work/`` directory
(:mod:`~logferry.sources.filedrop.spool`), read each into records in chunks
(:mod:`~logferry.sources.filedrop.ingest`), then archive or delete it. ``ssh_drop`` adds the SSH
server (:mod:`~logferry.sources.filedrop.sshd`), which also wakes the source the moment an upload
completes instead of at the next scan.

Exactly once, across crashes. The cursor names the claim being read and how far it is committed::

    {"claim": "01763800000000000000", "file": "esa1/mail_logs.@20261122T060000.s",
     "offset": 81920, "line": 1000, "done": false}

On start, claims still in ``work/`` are looked at in order against it: the cursor's claim resumes at
its offset (or, when ``done``, is only archived); any other claim is read from the start. Only
equality counts, never order: a claim is archived only once it was committed in full, and the next
claim is not begun before that (a claim that cannot be archived stops the source, with the reason,
until it can). Claim numbers come from a counter above every number in use, not from the clock
(see :mod:`~logferry.sources.filedrop.spool`).

One bad file never stops the others. A ready file that cannot be claimed (no permission, a name
too long for the work directory) is skipped with a warning and the ``source_items_skipped`` counter,
once per file, and tried again on later scans; a claim that cannot be read (not a regular file, an
I/O error) moves to ``work/failed/`` and is dead-lettered with the reason.

Health. The receiving side cannot tell a quiet appliance from a broken push, so a successful poll
means a file arrived (or an upload completed): health turns red when no file came for
``stale_after_secs``. A listener that cannot bind, or a spool that cannot be read, is a failed poll
with the reason, retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

from logferry.config.base import BuildContext
from logferry.config.listen import parse_listen
from logferry.core.errors import SourceError
from logferry.core.polling import Cycle, poll_forever
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.formats.esa import zone
from logferry.observe.events import SourceItemsSkipped
from logferry.observe.logging import log_event
from logferry.observe.metrics import Metrics
from logferry.sources.filedrop.config import (
    DEFAULT_STALE_AFTER_SECS,
    DirectoryConfig,
    FileDropConfig,
    SshDropConfig,
)
from logferry.sources.filedrop.ingest import Position, line_parser, read_file
from logferry.sources.filedrop.limits import SpoolQuota
from logferry.sources.filedrop.spool import Claim, Spool
from logferry.sources.filedrop.sshd import DropServer
from logferry.sources.filedrop.watch import Found, scan

__all__ = ["FileDropSource", "build_directory", "build_ssh_drop"]

#: Names warned about as unreadable are remembered up to this many, so each is logged once.
_WARNED_MAX = 10_000


class FileDropSource:
    def __init__(
        self,
        name: str,
        cfg: FileDropConfig,
        spool: Spool,
        inboxes: list[tuple[Path, str]],
        *,
        metrics: Metrics,
        settle_secs: float = 0.0,
        server: DropServer | None = None,
    ) -> None:
        self.name = name
        self.cfg = cfg
        self.spool = spool
        self.inboxes = inboxes
        self.settle_secs = settle_secs
        self.server = server
        self.metrics = metrics
        self._stale_after = cfg.stale_after_secs or DEFAULT_STALE_AFTER_SECS
        self._parse = line_parser(cfg.format, zone(cfg.timezone))
        self._wake = asyncio.Event()
        self._activity = False
        self._warned: set[str] = set()
        self._lag: float | None = None
        #: Looks for ready files so far (tests wait on it rather than on the clock).
        self.scans = 0
        if server is not None:
            server.on_upload = self._uploaded

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    def _uploaded(self, rel: str) -> None:
        self._activity = True
        self._wake.set()

    async def check(self) -> CheckResult:
        if self.server is not None:
            problems = self.server.problems()
        else:
            problems = [p for root, _ in self.inboxes if (p := _dir_problem(root))]
        if problems:
            return CheckResult(False, "; ".join(problems))
        if self.server is not None:
            return CheckResult(True, self.server.describe())
        return CheckResult(True, f"watching {', '.join(str(r) for r, _ in self.inboxes)}")

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    # --- running -------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        async def cycle() -> Cycle:
            try:
                if self.server is not None:
                    await self.server.start(ctx.logger)
                for root, _ in self.inboxes:
                    # Never created here: a missing directory is a mistake (a typo, a mount not up).
                    if not root.is_dir():
                        raise SourceError(f"{root} is not a directory")
                self.spool.prepare()
                # Wait here rather than in poll_forever: an upload wakes the source at once, and
                # a cycle (a successful poll) is a file read, so health tracks arriving files.
                while not await self._drain(ctx) and not self._activity:
                    if not await self._wait(ctx):
                        break
            except OSError as exc:
                raise SourceError(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from exc
            self._activity = False
            return Cycle(self._lag, more=True)

        try:
            await poll_forever(ctx, cycle, self.cfg.scan_interval_secs)
        finally:
            if self.server is not None:
                await self.server.close()

    async def _wait(self, ctx: SourceContext) -> bool:
        """Until an upload or the next scan; ``False`` when stopping."""
        if ctx.stopping.is_set():
            return False
        wake = asyncio.ensure_future(self._wake.wait())
        stop = asyncio.ensure_future(ctx.stopping.wait())
        try:
            await asyncio.wait(
                {wake, stop}, timeout=self.cfg.scan_interval_secs, return_when="FIRST_COMPLETED"
            )
        finally:
            wake.cancel()
            stop.cancel()
        self._wake.clear()
        return not ctx.stopping.is_set()

    async def _drain(self, ctx: SourceContext) -> int:
        """Read every claimed and every ready file; how many were finished."""
        finished = 0
        while not ctx.stopping.is_set():
            saved = ctx.cursor if isinstance(ctx.cursor, dict) else {}
            self.spool.raise_floor(saved.get("claim"))
            claims = await asyncio.to_thread(self.spool.claims) or await self._claim_ready(ctx.logger)
            if not claims:
                break
            for claim in claims:
                if not await self._read(ctx, claim):
                    return finished
                finished += 1
        return finished

    async def _claim_ready(self, logger: logging.Logger) -> list[Claim]:
        self.scans += 1
        # Walking the trees and renaming block on the disk: a worker thread, not the event loop.
        claims, skipped, failed = await asyncio.to_thread(self._claim_ready_sync, time.time())
        for item in skipped:
            if self._warn_once(item):
                log_event(logger, logging.WARNING, "file_skipped", source=self.name, reason=item)
        for rel, exc in failed:
            if self._warn_once(f"{rel}: cannot claim"):
                why = f"{rel}: cannot move it out of the inbox ({exc.strerror or exc}); tried again later"
                SourceItemsSkipped(self.name, "cannot_claim", why).emit(self.metrics)
        return claims

    def _claim_ready_sync(self, now: float) -> tuple[list[Claim], list[str], list[tuple[str, OSError]]]:
        if self.server is not None:
            self.server.measure_spool(self.spool.work)
        ready: list[Found] = []
        skipped: list[str] = []
        for root, prefix in self.inboxes:
            for item in scan(root, prefix, self.cfg.format, self.settle_secs, now):
                if isinstance(item, Found):
                    ready.append(item)
                else:
                    skipped.append(item)
        claims: list[Claim] = []
        failed: list[tuple[str, OSError]] = []
        for found in sorted(ready, key=lambda f: (f.mtime, f.rel)):
            try:
                claim = self.spool.claim(found.path, found.rel)
            except OSError as exc:
                failed.append((found.rel, exc))
                continue
            if claim is not None:
                claims.append(claim)
        return claims, skipped, failed

    def _warn_once(self, key: str) -> bool:
        if key in self._warned:
            return False
        if len(self._warned) >= _WARNED_MAX:
            self._warned.clear()
        self._warned.add(key)
        return True

    async def _read(self, ctx: SourceContext, claim: Claim) -> bool:
        saved = ctx.cursor if isinstance(ctx.cursor, dict) else {}
        ours = str(saved.get("claim", "")) == claim.id
        if ours and saved.get("done") is True:
            # Committed in full before a crash: only the archiving is left.
            await self._finish(claim)
            return True
        start = Position(int(saved.get("offset", 0)), int(saved.get("line", 0))) if ours else Position()

        def cursor(pos: Position, done: bool) -> dict[str, Any]:
            return {
                "claim": claim.id,
                "file": claim.rel,
                "offset": pos.offset,
                "line": pos.line,
                "done": done,
            }

        try:
            st = await asyncio.to_thread(os.lstat, claim.path)
            complete = await read_file(
                ctx, claim.path, claim.rel, start, self._parse, cursor, self.cfg.ids_by_file_name
            )
        except OSError as exc:
            await self._give_up(ctx, claim, exc)
            return True
        if not complete:
            return False
        await self._finish(claim)
        self._lag = max(0.0, time.time() - st.st_mtime)
        log_event(
            ctx.logger,
            logging.INFO,
            "file_processed",
            source=self.name,
            file=claim.rel,
            bytes=st.st_size,
            resumed_at=start.offset or None,
            after=self.cfg.after,
        )
        return True

    async def _finish(self, claim: Claim) -> None:
        try:
            await asyncio.to_thread(self.spool.finish, claim)
        except OSError as exc:
            # Stops this cycle (a failed poll, retried with backoff): going on would meet this
            # claim again at once, and a later claim must not begin before this one is finished.
            what = "archive" if self.cfg.after == "archive" else "delete"
            raise SourceError(
                f"cannot {what} {claim.rel} (claim {claim.id}): {exc.strerror or exc}: {exc.filename or ''}"
            ) from exc

    async def _give_up(self, ctx: SourceContext, claim: Claim, exc: OSError) -> None:
        """A claim that cannot be read: out of the way to ``failed/``, and a dead letter that says so."""
        dest = await asyncio.to_thread(self.spool.fail, claim)
        reason = f"{claim.rel}: cannot read it ({exc.strerror or exc}); moved to {dest}"
        await ctx.dead_letter(reason, b"")
        log_event(ctx.logger, logging.WARNING, "file_failed", source=self.name, file=claim.rel, reason=reason)


def _dir_problem(root: Path) -> str | None:
    if not root.is_dir():
        return f"{root} is not a directory"
    if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
        return f"{root}: logferry needs read and write access (files are moved out once read)"
    return None


def build_directory(name: str, cfg: DirectoryConfig, ctx: BuildContext) -> FileDropSource:
    root = Path(cfg.path).expanduser()
    own = cfg.spool_path(name, ctx)
    archive = Path(cfg.archive_dir).expanduser() if cfg.archive_dir else own / "archive"
    # Claims must be renames on the watched directory's own file system, hence a hidden work
    # directory inside it (skipped by the scan like every name starting with '.').
    spool = Spool(root / f".logferry-{name}", archive, cfg.after, cfg.archive_max_files)
    return FileDropSource(name, cfg, spool, [(root, "")], metrics=ctx.metrics, settle_secs=cfg.settle_secs)


def build_ssh_drop(name: str, cfg: SshDropConfig, ctx: BuildContext) -> FileDropSource:
    own = cfg.spool_path(name, ctx)
    archive = Path(cfg.archive_dir).expanduser() if cfg.archive_dir else own / "archive"
    spool = Spool(own / "work", archive, cfg.after, cfg.archive_max_files)
    host, port = parse_listen(cfg.listen)
    server = DropServer(
        host=host,
        port=port,
        users={u: Path(p).expanduser() for u, p in cfg.users.items()},
        spool_dir=own,
        max_file_bytes=cfg.max_file_bytes,
        quota=SpoolQuota(cfg.max_spool_bytes),
        bytes_per_sec=cfg.max_upload_bytes_per_sec,
        source=name,
    )
    inboxes = [(server.jail(u), f"{u}/") for u in cfg.users]
    return FileDropSource(name, cfg, spool, inboxes, metrics=ctx.metrics, server=server)
