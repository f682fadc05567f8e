"""Runs sources and per-sink delivery loops over one state store.

Sources emit batches; each batch is de-duplicated and written with the source's new cursor
into the outbox of every sink that takes the source, in one state-store transaction. Each
sink drains its own outbox, so one destination's outage only grows that sink's outbox; when
an outbox reaches its byte cap, the sources feeding it wait (backpressure, no drops).

A sink with a ``where`` condition (``core.routing``) gets only the matching records of its
inputs, so several sinks can split one source (one Sentinel table per Azure log category).
Outbox depths are counted per sink from what each actually got; records that no sink takes
are counted per source (``EventsUnrouted``), never dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from logferry.core.delivery import DeliveryLoop
from logferry.core.routing import RecordFilter, WhereValue, compile_where
from logferry.core.sink import Sink, encoder_for
from logferry.core.source import EmitResult, Source
from logferry.core.types import JSONValue, Record
from logferry.net.retry import Backoff
from logferry.observe.events import (
    BackpressureWaited,
    EventsDeadLettered,
    EventsDeduplicated,
    EventsUnrouted,
    OutboxDepthChanged,
    SourcePageFetched,
    SourcePollFailed,
    SourcePollSucceeded,
)
from logferry.observe.health import ComponentHealth, Status
from logferry.observe.logging import log_event
from logferry.observe.metrics import Metrics
from logferry.state.store import Encoder, StateStore

__all__ = ["Pipeline", "SinkSpec", "SourceSpec"]

PRUNE_EVERY_SECS = 3600.0
SOURCE_RESTART_MAX_SECS = 300.0
SUCCESS_LOG_EVERY_SECS = 60.0


@dataclass(frozen=True)
class SourceSpec:
    source: Source
    dedupe_ttl_secs: float


@dataclass(frozen=True)
class SinkSpec:
    sink: Sink
    inputs: Sequence[str]
    outbox_max_bytes: int
    max_backoff_secs: float
    #: Only records whose fields hold one of the listed values (``core.routing``); empty: all.
    where: Mapping[str, Sequence[WhereValue]] | None = None


@dataclass
class _SourceRuntime:
    """The ``SourceContext`` one source sees."""

    name: str
    pipeline: Pipeline
    spec: SourceSpec
    sinks: list[str]
    logger: logging.Logger
    stopping: asyncio.Event
    encoders: dict[str, Encoder] = field(default_factory=dict)
    #: Only the sinks with a ``where``; empty keeps the commit on its unfiltered path.
    filters: dict[str, RecordFilter] = field(default_factory=dict)
    _cursor: JSONValue | None = None
    last_success: float | None = None
    last_error: str | None = None
    last_event: float | None = None
    started: float = field(default_factory=time.time)
    received: int = 0
    duplicates: int = 0
    unrouted: int = 0
    _received_at_poll: int = 0
    _success_logged_at: float = float("-inf")

    @property
    def cursor(self) -> JSONValue | None:
        return self._cursor

    async def emit(
        self, records: Sequence[Record], cursor: JSONValue, ids: Sequence[str] | None = None
    ) -> EmitResult:
        p = self.pipeline
        result = await p.store.commit(
            self.name, cursor, records, ids, self.encoders, self.spec.dedupe_ttl_secs, self.filters or None
        )
        self._cursor = cursor
        m = p.metrics
        if records:
            self.last_event = time.time()
            self.received += len(records)
            self.duplicates += result.duplicates
            SourcePageFetched(self.name, len(records)).emit(m)
            if result.duplicates:
                EventsDeduplicated(self.name, result.duplicates).emit(m)
        for sink, n in result.outbox_bytes.items():
            p.outbox_bytes[sink] += n
            p.outbox_events[sink] += result.outbox_events[sink]
            OutboxDepthChanged(sink, p.outbox_events[sink], p.outbox_bytes[sink]).emit(m)
            p.loops[sink].wake.set()
        if result.unrouted:
            self._unrouted(result.unrouted)
        return EmitResult(result.accepted, result.duplicates)

    def _unrouted(self, count: int) -> None:
        if not self.unrouted:
            # Once per source and run: a mistyped value in `where` would otherwise lose data quietly.
            log_event(
                self.logger,
                logging.WARNING,
                "records_match_no_sink",
                source=self.name,
                count=count,
                sinks=self.sinks,
                hint="these records match no sink's `where` and are not delivered; further ones are "
                "counted in logferry_source_events_unrouted_total",
            )
        self.unrouted += count
        EventsUnrouted(self.name, count).emit(self.pipeline.metrics)

    async def wait_capacity(self) -> None:
        p = self.pipeline
        t0 = None
        async with p.capacity:
            while not self.stopping.is_set() and any(
                p.outbox_bytes[s] >= p.sinks[s].outbox_max_bytes for s in self.sinks
            ):
                if t0 is None:
                    t0 = time.monotonic()
                    full = [s for s in self.sinks if p.outbox_bytes[s] >= p.sinks[s].outbox_max_bytes]
                    log_event(self.logger, logging.WARNING, "backpressure", source=self.name, full_sinks=full)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(p.capacity.wait(), timeout=1.0)
        if t0 is not None:
            BackpressureWaited(self.name, time.monotonic() - t0).emit(p.metrics)

    async def sleep(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, seconds))
        return not self.stopping.is_set()

    def poll_succeeded(self, lag_seconds: float | None = None) -> None:
        self.last_success = now = time.time()
        recovered, self.last_error = self.last_error is not None, None
        cursor_at = now - lag_seconds if lag_seconds is not None else None
        event = SourcePollSucceeded(self.name, self.received - self._received_at_poll, cursor_at, now)
        # Streaming and push sources succeed every second or so: the metrics take every success, the
        # log one a minute (with the events since the last line) and the first after a failure.
        if recovered or now - self._success_logged_at >= SUCCESS_LOG_EVERY_SECS:
            self._success_logged_at, self._received_at_poll = now, self.received
            event.emit(self.pipeline.metrics)
        else:
            event.record(self.pipeline.metrics)

    def poll_failed(self, reason: str, error_type: str = "error") -> None:
        self.last_error = reason
        SourcePollFailed(self.name, error_type, reason).emit(self.pipeline.metrics)

    async def dead_letter(self, reason: str, payload: bytes) -> None:
        await self.dead_letters([(reason, payload)])

    async def dead_letters(self, items: Sequence[tuple[str, bytes]]) -> None:
        if not items:
            return
        await self.pipeline.store.add_dead_letters(self.name, "source", items)
        reason = items[0][0] if len(items) == 1 else f"{items[0][0]} (and {len(items) - 1} more)"
        EventsDeadLettered(self.name, "source", len(items), reason).emit(self.pipeline.metrics)

    def health(self, now: float) -> ComponentHealth:
        stale_after = self.spec.source.stale_after_secs
        since = self.last_success or self.started
        healthy = now - since < stale_after
        reason = None
        if not healthy:
            what = "no successful poll" if self.last_success else "no successful poll since start"
            reason = f"{what} for {now - since:.0f}s (stale_after {stale_after:.0f}s)"
            if self.last_error:
                reason += f"; last error: {self.last_error}"
        return ComponentHealth(
            name=self.name,
            kind="source",
            healthy=healthy,
            reason=reason,
            details={
                "last_success": self.last_success,
                "last_event": self.last_event,
                "last_error": self.last_error,
                "received": self.received,
                "duplicates": self.duplicates,
                "unrouted": self.unrouted,
                "cursor": self._cursor,
            },
        )


class Pipeline:
    def __init__(
        self,
        store: StateStore,
        sources: dict[str, SourceSpec],
        sinks: dict[str, SinkSpec],
        metrics: Metrics,
        logger: logging.Logger | None = None,
    ) -> None:
        self.store = store
        self.sources = sources
        self.sinks = sinks
        self.metrics = metrics
        self.logger = logger or logging.getLogger("logferry.pipeline")
        self.stopping = asyncio.Event()
        self.capacity = asyncio.Condition()
        self.outbox_bytes: dict[str, int] = dict.fromkeys(sinks, 0)
        self.outbox_events: dict[str, int] = dict.fromkeys(sinks, 0)
        self.ready = False
        self.started_at = time.time()
        self.loops: dict[str, DeliveryLoop] = {
            name: DeliveryLoop(
                name=name,
                sink=spec.sink,
                store=store,
                metrics=metrics,
                max_backoff_secs=spec.max_backoff_secs,
                on_freed=self._freed,
                stopping=self.stopping,
            )
            for name, spec in sinks.items()
        }
        routes: dict[str, list[str]] = {s: [] for s in sources}
        for sink_name, spec in sinks.items():
            for src in spec.inputs:
                routes[src].append(sink_name)
        self.runtimes = {
            name: _SourceRuntime(
                name=name,
                pipeline=self,
                spec=spec,
                sinks=routes[name],
                logger=logging.getLogger(f"logferry.source.{name}"),
                stopping=self.stopping,
                encoders={s: encoder_for(sinks[s].sink, name) for s in routes[name]},
                filters={s: f for s in routes[name] if (f := compile_where(sinks[s].where)) is not None},
            )
            for name, spec in sources.items()
        }
        self._source_tasks: list[asyncio.Task[None]] = []
        self._sink_tasks: list[asyncio.Task[None]] = []
        self._aux_tasks: list[asyncio.Task[None]] = []

    async def _freed(self, sink: str, nbytes: int, events: int) -> None:
        self.outbox_bytes[sink] = max(0, self.outbox_bytes[sink] - nbytes)
        self.outbox_events[sink] = max(0, self.outbox_events[sink] - events)
        OutboxDepthChanged(sink, self.outbox_events[sink], self.outbox_bytes[sink]).emit(self.metrics)
        async with self.capacity:
            self.capacity.notify_all()

    async def start(self) -> None:
        for spec in self.sinks.values():
            await spec.sink.start()
        for sink, stats in (await self.store.outbox_stats()).items():
            if sink in self.outbox_bytes:
                self.outbox_bytes[sink] = stats.bytes
                self.outbox_events[sink] = stats.events
                OutboxDepthChanged(sink, stats.events, stats.bytes).emit(self.metrics)
        for name, rt in self.runtimes.items():
            rt._cursor = await self.store.get_cursor(name)
        self._sink_tasks = [
            asyncio.create_task(self._supervise_sink(lp), name=f"sink:{n}") for n, lp in self.loops.items()
        ]
        self._source_tasks = [
            asyncio.create_task(self._supervise(rt), name=f"source:{n}") for n, rt in self.runtimes.items()
        ]
        self._aux_tasks = [asyncio.create_task(self._prune_seen(), name="prune-seen")]
        self.ready = True
        log_event(
            self.logger, logging.INFO, "pipeline_started", sources=list(self.sources), sinks=list(self.sinks)
        )

    async def _supervise(self, rt: _SourceRuntime) -> None:
        """Restart a source whose ``run`` crashed, with backoff, so one bug cannot stop the rest."""
        backoff = Backoff(initial_secs=1.0, max_secs=SOURCE_RESTART_MAX_SECS)
        while not self.stopping.is_set():
            try:
                await rt.spec.source.run(rt)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                rt.poll_failed(f"source crashed: {type(exc).__name__}: {exc}")
                self.logger.exception("source_crashed", extra={"fields": {"source": rt.name}})
                if not await rt.sleep(backoff.next_delay()):
                    return

    async def _supervise_sink(self, loop: DeliveryLoop) -> None:
        """Restart a delivery loop that crashed (a store error, a bug): the sink turns red, not dead."""
        backoff = Backoff(initial_secs=1.0, max_secs=SOURCE_RESTART_MAX_SECS)
        while not self.stopping.is_set():
            try:
                await loop.run()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                loop.health.last_error = f"delivery crashed: {type(exc).__name__}: {exc}"
                if loop.health.failing_since is None:
                    loop.health.failing_since = time.time()
                self.logger.exception("sink_delivery_crashed", extra={"fields": {"sink": loop.name}})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), timeout=backoff.next_delay())

    async def _prune_seen(self) -> None:
        """Forget seen ids past their TTL, hourly, so the dedupe table stays bounded."""
        while not self.stopping.is_set():
            await self.store.prune_seen()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=PRUNE_EVERY_SECS)

    async def stop(self, grace_secs: float = 8.0) -> None:
        """Stop fetching, let in-flight requests and commits finish, then close everything."""
        self.stopping.set()
        async with self.capacity:
            self.capacity.notify_all()
        tasks = self._source_tasks + self._sink_tasks + self._aux_tasks
        _done, pending = await asyncio.wait(tasks, timeout=grace_secs) if tasks else (set(), set())
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=1.0)
        for spec in self.sinks.values():
            with contextlib.suppress(Exception):
                await spec.sink.close()
        for sspec in self.sources.values():
            with contextlib.suppress(Exception):
                await sspec.source.close()
        self.ready = False
        log_event(self.logger, logging.INFO, "pipeline_stopped", cancelled=len(pending))

    def status(self) -> Status:
        now = time.time()
        comps = [rt.health(now) for rt in self.runtimes.values()]
        for name, loop in self.loops.items():
            ok, reason = loop.health.healthy(now)
            h = loop.health
            comps.append(
                ComponentHealth(
                    name=name,
                    kind="sink",
                    healthy=ok,
                    reason=reason,
                    details={
                        "outbox_bytes": self.outbox_bytes[name],
                        "outbox_max_bytes": self.sinks[name].outbox_max_bytes,
                        "delivered": h.delivered,
                        "dead_lettered": h.dead_lettered,
                        "requests": h.requests,
                        "retries": h.retries,
                        "last_error": h.last_error,
                        "last_success": h.last_success,
                    },
                )
            )
        return Status(
            ready=self.ready,
            healthy=all(c.healthy for c in comps),
            started_at=self.started_at,
            components=comps,
        )
