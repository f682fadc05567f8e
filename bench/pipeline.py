"""End-to-end throughput and CPU cost of logferry's pipeline against a naive baseline, in one run.

    python bench/pipeline.py --json                 # 200,000 events; JSON summary on the last line
    python bench/pipeline.py --events 50000 --stages --profile /tmp/lf.prof

What runs: a synthetic source (bench/records.py: ~1 KB meshStack event-log records with dedupe ids
built as the meshStack source builds them, ``<createdAt>|<uuid>``, 1,000 per page, as fast as
backpressure allows) → the real ``Pipeline`` with a ``SQLiteStateStore`` in a temp dir → the
Sentinel sink (table meshStackEventLogs_CL, the default gzip level 1) → ``logferry sim sentinel
--tls`` in a child process, with its own Entra ID simulator. Everything between the source and the
simulator is the product as it is, with its defaults. Then, in the same process, the baseline
(bench/baseline.py) sends the same number of events to the same simulator. Each side is measured
with its own ``getrusage(RUSAGE_SELF)`` delta (all threads of this process, never the simulator's),
and each must land exactly N rows in the simulator or the run fails.

The synthetic generation runs on the event-loop thread and is timed separately with
``time.thread_time``; headline CPU figures exclude it (a real source spends that CPU decoding vendor
pages instead, which this benchmark does not model) and ``*_incl_generation`` figures keep it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as dt
import gc
import logging
import os
import platform
import pstats
import resource
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# bench/ is not a package: its modules are imported from the script's directory.
from baseline import BaselineSender, fetch_token
from records import RecordFactory
from simproc import SentinelProcess, SimStats
from stages import GcClock, StageTimers, thread_cpu

from logferry.config.base import BuildContext
from logferry.config.secrets import Ref
from logferry.core.pipeline import Pipeline, SinkSpec, SourceSpec
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.observe.logging import configure_logging
from logferry.observe.metrics import Metrics
from logferry.sinks.sentinel import SentinelConfig, SentinelSink
from logferry.state.sqlite import SQLiteStateStore

TABLE = "meshStackEventLogs_CL"
SOURCE = "bench"
SINK = "sentinel"
TARGET_EVENTS_PER_CPU_SEC = 50_000
TARGET_RATIO = 5.0
DEFAULT_EVENTS = 200_000
DEFAULT_OUTBOX_MB = 512  # the product default (config.base.DEFAULT_OUTBOX_MAX_BYTES)
RUN_TIMEOUT_SECS = 900.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class BenchFailed(Exception):
    """The run did not deliver exactly what it should have; the numbers would be meaningless."""


# --- the synthetic source -----------------------------------------------------------------------


class SyntheticSource:
    """A ``Source`` that emits ``total`` pre-shaped records in pages, as fast as backpressure allows.

    It waits for ``go`` so the measurement starts only after the sink has its token and the state
    store is open. The cursor is the next record index, like a page token. The dedupe ids are the
    meshStack source's, time-ordered ``<createdAt>|<uuid>`` (``RecordFactory.page``).
    """

    def __init__(
        self,
        name: str,
        factory: RecordFactory,
        total: int,
        page_size: int,
        go: asyncio.Event,
        gc_clock: GcClock,
        dedupe: bool = True,
    ) -> None:
        self.name = name
        self.dedupe = dedupe
        self.gc_clock = gc_clock
        self.factory = factory
        self.total = total
        self.page_size = page_size
        self.go = go
        self.generate_cpu_secs = 0.0
        self.emitted = 0

    @property
    def stale_after_secs(self) -> float:
        return 3600.0

    async def run(self, ctx: SourceContext) -> None:
        await self.go.wait()
        i = 0
        while i < self.total and not ctx.stopping.is_set():
            await ctx.wait_capacity()
            n = min(self.page_size, self.total - i)
            t0, gc0 = time.thread_time(), self.gc_clock.thread_secs()
            records, ids = self.factory.page(i, n)
            # Collections that fire while generating are the whole process's garbage: not ours.
            self.generate_cpu_secs += time.thread_time() - t0 - (self.gc_clock.thread_secs() - gc0)
            await ctx.emit(records, {"next": i + n}, ids if self.dedupe else None)
            ctx.poll_succeeded()
            i += n
            self.emitted = i

    async def check(self) -> CheckResult:
        return CheckResult(True, "synthetic")

    async def close(self) -> None:
        return None


# --- measurements -------------------------------------------------------------------------------


def rusage_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class Side:
    """What one sender (logferry or the baseline) cost for ``events`` events."""

    events: int
    wall_secs: float
    cpu_secs: float
    generate_cpu_secs: float
    requests: int
    wire_bytes: int
    sim_cpu_secs: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pipeline_cpu_secs(self) -> float:
        return self.cpu_secs - self.generate_cpu_secs

    def summary(self) -> dict[str, Any]:
        n = self.events
        return {
            "events": n,
            "wall_secs": round(self.wall_secs, 3),
            "events_per_sec": round(n / self.wall_secs),
            "cpu_secs": round(self.pipeline_cpu_secs, 3),
            "cpu_secs_per_100k": round(self.pipeline_cpu_secs / n * 100_000, 3),
            "events_per_cpu_second": round(n / self.pipeline_cpu_secs),
            "us_per_event": round(self.pipeline_cpu_secs / n * 1e6, 2),
            "generate_cpu_secs": round(self.generate_cpu_secs, 3),
            "generate_us_per_event": round(self.generate_cpu_secs / n * 1e6, 2),
            "cpu_secs_incl_generation": round(self.cpu_secs, 3),
            "events_per_cpu_second_incl_generation": round(n / self.cpu_secs),
            "requests": self.requests,
            "events_per_request": round(n / self.requests, 1) if self.requests else None,
            "wire_bytes": self.wire_bytes,
            "sim_cpu_secs": round(self.sim_cpu_secs, 3),
            **self.extra,
        }


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def check_delivered(who: str, before: SimStats, after: SimStats, events: int) -> int:
    rows = after.rows - before.rows
    if rows != events:
        raise BenchFailed(f"{who}: the simulator accepted {rows} rows, expected exactly {events}")
    new_errors = {
        k: v - before.requests_other.get(k, 0)
        for k, v in after.requests_other.items()
        if v != before.requests_other.get(k, 0)
    }
    if new_errors:
        raise BenchFailed(f"{who}: the simulator answered non-204 statuses {new_errors}")
    return after.requests_204 - before.requests_204


# --- logferry -----------------------------------------------------------------------------------


def sink_config(sim: SentinelProcess) -> SentinelConfig:
    c = sim.credentials
    return SentinelConfig.model_validate(
        {
            "type": "sentinel",
            "inputs": [SOURCE],
            "endpoint": sim.url,
            "dcr_immutable_id": c["dcr_id"],
            "table": TABLE,
            "authority_host": c["authority_host"],
            "auth": {
                "type": "client_secret",
                "tenant_id": c["tenant_id"],
                "client_id": c["client_id"],
                "client_secret": Ref(c["client_secret"], "${env:SENTINEL_CLIENT_SECRET}"),
            },
            "tls": {"ca_file": sim.ca_file},
        }
    )


async def run_logferry(
    sim: SentinelProcess,
    factory: RecordFactory,
    args: argparse.Namespace,
    timers: StageTimers | None,
) -> tuple[Side, dict[str, Any]]:
    tmp = tempfile.TemporaryDirectory(prefix="logferry-bench-")
    metrics = Metrics()
    ctx = BuildContext(data_dir=Path(tmp.name), metrics=metrics)
    sink: SentinelSink = sink_config(sim).build(SINK, ctx)
    store = SQLiteStateStore(Path(tmp.name) / "state.db")
    go = asyncio.Event()
    gc_clock = GcClock()
    source = SyntheticSource(SOURCE, factory, args.events, args.page_size, go, gc_clock, not args.no_ids)
    outbox_max = args.outbox_mb * 2**20
    pipeline = Pipeline(
        store,
        {SOURCE: SourceSpec(source, 7 * 86400.0)},
        {SINK: SinkSpec(sink, [SOURCE], outbox_max, 300.0)},
        metrics,
    )
    await store.open()
    await pipeline.start()
    # As Service.start does once the pipeline has started (src/logferry/service.py): everything
    # alive now lives as long as the process, so freeze it out of the collector's full scans.
    # Unfrozen again below, so the baseline that runs next in this process gets an ordinary heap.
    gc.collect()
    gc.freeze()
    try:
        # The first send would fetch the token through msal; do it now, outside the measurement.
        check = await sink.healthcheck()
        if not check.ok:
            raise BenchFailed(f"sink healthcheck failed: {check.message}")
        if timers is not None:
            timers.install(sink)
        profiler = cProfile.Profile() if args.profile else None
        before = await asyncio.to_thread(sim.stats)
        gc.collect()
        gc_clock.start()
        loop_health = pipeline.loops[SINK].health
        threads0, sim_cpu0, cpu0 = thread_cpu(), sim.cpu_secs(), rusage_cpu()
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        go.set()
        peak_outbox = 0
        deadline = t0 + RUN_TIMEOUT_SECS
        while loop_health.delivered < args.events:
            # A 50 ms poll is ~20 wakeups per second: noise next to the pipeline's own work.
            await asyncio.sleep(0.05)
            peak_outbox = max(peak_outbox, pipeline.outbox_bytes[SINK])
            if loop_health.dead_lettered or loop_health.retries:
                raise BenchFailed(
                    f"delivery did not go cleanly: {loop_health.dead_lettered} dead-lettered, "
                    f"{loop_health.retries} retries, last error {loop_health.last_error}"
                )
            if time.perf_counter() > deadline:
                done = loop_health.delivered
                raise BenchFailed(f"timed out after {RUN_TIMEOUT_SECS:.0f}s at {done} events")
        wall = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
        cpu1, sim_cpu1, threads1 = rusage_cpu(), sim.cpu_secs(), thread_cpu()
        gc_clock.stop()
        peak_rss = maxrss_mb()
        if timers is not None:
            timers.uninstall()
        after = await asyncio.to_thread(sim.stats)
        requests = check_delivered("logferry", before, after, args.events)
        if requests != loop_health.requests:  # the healthcheck does not go through the delivery loop
            log(f"note: the simulator counted {requests} requests, the delivery loop {loop_health.requests}")
        side = Side(
            events=args.events,
            wall_secs=wall,
            cpu_secs=cpu1 - cpu0,
            generate_cpu_secs=source.generate_cpu_secs,
            requests=requests,
            wire_bytes=after.bytes_received - before.bytes_received,
            sim_cpu_secs=sim_cpu1 - sim_cpu0,
        )
        threads = {k: round(v - threads0.get(k, 0.0), 3) for k, v in threads1.items()}
        side.extra = {
            "peak_rss_mb": round(peak_rss, 1),
            "peak_outbox_mb": round(peak_outbox / 2**20, 1),
            "outbox_max_mb": args.outbox_mb,
            "thread_cpu_secs": threads,
            "gc_cpu_secs": round(gc_clock.total_secs(), 3),
            "gc_cpu_secs_event_loop": round(gc_clock.secs[threading.main_thread().ident or 0], 3),
            "gc_collections": {f"gen{g}": n for g, n in sorted(gc_clock.collections.items())},
            "dedupe_ids": not args.no_ids,
            "request_body_bytes_mean": round(
                sample(metrics, "logferry_sink_request_bytes_total", sink=SINK) / max(1, requests)
            ),
            "backpressure_wait_secs": round(
                sample(metrics, "logferry_backpressure_wait_seconds_total", source=SOURCE), 2
            ),
        }
        detail: dict[str, Any] = {}
        if timers is not None:
            detail["stages"] = timers.report(args.events)
        if profiler is not None:
            profiler.dump_stats(args.profile)
            detail["profile"] = args.profile
        return side, detail
    finally:
        gc_clock.stop()
        await pipeline.stop()
        await ctx.close()
        await store.close()
        tmp.cleanup()
        gc.unfreeze()


# --- baseline -----------------------------------------------------------------------------------


def run_baseline(sim: SentinelProcess, factory: RecordFactory, args: argparse.Namespace, url: str) -> Side:
    token = fetch_token(sim.credentials, sim.ca_file)
    level = None if args.baseline_compression == "none" else 6
    keepalive = not args.baseline_no_keepalive
    sender = BaselineSender(url, token, sim.ca_file, gzip_level=level, keepalive=keepalive)
    before = sim.stats()
    gc.collect()
    generate = 0.0
    with GcClock() as gc_clock:
        sim_cpu0, cpu0 = sim.cpu_secs(), rusage_cpu()
        t0 = time.perf_counter()
        for start in range(0, args.events, args.page_size):
            g0, gc0 = time.thread_time(), gc_clock.thread_secs()
            records, _ids = factory.page(start, min(args.page_size, args.events - start))
            generate += time.thread_time() - g0 - (gc_clock.thread_secs() - gc0)  # as for logferry
            sender.upload(records)
            if sender.result.failures:
                raise BenchFailed(f"baseline: {sender.result.failures[0]}")
        wall = time.perf_counter() - t0
        cpu1, sim_cpu1 = rusage_cpu(), sim.cpu_secs()
    sender.close()
    after = sim.stats()
    requests = check_delivered("baseline", before, after, args.events)
    return Side(
        events=args.events,
        wall_secs=wall,
        cpu_secs=cpu1 - cpu0,
        generate_cpu_secs=generate,
        requests=requests,
        wire_bytes=after.bytes_received - before.bytes_received,
        sim_cpu_secs=sim_cpu1 - sim_cpu0,
        extra={
            "compression": args.baseline_compression,
            "keepalive": not args.baseline_no_keepalive,
            "request_body_bytes_mean": round(sender.result.body_bytes / max(1, requests)),
            "gc_cpu_secs": round(gc_clock.total_secs(), 3),
            "stages_us_per_event": {
                k: round(v / args.events * 1e6, 2)
                for k, v in sorted(sender.result.stage_secs.items(), key=lambda kv: -kv[1])
            },
        },
    )


# --- reporting ----------------------------------------------------------------------------------


def print_side(name: str, s: dict[str, Any]) -> None:
    log(
        f"{name:>9}: {s['events']:,} events in {s['wall_secs']:.1f}s wall = {s['events_per_sec']:,}/s; "
        f"CPU {s['cpu_secs']:.2f}s = {s['events_per_cpu_second']:,} events/CPU-s "
        f"({s['us_per_event']} µs/event, {s['cpu_secs_per_100k']} CPU-s per 100k; "
        f"+{s['generate_us_per_event']} µs/event synthetic generation); "
        f"{s['requests']} requests, {s['events_per_request']} events/request; "
        f"simulator CPU {s['sim_cpu_secs']:.1f}s"
    )


def print_profile(path: str, top: int) -> None:
    stats = pstats.Stats(path, stream=sys.stderr)
    stats.sort_stats("tottime").print_stats(top)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS, help="events per side (default %(default)s)")
    p.add_argument("--page-size", type=int, default=1000, help="records per emitted page")
    p.add_argument("--outbox-mb", type=int, default=DEFAULT_OUTBOX_MB, help="the sink's outbox byte cap")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last stdout line")
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline (profiling runs)")
    p.add_argument(
        "--no-ids",
        action="store_true",
        help="emit without dedupe ids (ids are optional in Source.emit): what de-duplication costs",
    )
    p.add_argument("--baseline-compression", choices=("gzip6", "none"), default="gzip6")
    p.add_argument("--baseline-no-keepalive", action="store_true", help="requests.post per chunk")
    p.add_argument("--stages", action="store_true", help="time each stage (wraps product functions)")
    p.add_argument("--profile", metavar="PATH", help="cProfile the event-loop thread into PATH")
    p.add_argument("--profile-top", type=int, default=30)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(level="warning", fmt="text")
    # Backpressure is expected when the source outruns the sink; it is reported as a metric instead.
    logging.getLogger(f"logferry.source.{SOURCE}").setLevel(logging.ERROR)
    load0 = os.getloadavg()
    rss_start = current_rss_mb()
    t = time.thread_time()
    factory = RecordFactory()
    log(
        f"records: {factory.mean_record_bytes():.0f} bytes of source JSON each on average "
        f"(pool of specs built in {time.thread_time() - t:.2f}s CPU)"
    )
    timers = StageTimers() if args.stages else None
    sim = SentinelProcess(TABLE)
    try:
        log(f"simulator: {sim.url} (pid {sim.proc.pid})")
        lf, detail = asyncio.run(run_logferry(sim, factory, args, timers))
        lf_s = lf.summary()
        lf_s["rss_before_mb"] = round(rss_start, 1)
        print_side("logferry", lf_s)
        log(
            f"           peak RSS {lf_s['peak_rss_mb']} MB, peak outbox {lf_s['peak_outbox_mb']} MB "
            f"(cap {args.outbox_mb} MB), thread CPU {lf_s['thread_cpu_secs']}, "
            f"backpressure wait {lf_s['backpressure_wait_secs']}s, GC {lf_s['gc_cpu_secs']}s "
            f"{lf_s['gc_collections']}"
        )
        if "stages" in detail:
            log("stages (CPU µs per event, calling thread):")
            for stage, v in detail["stages"].items():
                log(f"  {stage:<22} {v['us_per_event']:>8.3f} µs/event  ({v['calls']} calls)")
        if args.profile:
            print_profile(args.profile, args.profile_top)
        base_s: dict[str, Any] | None = None
        if not args.no_baseline:
            url = sink_config(sim).ingest_url
            base_s = run_baseline(sim, factory, args, url).summary()
            print_side("baseline", base_s)
            log(f"           stages (CPU µs per event): {base_s['stages_us_per_event']}")
    finally:
        sim.close()
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_start": [round(x, 2) for x in load0],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        **{k: v for k, v in lf_s.items()},
        "baseline": base_s,
        "baseline_events_per_cpu_second": base_s["events_per_cpu_second"] if base_s else None,
        "ratio": (
            round(lf_s["events_per_cpu_second"] / base_s["events_per_cpu_second"], 2) if base_s else None
        ),
        **detail,
    }
    result["targets_met"] = {
        "events_per_cpu_second>=50k": lf_s["events_per_cpu_second"] >= TARGET_EVENTS_PER_CPU_SEC,
        "ratio>=5": bool(result["ratio"] is not None and result["ratio"] >= TARGET_RATIO),
    }
    if base_s:
        met = ["met" if ok else "NOT met" for ok in result["targets_met"].values()]
        log(
            f"ratio: {result['ratio']}x the baseline's events per CPU-second "
            f"(targets: ≥{TARGET_EVENTS_PER_CPU_SEC:,}/CPU-s {met[0]}, ≥{TARGET_RATIO}x {met[1]})"
        )
    if args.json:
        print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailed as exc:
        log(f"BENCHMARK FAILED: {exc}")
        sys.exit(1)
