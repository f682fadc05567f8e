"""Events per CPU-second of one sink against its local peer, next to the file sink in the same process.

    python bench/sinks.py --sink syslog --events 200000 --json
    python bench/sinks.py --sink kafka --events 100000

What runs: ~1 KB meshStack event-log records (bench/records.py) are encoded by the sink exactly as a
commit does, packed by the shared batcher under the sink's limits, and sent request by request the
way the delivery loop sends them (one ``send`` at a time, retried if the sink asks). The peer comes
from ``bench/peers/<sink>.py`` and runs in its own process where it can, so the CPU measured here
(``getrusage(RUSAGE_SELF)``: every thread of this process) is logferry's alone. The baseline is the
file sink with ``fsync: never`` writing the same records in the same process: the cheapest sink we
have, so ``ratio`` says what a destination's protocol costs on top of encoding and batching. The
outbox (SQLite) is not part of either side; bench/pipeline.py measures that.

A warm-up of ``--warmup`` records runs first on each side and is not counted (first-touch memory on
these VMs costs more than the work). The run fails unless the peer holds every record sent.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).parent))
from peers import Peer
from records import RecordFactory

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.connectors import load_builtin
from logferry.core.batcher import pack
from logferry.core.sink import Action, Sink
from logferry.observe.metrics import Metrics

Record = dict[str, Any]
_ARRIVAL_TIMEOUT_SECS = 60.0
_RETRY_LIMIT_SECS = 30.0


def cpu_secs() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def build(entry: dict[str, Any], tmp: Path) -> tuple[Sink, BuildContext]:
    config = {
        "sources": {
            "bench": {
                "type": "meshstack",
                "api_url": "https://mesh.example.com",
                "client_id": "bench",
                "client_secret": "${env:PATH}",  # never used: the source does not run
            }
        },
        "sinks": {"dst": {**entry, "inputs": ["bench"]}},
    }
    ctx = BuildContext(data_dir=tmp, metrics=Metrics())
    return parse_config(config, tmp).sinks["dst"].build("dst", ctx), ctx


async def deliver(sink: Sink, records: list[Record]) -> int:
    """Encode, pack and send ``records`` as the pipeline would; the number of requests."""
    lines = sink.encode(records)
    n = 0
    for i, j in pack(sink.limits, lines):
        deadline = time.monotonic() + _RETRY_LIMIT_SECS
        while (result := await sink.send(lines[i:j])).action is Action.RETRY:
            if time.monotonic() > deadline:
                raise SystemExit(f"sink kept asking for a retry: {result.reason}")
            await asyncio.sleep(0.05)
        if result.action is not Action.DELIVERED:
            raise SystemExit(f"sink answered {result.action.value}: {result.reason}")
        n += 1
    return n


async def wait_arrived(peer: Peer, expected: int) -> int:
    deadline = time.monotonic() + _ARRIVAL_TIMEOUT_SECS
    got = await peer.arrived()
    while got < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)  # the peer is another process: nothing here to wait on but time
        got = await peer.arrived()
    return got


async def measure(
    entry: dict[str, Any], peer: Peer | None, factory: RecordFactory, args: argparse.Namespace, tmp: Path
) -> dict[str, Any]:
    sink, ctx = build(entry, tmp)
    await sink.start()
    try:
        warm, _ = factory.page(0, args.warmup)
        await deliver(sink, warm)
        records, _ = factory.page(args.warmup, args.events)
        c0, t0 = cpu_secs(), time.perf_counter()
        requests = 0
        for k in range(0, len(records), args.chunk):
            requests += await deliver(sink, records[k : k + args.chunk])
        cpu, wall = cpu_secs() - c0, time.perf_counter() - t0
    finally:
        await sink.close()
        await ctx.close()
    result = {
        "events": args.events,
        "requests": requests,
        "cpu_secs": round(cpu, 3),
        "wall_secs": round(wall, 3),
        "events_per_cpu_sec": round(args.events / cpu) if cpu else None,
        "events_per_sec": round(args.events / wall) if wall else None,
    }
    if peer is not None:
        expected = args.warmup + args.events
        got = await wait_arrived(peer, expected)
        result["arrived"] = got
        if got != expected:
            raise SystemExit(f"{args.sink}: the peer holds {got} records, {expected} were sent")
    return result


@contextlib.asynccontextmanager
async def open_peer(name: str, tmp: Path) -> AsyncIterator[Peer]:
    try:
        module = importlib.import_module(f"peers.{name}")
    except ModuleNotFoundError:
        known = sorted(p.stem for p in (Path(__file__).parent / "peers").glob("*.py") if p.stem != "__init__")
        raise SystemExit(f"no bench/peers/{name}.py; known: {', '.join(known)}") from None
    async with module.peer(tmp) as peer:
        yield peer


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_builtin()
    factory = RecordFactory()
    with tempfile.TemporaryDirectory(prefix="lf-sinkbench-") as d:
        tmp = Path(d)
        baseline_entry = {"type": "file", "path": str(tmp / "baseline.ndjson"), "fsync": "never"}
        baseline = await measure(baseline_entry, None, factory, args, tmp)
        async with open_peer(args.sink, tmp) as peer:
            measured = await measure(peer.config, peer, factory, args, tmp)
    ratio = None
    if measured["events_per_cpu_sec"] and baseline["events_per_cpu_sec"]:
        ratio = round(measured["events_per_cpu_sec"] / baseline["events_per_cpu_sec"], 3)
    return {"sink": args.sink, "sink_side": measured, "file_baseline": baseline, "ratio_to_file": ratio}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sink", required=True, help="a module name in bench/peers/")
    p.add_argument("--events", type=int, default=200_000, help="records measured (default 200,000)")
    p.add_argument("--warmup", type=int, default=20_000, help="records sent first and not counted")
    p.add_argument("--chunk", type=int, default=5_000, help="records per commit-sized encode call")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last stdout line")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    if args.json:
        print(orjson.dumps(result).decode())
    else:
        for side in ("sink_side", "file_baseline"):
            s = result[side]
            print(
                f"{side:14} {s['events_per_cpu_sec']:>9} events/CPU-s  {s['events_per_sec']:>9} events/s  "
                f"{s['requests']} requests  {s['cpu_secs']} CPU-s"
            )
        print(f"ratio to the file sink: {result['ratio_to_file']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
