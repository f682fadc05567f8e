"""Where logferry's CPU goes: per-thread CPU clocks, and (opt-in) per-stage timers.

Per-thread clocks cost nothing and are always reported: the event-loop thread (source, delivery
loop, aiohttp and TLS), the state-store thread (each commit's dedupe, mapping, encoding and SQLite
work; outbox reads and acks) and the asyncio default executor (gzip of bodies ≥ 64 KB).

``StageTimers`` wraps a few product functions from the outside (nothing in ``src/`` changes) and
charges the calling thread's CPU time (``time.thread_time``) to a stage. The wrapped functions run
once per batch or request, never per event, so the wrappers add a few microseconds per 1,000
events; still, headline numbers come from a run without them.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import logferry.core.batcher as batcher
import logferry.core.delivery as delivery_mod
import logferry.state.sqlite as sqlite_mod
from logferry.sinks.sentinel.encoder import RecordEncoder
from logferry.sinks.sentinel.service import SentinelSink

__all__ = ["GcClock", "StageTimers", "thread_cpu"]


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of every live thread, keyed by a role derived from its name."""
    out: dict[str, float] = defaultdict(float)
    for t in threading.enumerate():
        if t.ident is None:
            continue
        try:
            secs = time.clock_gettime(time.pthread_getcpuclockid(t.ident))
        except (OSError, ProcessLookupError):
            continue  # the thread ended between enumerate() and here
        if t is threading.main_thread():
            role = "event_loop"
        elif t.name.startswith("logferry-state"):
            role = "state_store"
        elif t.name.startswith("asyncio"):
            role = "executor"
        else:
            role = "other"
        out[role] += secs
    return dict(out)


class GcClock:
    """CPU seconds spent in garbage collection, per thread, from ``gc.callbacks``.

    The synthetic source allocates most of the objects, so the collections it triggers would be
    charged to "generation" and then subtracted from logferry's figures; the source subtracts the
    collection time of its own thread instead, and the collections stay on logferry's bill.
    """

    def __init__(self) -> None:
        self.secs: dict[int, float] = defaultdict(float)
        self.collections: Counter[int] = Counter()
        self._start: dict[int, float] = {}

    def start(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def __enter__(self) -> GcClock:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def thread_secs(self) -> float:
        return self.secs[threading.get_ident()]

    def total_secs(self) -> float:
        return sum(self.secs.values())

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        tid = threading.get_ident()
        if phase == "start":
            self._start[tid] = time.thread_time()
        elif tid in self._start:
            self.secs[tid] += time.thread_time() - self._start.pop(tid)
            self.collections[info["generation"]] += 1


class StageTimers:
    def __init__(self) -> None:
        self.secs: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._undo: list[Callable[[], None]] = []
        self._gc_start: dict[int, float] = {}

    def add(self, stage: str, secs: float) -> None:
        with self._lock:
            self.secs[stage] += secs
            self.calls[stage] += 1

    def _timed(self, stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(stage, time.thread_time() - t0)

        return wrapper

    def _patch(self, owner: Any, attr: str, new: Any) -> None:
        old = getattr(owner, attr)
        setattr(owner, attr, new)
        self._undo.append(lambda: setattr(owner, attr, old))

    def install(self, sink: SentinelSink) -> None:
        # The mapping is a function generated per table (schemas.compile_mapping);
        # encode = map + one orjson.dumps per row.
        records = sink._records
        if records._map is not None:
            self._patch(records, "_map", self._timed("map", records._map))
        self._patch(RecordEncoder, "encode", self._timed("map+encode", RecordEncoder.encode))
        self._patch(sqlite_mod, "_seen", self._timed("dedupe lookup", sqlite_mod._seen))
        orig_tx = sqlite_mod.SQLiteStateStore._tx

        def tx(store: Any, fn: Callable[..., Any]) -> Any:
            # The transaction's closure is named after the store method that built it.
            name = fn.__qualname__.split(".")[1] if "." in fn.__qualname__ else fn.__name__
            t0 = time.thread_time()
            try:
                return orig_tx(store, fn)
            finally:
                self.add(f"tx {name}", time.thread_time() - t0)

        self._patch(sqlite_mod.SQLiteStateStore, "_tx", tx)
        # delivery.py calls these through its module globals, so that is where they are swapped.
        self._patch(delivery_mod, "pack", self._timed_generator("pack", batcher.pack))
        self._patch(delivery_mod, "request_size", self._timed("request_size", batcher.request_size))
        self._patch(sink._bodies, "_frame", self._timed("frame", sink._bodies._frame))
        # BodyEncoder.compress: ISA-L gzip (isal_zlib) at the configured level.
        self._patch(sink._bodies, "compress", self._timed("gzip", sink._bodies.compress))
        gc.callbacks.append(self._gc)
        self._undo.append(lambda: gc.callbacks.remove(self._gc))

    def _timed_generator(self, stage: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            it = fn(*args, **kwargs)
            while True:
                t0 = time.thread_time()
                try:
                    item = next(it)
                except StopIteration:
                    self.add(stage, time.thread_time() - t0)
                    return
                self.add(stage, time.thread_time() - t0)
                yield item

        return wrapper

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        # Collections run on whichever thread allocates; they overlap the stage that triggered them.
        tid = threading.get_ident()
        if phase == "start":
            self._gc_start[tid] = time.thread_time()
        elif tid in self._gc_start:
            self.add(f"gc gen{info['generation']}", time.thread_time() - self._gc_start.pop(tid))

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def report(self, events: int) -> dict[str, dict[str, float]]:
        """Per stage: total CPU seconds, µs per event, and calls."""
        return {
            stage: {
                "cpu_secs": round(secs, 4),
                "us_per_event": round(secs / events * 1e6, 3),
                "calls": self.calls[stage],
            }
            for stage, secs in sorted(self.secs.items(), key=lambda kv: -kv[1])
        }
