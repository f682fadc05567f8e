"""Office 365 Management Activity API source: many tenants and content types, one cursor.

Each (tenant, content type) is a *lane* with its own window cursor and its own queue of
content blobs still to download. A lane lists one page of content (``NextPageUri`` chain),
commits the page's blobs as pending together with the advanced window, then downloads them
concurrently; downloaded blobs commit in groups, their records together with their removal
from the queue.
So a restart resumes exactly the unfinished work — the window, the next page, the blobs not
yet downloaded — and never skips a window (pitfall P2). Records dedupe on ``Id`` (P1).

All lanes of a tenant share that tenant's request budget (``requests_per_minute``) and its
``concurrency``; ``403 AF429`` is throttling (P3). A blob that expired before it could be
downloaded is counted (``logferry_source_items_skipped_total``) and dropped, not retried.

Cursor::

    {"lanes": {"<tenant>/<content type>": {"start": …, "end": …, "page": <NextPageUri> | None,
                                          "pending": [[contentUri, contentExpiration], …]}}}
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from logferry.config.base import BuildContext
from logferry.config.entra import entra_provider
from logferry.core.errors import SourceError
from logferry.core.polling import WindowPlanner, WindowSettings, parse_time, report_failure
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.core.types import Record
from logferry.net.http import HttpClient
from logferry.net.retry import Backoff
from logferry.observe.events import SourceItemsSkipped
from logferry.observe.metrics import Metrics
from logferry.sources.o365.api import Blob, BlobContent, ManagementApi, SubscriptionError, is_throttled
from logferry.sources.o365.config import RETENTION_SECS, Office365Config
from logferry.sources.o365.webhook import NotificationReceiver

__all__ = ["FLUSH_RECORDS", "START_SPACING_SECS", "Lane", "Office365Source"]

#: Microsoft asks clients to wait 15 minutes between subscription start requests.
START_SPACING_SECS = 900.0
#: Finished blobs commit together once they hold this many records.
FLUSH_RECORDS = 2000


class Lane:
    """One tenant's content type: its window cursor and its queue of blobs to download."""

    def __init__(self, api: ManagementApi, content_type: str, cursor: dict[str, Any]) -> None:
        self.api = api
        self.content_type = content_type
        self.key = f"{api.tenant_id}/{content_type}"
        self.cursor = cursor
        self.failing: str | None = None
        #: Set by a webhook notification: the lane stops idling and downloads at once.
        self.wake = asyncio.Event()
        #: Monotonic time of the next content listing once caught up.
        self.next_poll = 0.0
        #: Monotonic time of this lane's last subscription start request (Microsoft: 15 min apart).
        self.started_at: float | None = None

    @property
    def pending(self) -> list[list[str]]:
        pending: list[list[str]] = self.cursor.setdefault("pending", [])
        return pending


class Office365Source:
    def __init__(
        self, name: str, cfg: Office365Config, ctx: BuildContext, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.cfg = cfg
        self._metrics: Metrics = ctx.metrics
        self._stale_after = cfg.stale_after_secs or max(3 * cfg.interval_secs, 900.0)
        self.planner = WindowPlanner(
            WindowSettings(
                interval_secs=cfg.interval_secs,
                window_secs=cfg.window_secs,
                lookback_secs=cfg.initial_lookback_secs,
                lag_secs=cfg.lag_secs,
                retention_secs=RETENTION_SECS,
            ),
            clock,
        )
        session = ctx.session(cfg.tls.settings())
        self.apis: list[tuple[ManagementApi, list[str]]] = []
        for tenant in cfg.tenant_list():
            tokens = entra_provider(
                tenant.auth or cfg.auth,
                scope=cfg.token_scope,
                authority_host=cfg.authority,
                tls=cfg.tls,
                tenant_id=tenant.tenant_id,
                version=cfg.token_version,
            )
            # Microsoft's quota is per tenant and publisher, so that is the key of the shared budget.
            limiter = ctx.limiter(
                ("office365", cfg.root, tenant.tenant_id, cfg.publisher(tenant)),
                cfg.requests_per_minute / 60.0,
                cfg.concurrency,
            )
            http = HttpClient(
                session,
                auth=tokens,
                limiter=limiter,
                timeout_secs=cfg.timeout_secs,
                component=name,
                metrics=ctx.metrics,
                throttled=is_throttled,
            )
            api = ManagementApi(http, cfg.root, tenant.tenant_id, cfg.publisher(tenant))
            self.apis.append((api, list(tenant.content_types or cfg.content_types)))
        self._commit = asyncio.Lock()
        self._lanes: list[Lane] = []
        self._round: set[str] = set()
        self._ctx: SourceContext | None = None

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    async def close(self) -> None:
        return None

    # --- running -------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        saved = ctx.cursor.get("lanes", {}) if isinstance(ctx.cursor, dict) else {}
        self._lanes = []
        for api, content_types in self.apis:
            for ct in content_types:
                cursor = saved.get(f"{api.tenant_id}/{ct}")
                cursor = dict(cursor) if isinstance(cursor, dict) else self.planner.initial()
                self._lanes.append(Lane(api, ct, cursor))
        self._ctx = ctx
        receiver = None
        if self.cfg.webhook is not None:
            receiver = NotificationReceiver(self.cfg.webhook, self._notified, ctx.logger)
            await receiver.start()  # before the subscriptions name it: Microsoft validates at once
        try:
            if self.cfg.start_subscriptions:
                # Concurrently: one after another took tenants x content types x latency.
                await asyncio.gather(*(self._start_subscription(ctx, lane) for lane in self._lanes))
            await asyncio.gather(*(self._run_lane(ctx, lane) for lane in self._lanes))
        finally:
            if receiver is not None:
                await receiver.stop()

    async def _run_lane(self, ctx: SourceContext, lane: Lane) -> None:
        backoff = Backoff(initial_secs=2.0, max_secs=min(300.0, self.cfg.interval_secs * 2))
        while not ctx.stopping.is_set():
            try:
                if lane.pending:
                    await self._download(ctx, lane)
                    continue
                wait = lane.next_poll - time.monotonic()
                if wait > 0:
                    # Caught up: idle until the next poll, unless a notification queues blobs first.
                    if not await self._idle(ctx, lane, wait):
                        return
                    continue
                window = self.planner.next_window(lane.cursor)
                if window is None:
                    self._lane_ok(ctx, lane)
                    lane.next_poll = time.monotonic() + self.cfg.interval_secs
                    continue
                page = await lane.api.list_content(lane.content_type, window, lane.cursor.get("page"))
                for reason, raw in page.rejects:
                    await ctx.dead_letter(f"tenant {lane.api.tenant_id} {lane.content_type}: {reason}", raw)
                queued = {uri for uri, _ in lane.pending}
                new = [[b.uri, b.expires] for b in page.blobs if b.uri not in queued]
                nxt: dict[str, str | None]
                if page.next_uri:
                    nxt = {"start": _fmt(window.start), "end": _fmt(window.end), "page": page.next_uri}
                else:
                    nxt = {"start": _fmt(window.end), "end": None, "page": None}
                async with self._commit:
                    lane.cursor.update(nxt)
                    lane.pending.extend(new)
                    await ctx.emit((), self._snapshot())
                backoff.reset()
            except SubscriptionError as exc:
                await self._lane_failed(ctx, lane, exc, backoff)
                if self.cfg.start_subscriptions:
                    await self._start_subscription(ctx, lane)
            except SourceError as exc:
                await self._lane_failed(ctx, lane, exc, backoff)

    async def _download(self, ctx: SourceContext, lane: Lane) -> None:
        """Download every queued blob of the lane, ``concurrency`` at a time per tenant.

        Finished blobs commit in groups of about FLUSH_RECORDS records (and whatever is left at
        the end): one transaction per 50-record blob wrote ~40x the delivered bytes to SQLite
        (bench/o365.py). A blob is off the pending list only in the commit that holds its records.
        """
        ready: list[tuple[Blob, BlobContent | None]] = []  # None: skipped, nothing to deliver
        now = self.planner.now()

        async def one(blob: Blob) -> None:
            ready.append((blob, await self._fetch(lane, blob, now)))
            if sum(len(c.records) for _, c in ready if c is not None) >= FLUSH_RECORDS:
                await self._commit_blobs(ctx, lane, ready)

        results = await asyncio.gather(
            *(one(Blob(uri, expires)) for uri, expires in list(lane.pending)), return_exceptions=True
        )
        await self._commit_blobs(ctx, lane, ready)  # the rest, also when some downloads failed
        errors = [r for r in results if isinstance(r, BaseException)]
        for err in errors:
            if not isinstance(err, SourceError):
                raise err
        if errors:
            raise errors[0]
        self._lane_ok(ctx, lane)

    async def _fetch(self, lane: Lane, blob: Blob, now: datetime) -> BlobContent | None:
        """The blob's content, or None (counted and reported) when it can no longer be had."""
        content = None if _expired(blob, now) else await lane.api.fetch_blob(blob)
        if content is None or content.gone is not None:
            reason = "expired" if content is None or content.gone == "AF20051" else "not_found"
            SourceItemsSkipped(self.name, reason, f"{lane.key} {blob.uri} (expires {blob.expires})").emit(
                self._metrics
            )
            return None
        return content

    async def _commit_blobs(
        self, ctx: SourceContext, lane: Lane, ready: list[tuple[Blob, BlobContent | None]]
    ) -> None:
        batch = ready[:]
        ready.clear()
        if not batch:
            return
        records: list[Record] = []
        ids: list[str] = []
        for _blob, content in batch:
            if content is None:
                continue
            for reason, raw in content.rejects:
                await ctx.dead_letter(f"tenant {lane.api.tenant_id} {lane.content_type}: {reason}", raw)
            records.extend(content.records)
            ids.extend(content.ids)
        await ctx.wait_capacity()
        async with self._commit:
            done = {blob.uri for blob, _ in batch}
            lane.cursor["pending"] = [p for p in lane.pending if p[0] not in done]
            await ctx.emit(records, self._snapshot(), ids)

    async def _idle(self, ctx: SourceContext, lane: Lane, seconds: float) -> bool:
        """Wait ``seconds`` or for a notification for this lane; False when stopping."""
        sleep = asyncio.ensure_future(ctx.sleep(seconds))
        woken = asyncio.ensure_future(lane.wake.wait())
        done, pending = await asyncio.wait({sleep, woken}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        lane.wake.clear()
        return sleep.result() if sleep in done else not ctx.stopping.is_set()

    def _webhook(self) -> dict[str, str] | None:
        hook = self.cfg.webhook
        if hook is None:
            return None
        return {"address": hook.address, "authId": hook.auth_id.reveal(), "expiration": ""}

    async def _notified(self, items: list[dict[str, Any]]) -> int:
        """Queue the announced blobs in their lanes (committed before Microsoft gets its 200)."""
        ctx = self._ctx
        lanes = {(lane.api.tenant_id, lane.content_type): lane for lane in self._lanes}
        queued: list[tuple[Lane, list[str]]] = []
        for item in items:
            lane = lanes.get((str(item.get("tenantId", "")).lower(), str(item.get("contentType"))))
            uri, expires = item.get("contentUri"), item.get("contentExpiration")
            if (
                lane is None
                or not isinstance(uri, str)
                or not isinstance(expires, str)
                or not lane.api.owns(uri)
            ):
                continue  # another tenant's or content type's, or pointing off the API's host
            queued.append((lane, [uri, expires]))
        if not queued or ctx is None:
            return 0
        async with self._commit:
            for lane, entry in queued:
                if all(p[0] != entry[0] for p in lane.pending):
                    lane.pending.append(entry)
            await ctx.emit((), self._snapshot())
        for lane, _entry in queued:
            lane.wake.set()
        return len(queued)

    async def _start_subscription(self, ctx: SourceContext, lane: Lane) -> None:
        """Start (or re-enable) the lane's subscription, at most once per START_SPACING_SECS."""
        now = time.monotonic()
        if lane.started_at is not None and now - lane.started_at < START_SPACING_SECS:
            return
        lane.started_at = now
        try:
            status = await lane.api.start_subscription(lane.content_type, self._webhook())
        except SourceError as exc:
            # The lane reports it again (AF20022) until someone fixes it; the other lanes run.
            ctx.poll_failed(f"{lane.key}: cannot start the subscription: {exc}", type(exc).__name__)
            return
        ctx.logger.info("source %s: %s subscription %s", self.name, lane.key, status)

    async def _lane_failed(self, ctx: SourceContext, lane: Lane, exc: SourceError, backoff: Backoff) -> None:
        lane.failing = f"{lane.key}: {exc}"
        await report_failure(ctx, exc, backoff, lane.failing)

    def _lane_ok(self, ctx: SourceContext, lane: Lane) -> None:
        """Report success once every lane has succeeded since the last report, so one failing
        tenant or content type keeps the source from looking healthy."""
        lane.failing = None
        self._round.add(lane.key)
        if len(self._round) < len(self._lanes):
            return
        self._round.clear()
        ctx.poll_succeeded(max(self.planner.lag(lane.cursor) for lane in self._lanes))

    def _snapshot(self) -> dict[str, Any]:
        return {"lanes": {lane.key: {**lane.cursor, "pending": list(lane.pending)} for lane in self._lanes}}

    # --- checking ------------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        """Sign in to every tenant and report each content type's subscription."""
        problems: list[str] = []
        states: list[str] = []
        for api, content_types in self.apis:
            try:
                listed = await api.list_subscriptions()
                subs = {str(s.get("contentType")): str(s.get("status")) for s in listed}
            except SourceError as exc:
                problems.append(f"tenant {api.tenant_id}: {exc}{_hint(str(exc))}")
                continue
            for ct in content_types:
                status = subs.get(ct, "not started")
                starts = status != "enabled" and self.cfg.start_subscriptions
                states.append(
                    f"{api.tenant_id} {ct}: {status}" + (" (started when the source runs)" if starts else "")
                )
                if status != "enabled" and not self.cfg.start_subscriptions:
                    problems.append(f"tenant {api.tenant_id}: {ct} subscription is {status}")
        if problems:
            return CheckResult(False, "; ".join(problems))
        return CheckResult(True, "subscriptions: " + ", ".join(states))


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _expired(blob: Blob, now: datetime) -> bool:
    try:
        return parse_time(blob.expires if blob.expires.endswith("Z") else blob.expires + "Z") <= now
    except ValueError:
        return False  # an unreadable expiry is the API's to judge


def _hint(message: str) -> str:
    if "AF10001" in message:
        return " (the app lacks ActivityFeed.Read on Office 365 Management APIs, or admin consent)"
    if "AF20010" in message or "AF20011" in message or "AF20012" in message:
        return " (check tenant_id; unified audit logging must be enabled in the tenant)"
    if "refused the token" in message:
        return " (check client_id, the secret/certificate and that the app is consented in this tenant)"
    return ""
