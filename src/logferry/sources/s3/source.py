"""Cisco Umbrella logs from S3: list each log-type folder after its checkpoint, read new objects in
key order, commit rows in batches together with the position inside the object.

* **Listing** (the shared :func:`~logferry.core.polling.poll_forever` loop, every
  ``interval_secs``): per folder, ``ListObjectsV2(Prefix=folder, StartAfter=floor)`` page by page;
  keys already read are skipped, new ones read in key order (= upload order). A successful pass
  over every folder is what keeps health green.
* **Reading an object**: GetObject, then gzip CSV decoded in batches of ``batch_rows``
  (:mod:`~logferry.sources.s3.reader`); each batch commits with ``current = {key, row}``, the last
  one moves the key into the folder's done set (:mod:`~logferry.sources.s3.checkpoint`). A crash
  resumes the object after its last committed row; record ids ``"<key>|<row>"`` drop anything a
  resumed read still repeats. Undecodable rows and damaged gzip streams are dead-lettered with
  the reason (of a damaged object, its first 64 KiB only) and reading goes on; an object deleted
  between listing and reading is counted as skipped.
* **SQS** (optional): ``ObjectCreated`` notifications are read as they arrive, through the same
  object reader and checkpoint, so a key is read once whichever path sees it first; a message is
  deleted only after its objects are committed. The listing then runs rarely, as a safety net.

One object is read at a time (a lock shared by both paths): the checkpoint has one ``current``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from logferry.config.base import BuildContext
from logferry.core.errors import AuthError, SourceError
from logferry.core.polling import Cycle, poll_forever, report_failure
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.net.retry import Backoff
from logferry.observe.events import SourceItemsSkipped, SourceRecordsUnrecognised
from logferry.sources.s3.checkpoint import Checkpoint, key_time
from logferry.sources.s3.client import AwsSettings, S3Bucket, SqsMessage, SqsQueue, make_clients
from logferry.sources.s3.config import FOLDERS, UmbrellaConfig
from logferry.sources.s3.reader import read_batches
from logferry.sources.s3.sqs import parse_notification

__all__ = ["UmbrellaSource"]

#: How much of a damaged object goes into its dead letter: enough to see what it is (another
#: format, an HTML error page, where the gzip stream breaks), never the whole object, which can
#: be hundreds of megabytes; the reason names the key to fetch the rest from.
DAMAGED_PAYLOAD_BYTES = 64 * 1024

#: Folder name -> the log type its rows are decoded as.
_LOG_TYPE_OF_FOLDER = {folder: t for t, folders in FOLDERS.items() for folder in folders}


class UmbrellaSource:
    def __init__(self, name: str, cfg: UmbrellaConfig, ctx: BuildContext) -> None:
        self.name = name
        self.cfg = cfg
        self.metrics = ctx.metrics
        self._stale_after = cfg.stale_after_secs or 3 * cfg.listing_interval_secs
        verify: bool | str = False
        if cfg.tls.verify:
            verify = cfg.tls.ca_file or True
        self._s3, self._sqs = make_clients(
            AwsSettings(
                region=cfg.region,
                access_key_id=cfg.access_key_id.reveal(),
                secret_access_key=cfg.secret_access_key.reveal(),
                endpoint_url=cfg.endpoint_url,
                verify=verify,
                timeout_secs=cfg.timeout_secs,
                max_attempts=cfg.max_attempts,
            )
        )
        self.bucket = S3Bucket(self._s3, cfg.bucket)
        self.queue = SqsQueue(self._sqs, cfg.sqs_queue_url) if cfg.sqs_queue_url else None
        self.prefixes = cfg.folder_prefixes()
        self.state = Checkpoint(timedelta(seconds=cfg.lookback_secs))
        self._lock = asyncio.Lock()

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    async def close(self) -> None:
        for client in (self._s3, self._sqs):
            await asyncio.to_thread(client.close)

    # --- running -------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        start = None
        if self.cfg.initial_lookback_secs is not None:
            start = datetime.now(UTC) - timedelta(seconds=self.cfg.initial_lookback_secs)
        self.state = Checkpoint.load(ctx.cursor, self.prefixes, self.cfg.lookback_secs, start)

        async def cycle() -> Cycle:
            async with self._lock:
                if not await self._finish_current(ctx):
                    return Cycle()
            for prefix in self.prefixes:
                if not await self._list_folder(ctx, prefix):
                    break
            return Cycle()

        if self.queue is None:
            await poll_forever(ctx, cycle, self.cfg.listing_interval_secs)
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(poll_forever(ctx, cycle, self.cfg.listing_interval_secs))
            group.create_task(self._consume(ctx, self.queue))

    async def _list_folder(self, ctx: SourceContext, prefix: str) -> bool:
        """Read every new object of one folder; ``False`` when stopping."""
        token = None
        while True:
            page = await self.bucket.list_page(prefix, self.state.folders[prefix].floor, token)
            for key in page.keys:
                if ctx.stopping.is_set():
                    return False
                if not key.endswith(".csv.gz"):
                    continue  # a folder placeholder or a stray file: not a log export
                if not await self._take(ctx, prefix, key):
                    return False
            if page.next_token is None:
                return True
            token = page.next_token

    async def _take(self, ctx: SourceContext, prefix: str, key: str) -> bool:
        """Read ``key`` unless it is done; ``False`` when stopping cut the reading short."""
        async with self._lock:
            # A half-read object comes first: the checkpoint holds one position inside an object.
            if not await self._finish_current(ctx):
                return False
            # The other path (listing or SQS) may have read it meanwhile.
            if self.state.is_done(prefix, key):
                return True
            return await self._read(ctx, prefix, key, 0)

    async def _finish_current(self, ctx: SourceContext) -> bool:
        """Finish the object a crash or a failure left half-read; the caller holds the lock."""
        if self.state.current is None:
            return True
        key, row = self.state.current
        prefix = self.state.folder_of(key)
        if prefix is None:
            # Its folder is no longer in the config: the rest of it is not wanted either.
            self.state.committed(None, None, None)
            return True
        return await self._read(ctx, prefix, key, row)

    async def _read(self, ctx: SourceContext, prefix: str, key: str, skip_rows: int) -> bool:
        """Read ``key`` after its first ``skip_rows`` rows; ``False`` when stopping cut it short."""
        body = await self.bucket.get(key)
        if body is None:
            # Deleted since it was listed (bucket lifecycle): nothing can bring it back.
            SourceItemsSkipped(self.name, "not_found", key).emit(self.metrics)
            cursor, folder = self.state.finished(prefix, key)
            await ctx.emit((), cursor)
            self.state.committed(prefix, folder, None)
            return True
        folder_name = prefix.rstrip("/").rsplit("/", 1)[-1]
        log_type = _LOG_TYPE_OF_FOLDER.get(folder_name, folder_name.removesuffix("logs"))
        unknown = 0
        async for batch in read_batches(key, body, log_type, self.cfg.batch_rows, skip_rows):
            await ctx.dead_letters(batch.rejects)
            if batch.damaged is not None:
                await ctx.dead_letter(*_damaged_letter(key, body, batch.damaged, batch.row))
            unknown += batch.unknown_version
            await ctx.wait_capacity()
            if batch.last:
                cursor, folder = self.state.finished(prefix, key)
                await ctx.emit(batch.records, cursor, batch.ids)
                self.state.committed(prefix, folder, None)
            else:
                await ctx.emit(batch.records, self.state.in_progress(key, batch.row), batch.ids)
                self.state.committed(None, None, (key, batch.row))
                if ctx.stopping.is_set():
                    return False
        if unknown:
            # Delivered with raw columns (column_1..n): a new log version to map, so it is counted.
            SourceRecordsUnrecognised(self.name, f"umbrella_{log_type}", unknown, key).emit(self.metrics)
        # A backlog of objects is progress, not silence; the lag is how old the file's name is.
        named = key_time(key)
        ctx.poll_succeeded(None if named is None else max(0.0, (datetime.now(UTC) - named).total_seconds()))
        return True

    # --- SQS -----------------------------------------------------------------------------------

    async def _consume(self, ctx: SourceContext, queue: SqsQueue) -> None:
        backoff = Backoff(initial_secs=2.0, max_secs=min(300.0, 2 * self.cfg.listing_interval_secs))
        while not ctx.stopping.is_set():
            try:
                for message in await self._receive(ctx, queue):
                    await self._handle(ctx, queue, message)
            except SourceError as exc:
                if not await report_failure(ctx, exc, backoff, f"SQS: {exc}"):
                    return
                continue
            backoff.reset()

    async def _receive(self, ctx: SourceContext, queue: SqsQueue) -> list[SqsMessage]:
        """One long poll, abandoned when the pipeline stops (the messages reappear after their
        visibility timeout)."""
        cfg = self.cfg
        receive = asyncio.ensure_future(queue.receive(cfg.sqs_wait_secs, cfg.sqs_visibility_timeout_secs))
        stopping = asyncio.ensure_future(ctx.stopping.wait())
        await asyncio.wait((receive, stopping), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not receive.done():
            receive.cancel()
            return []
        return receive.result()

    async def _handle(self, ctx: SourceContext, queue: SqsQueue, message: SqsMessage) -> None:
        try:
            note = parse_notification(message.body)
        except ValueError as exc:
            await ctx.dead_letter(f"{queue.url}: {exc}", message.body.encode())
            await queue.delete(message.receipt)
            return
        for bucket, key in note.created:
            prefix = self.state.folder_of(key)
            if bucket != self.cfg.bucket or prefix is None or not key.endswith(".csv.gz"):
                continue  # not a log type this source collects
            if not await self._take(ctx, prefix, key):
                return  # stopping: the message comes back after its visibility timeout
        # Only now: every object the message names is committed.
        await queue.delete(message.receipt)

    # --- check ---------------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        where = f"s3://{self.cfg.bucket}/{self.cfg.prefix}"
        try:
            found = await self.bucket.probe(self.cfg.prefix)
        except AuthError as exc:
            return CheckResult(False, f"credentials refused: {exc}")
        except SourceError as exc:
            return CheckResult(False, f"cannot list {where}: {exc}")
        if found:
            message = f"credentials accepted; {where} lists log files"
        else:
            message = (
                f"credentials accepted, but {where} holds no files yet (Umbrella's first upload can take "
                "up to 2 hours after setup; otherwise check bucket and prefix)"
            )
        if self.queue is not None:
            try:
                waiting = await self.queue.probe()
            except SourceError as exc:
                return CheckResult(False, f"{message}; SQS queue: {exc}")
            message += f"; SQS queue reachable ({waiting} messages waiting)"
        return CheckResult(True, message)


def _damaged_letter(key: str, body: bytes, why: str, rows: int) -> tuple[str, bytes]:
    """The dead letter of an object whose gzip stream breaks after ``rows`` rows: reason and payload."""
    kept = f"its {rows} rows before the damage are delivered" if rows else "no row read"
    if len(body) > DAMAGED_PAYLOAD_BYTES:
        head = f"payload: its first {DAMAGED_PAYLOAD_BYTES // 1024} KiB of {len(body)} bytes"
        return f"{key}: {why}; {kept}; {head}", body[:DAMAGED_PAYLOAD_BYTES]
    return f"{key}: {why}; {kept}", body
