"""One partition's event stream: connect, read incrementally, commit in groups, keep the session alive.

The feed is a long-lived chunked response of JSON objects, one per line (specs/crowdstrike.md
§3.2). Lines are read as they arrive and committed together with the partition's last offset, in
groups of ``batch_events`` or after ``flush_secs``, whichever comes first; when the outboxes are
full the lane stops reading, so TCP pushes back on Falcon instead of logferry buffering.

Resume: whether the feed's ``offset`` parameter is inclusive is unconfirmed (spec §3.2), so the
lane reopens at the *last committed* offset, which loses nothing under either meaning, and drops
an event whose offset is not above it (the one repeat an inclusive ``offset`` sends). Ids are
``partition|offset`` as well, so the pipeline's dedupe catches any other vendor replay. Only the
offset is stored, so a restart or an upgrade never replays the backlog (Elastic #13953).

A stream that sends nothing at all, not even a keepalive line, for ``idle_timeout_secs`` is
closed and reopened from the last committed offset: a connection dropped silently on the way
(a NAT or firewall timeout) would otherwise hang for ever while refreshes keep succeeding.

The session is refreshed on its own timer at 90% of ``refreshActiveSessionInterval`` (Elastic
Beats' choice), with the OAuth bearer, which the token provider renews independently. A quiet
stream stays healthy: connecting, every keepalive line and every refresh report success.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import aiohttp
import orjson
from yarl import URL

from logferry.auth.oauth2 import vendor_error_message
from logferry.core.errors import RateLimited, SourceError, VendorAPIError
from logferry.core.source import SourceContext
from logferry.core.types import Record
from logferry.net.retry import Backoff, parse_retry_after
from logferry.observe.events import EventsDeduplicated
from logferry.observe.metrics import Metrics
from logferry.sources.crowdstrike.discovery import Discovery, FeedResource, PartitionsChanged
from logferry.sources.crowdstrike.mapping import Mapper

__all__ = ["REFRESH_AT", "StreamLane", "StreamSettings"]

#: Refresh when this share of the session interval has passed (Beats: 90%).
REFRESH_AT = 0.9
#: Never refresh more often than this, whatever interval Falcon announces.
MIN_REFRESH_SECS = 0.5
#: How often a quiet stream's reader looks up to notice shutdown.
IDLE_CHECK_SECS = 0.25
#: A line longer than this is not an event; it is dead-lettered in pieces rather than buffered forever.
MAX_LINE_BYTES = 16 << 20
#: Health reports from keepalive lines, at most this often.
ALIVE_REPORT_SECS = 1.0


class StreamSettings:
    def __init__(
        self,
        *,
        batch_events: int,
        flush_secs: float,
        connect_timeout_secs: float,
        idle_timeout_secs: float,
        reconnect_max_secs: float,
        event_types: list[str],
    ) -> None:
        self.batch_events = batch_events
        self.idle_timeout_secs = idle_timeout_secs
        self.flush_secs = flush_secs
        self.reconnect_max_secs = reconnect_max_secs
        self.event_types = event_types
        self.timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_secs, sock_connect=connect_timeout_secs, sock_read=None
        )


class StreamLane:
    """A lane of :func:`~logferry.core.lanes.run_lanes`; its cursor is ``{"offset": N}``."""

    def __init__(
        self,
        source: str,
        partition: int,
        discovery: Discovery,
        session: aiohttp.ClientSession,
        settings: StreamSettings,
        mapper: Mapper,
        metrics: Metrics,
    ) -> None:
        self.source = source
        self.partition = partition
        self.discovery = discovery
        self.session = session
        self.settings = settings
        self.mapper = mapper
        self.metrics = metrics
        #: Offset of the last committed event; ``None`` until the first commit of a new source.
        self.last: int | None = None
        self._records: list[Record] = []
        self._ids: list[str] = []
        self._rejects: list[tuple[str, bytes]] = []
        self._top: int | None = None
        self._newest_ms: int | None = None
        self._replayed = 0
        self._alive_at = 0.0

    async def run(self, ctx: SourceContext) -> None:
        saved = ctx.cursor.get("offset") if isinstance(ctx.cursor, dict) else None
        self.last = saved if isinstance(saved, int) else None
        backoff = Backoff(initial_secs=1.0, max_secs=self.settings.reconnect_max_secs)
        while not ctx.stopping.is_set():
            after: float | None = None
            try:
                resource = await self.discovery.resource(self.partition)
                if await self._stream(ctx, resource):
                    backoff.reset()
                    continue  # the stream ended after delivering: reconnect at once
            except PartitionsChanged:
                raise
            except SourceError as exc:
                ctx.poll_failed(f"partition {self.partition}: {exc}", type(exc).__name__)
                after = exc.retry_after if isinstance(exc, RateLimited) else None
            except (aiohttp.ClientError, TimeoutError) as exc:
                reason = f"partition {self.partition}: stream connection failed: {type(exc).__name__}: {exc}"
                ctx.poll_failed(reason, type(exc).__name__)
            if not await ctx.sleep(backoff.next_delay(after)):
                return

    async def _stream(self, ctx: SourceContext, resource: FeedResource) -> bool:
        """Consume one connection until EOF or shutdown; whether it delivered anything."""
        params: dict[str, str] = {}
        if self.last is not None:
            params["offset"] = str(self.last)
        if self.settings.event_types:
            params["eventType"] = ",".join(self.settings.event_types)
        url = URL(resource.feed_url, encoded=True).extend_query(params)
        headers = {"Authorization": f"Token {resource.token}", "Accept": "application/json"}
        async with self.session.get(
            url, headers=headers, timeout=self.settings.timeout, allow_redirects=False
        ) as resp:
            if resp.status != 200:
                body = await resp.content.read(2000)
                message = f"stream answered HTTP {resp.status}: {vendor_error_message(body)}"
                if resp.status == 429:
                    raise RateLimited(message, parse_retry_after(resp.headers.get("Retry-After")))
                raise VendorAPIError(message, resp.status)
            ctx.poll_succeeded(None)
            keeper = asyncio.create_task(self._keep_alive(ctx, resource, resp))
            try:
                return await self._read(ctx, resp)
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper

    async def _read(self, ctx: SourceContext, resp: aiohttp.ClientResponse) -> bool:
        loop = asyncio.get_running_loop()
        self._top, self._replayed = self.last, 0
        committed_before = self.last
        tail = bytearray()  # the line still being received
        first_at: float | None = None
        heard_at = loop.time()
        try:
            while not ctx.stopping.is_set():
                if loop.time() - heard_at > self.settings.idle_timeout_secs:
                    # Idle-timed-out connections were dropped somewhere on the way, unnoticed by TCP.
                    await self._flush(ctx)
                    silent = self.settings.idle_timeout_secs
                    raise VendorAPIError(
                        f"partition {self.partition}: stream silent for {silent:.0f} s "
                        "(not even a keepalive); reconnecting"
                    )
                wait = (
                    IDLE_CHECK_SECS if first_at is None else first_at + self.settings.flush_secs - loop.time()
                )
                chunk: bytes | None = None
                with contextlib.suppress(TimeoutError):
                    # readany is safe to time out: unread bytes stay in aiohttp's buffer.
                    async with asyncio.timeout(max(0.0, wait)):
                        chunk = await resp.content.readany()
                if chunk == b"":
                    if tail:
                        self._take(ctx, bytes(tail))  # a last event without its newline
                    break
                if chunk:
                    heard_at = loop.time()
                    end = chunk.rfind(b"\n")
                    if end < 0:
                        tail += chunk  # only the new bytes are searched: linear in the line's size
                    else:
                        for line in (bytes(tail) + chunk[:end]).split(b"\n"):
                            self._take(ctx, line)
                        tail = bytearray(chunk[end + 1 :])
                    if len(tail) > MAX_LINE_BYTES:
                        reason = f"partition {self.partition}: line over {MAX_LINE_BYTES} bytes"
                        self._rejects.append((reason, bytes(tail)))
                        tail = bytearray()
                    if self._records and first_at is None:
                        first_at = loop.time()
                if self._rejects or (
                    first_at is not None
                    and (
                        len(self._records) >= self.settings.batch_events
                        or loop.time() - first_at >= self.settings.flush_secs
                    )
                ):
                    await self._flush(ctx)
                    first_at = None
        except aiohttp.ClientError:
            await self._flush(ctx)  # complete events read before the drop are kept
            raise
        await self._flush(ctx)
        if self._replayed:
            EventsDeduplicated(self.source, self._replayed).emit(self.metrics)
        return self.last != committed_before

    def _take(self, ctx: SourceContext, line: bytes) -> None:
        line = line.strip()
        if not line:
            now = time.monotonic()
            if now - self._alive_at >= ALIVE_REPORT_SECS:
                self._alive_at = now
                ctx.poll_succeeded(None)  # a keepalive: connected, merely quiet
            return
        try:
            doc: Any = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            self._rejects.append((f"partition {self.partition}: stream line is not JSON: {exc}", line))
            return
        if not isinstance(doc, dict):
            return  # not an event (Beats skips non-object messages too)
        meta = doc.get("metadata")
        offset = meta.get("offset") if isinstance(meta, dict) else None
        if not isinstance(offset, int) or isinstance(offset, bool):
            self._rejects.append((f"partition {self.partition}: event has no integer metadata.offset", line))
            return
        if self._top is not None and offset <= self._top:
            self._replayed += 1
            return
        self._top = offset
        created = meta.get("eventCreationTime") if isinstance(meta, dict) else None
        self._newest_ms = created if isinstance(created, int) else self._newest_ms
        self._records.append(self.mapper(doc))
        self._ids.append(f"{self.partition}|{offset:020d}")

    async def _flush(self, ctx: SourceContext) -> None:
        rejects, self._rejects = self._rejects, []
        for reason, raw in rejects:
            await ctx.dead_letter(reason, raw)
        if not self._records:
            return
        records, ids, top = self._records, self._ids, self._top
        self._records, self._ids = [], []
        await ctx.wait_capacity()
        await ctx.emit(records, {"offset": top}, ids)
        self.last = top
        lag = None if self._newest_ms is None else max(0.0, time.time() - self._newest_ms / 1000)
        ctx.poll_succeeded(lag)

    async def _keep_alive(
        self, ctx: SourceContext, resource: FeedResource, resp: aiohttp.ClientResponse
    ) -> None:
        """Refresh the session before it lapses; a session Falcon no longer knows ends the stream."""
        period = max(MIN_REFRESH_SECS, REFRESH_AT * resource.refresh_interval_secs)
        due = resource.discovered_at + period
        while True:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            sent = time.monotonic()  # Falcon's new deadline counts from when it got the call, not later
            try:
                alive = await self.discovery.refresh(resource)
            except SourceError as exc:
                ctx.poll_failed(
                    f"partition {self.partition}: session refresh failed: {exc}", type(exc).__name__
                )
                # Try again well before the session lapses; the stream ends by itself if it does.
                due = time.monotonic() + max(
                    MIN_REFRESH_SECS, (1 - REFRESH_AT) / 4 * resource.refresh_interval_secs
                )
                continue
            if not alive:
                ctx.logger.warning(
                    "partition %s: Falcon has no active session any more; reconnecting", self.partition
                )
                resp.close()
                return
            ctx.poll_succeeded(None)
            due = sent + period
