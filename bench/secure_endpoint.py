"""Drain a Cisco Secure Endpoint backlog at the vendor's hourly quota (time-compressed) and a naive client.

    python bench/secure_endpoint.py --json                  # 3,600 pages of 100 events: ~2.5 minutes
    python bench/secure_endpoint.py --pages 300 --json      # smoke run, ~20 s

The quota is the one in the vendor's sample response (``x-ratelimit-limit: 3000`` per hour,
specs/cisco_secure_endpoint.md §5), with time compressed ``--speedup`` times: the simulator's
quota window is 3600/speedup seconds and still admits 3,000 requests, and logferry's
``requests_per_hour`` is 3,000 x speedup. Every figure in requests and seconds scales back by the
same factor (a 72 s drain at speedup 60 is 72 minutes of real quota). Pages hold ``--page-size``
events (100 by default, not the API's 500, so the simulator's CPU stays out of the way on a small
machine; the number of requests, which is what the quota counts, does not depend on it).

What runs, each simulator in its own process (``logferry sim amp --tls``, no live events):

* **logferry**: ``logferry run -c <config>`` with a ``cisco_secure_endpoint`` source (pages of
  ``--page-size``, the default 60 s overlap) → a ``file`` sink; the run ends when the file holds
  every event, then the file is read back and must hold each id once.
* **baseline**, in this process against its own simulator: Cisco's pagination sample
  (``amp-03-pagination``: a ``requests`` session with Basic auth following ``links.next``), with one
  kindness added so it can finish at all — on a 429 it sleeps for ``x-ratelimit-reset`` and asks
  again (the sample itself stops with a KeyError on the 429 body).

Reported per client: drain seconds, events/s, requests, 429s, and requests used against the
budget the quota allows over the drain (quota x drain / window). The last stdout line is one
JSON object (``--json``); the rest goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import requests
import yaml
from simproc import SimProcess, process_cpu_secs

SRC = Path(__file__).resolve().parent.parent / "src"
QUOTA_PER_HOUR = 3000  # the vendor's sample x-ratelimit-limit
SECRET_ENV = "LOGFERRY_BENCH_AMP_KEY"
STALL_SECS = 60.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class BenchFailed(Exception):
    """The run did not deliver exactly what it should have; the numbers would be meaningless."""


def start_sim(args: argparse.Namespace) -> SimProcess:
    window = 3600.0 / args.speedup
    return SimProcess(
        "amp",
        [
            "--backlog-events", str(args.pages * args.page_size),
            "--backlog-secs", "21600",
            "--live-rate", "0",
            "--quota-per-hour", str(QUOTA_PER_HOUR),
            "--quota-window-secs", str(window),
            "--latency-secs", str(args.latency_secs),
        ],
    )  # fmt: skip


def budget(requests_made: int, drain_secs: float, window_secs: float) -> dict[str, Any]:
    allowed = QUOTA_PER_HOUR * drain_secs / window_secs
    return {"budget_requests": round(allowed), "budget_used_pct": round(100 * requests_made / allowed, 1)}


def run_baseline(sim: SimProcess, args: argparse.Namespace) -> dict[str, Any]:
    session = requests.session()
    session.auth = (sim.credentials["client_id"], sim.credentials["api_key"])
    seen: set[int] = set()
    made = throttled = 0
    t0 = time.perf_counter()
    url: str | None = f"{sim.url}/v1/events?limit={args.page_size}"
    while url is not None:
        r = session.get(url, verify=sim.ca_file, timeout=60)
        made += 1
        if r.status_code == 429:
            throttled += 1
            time.sleep(float(r.headers["x-ratelimit-reset"]))
            continue
        body = r.json()
        seen.update(e["id"] for e in body["data"])
        url = body["metadata"]["links"].get("next")
    wall = time.perf_counter() - t0
    session.close()
    return {
        "events": len(seen),
        "drain_secs": round(wall, 1),
        "events_per_sec": round(len(seen) / wall),
        "requests": made,
        "http_429": throttled,
        **budget(made, wall, 3600.0 / args.speedup),
    }


def run_logferry(sim: SimProcess, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    total = args.pages * args.page_size
    out = workdir / "out.ndjson"
    cfg = {
        "state": {"path": str(workdir / "state.db")},
        "api": {"enabled": False},
        "log": {"level": "warning", "format": "text"},
        "sources": {
            "amp": {
                "type": "cisco_secure_endpoint",
                "api_url": sim.url,
                "client_id": sim.credentials["client_id"],
                "api_key": "${env:" + SECRET_ENV + "}",
                "initial_lookback_secs": 7 * 3600,
                "page_size": args.page_size,
                "requests_per_hour": QUOTA_PER_HOUR * args.speedup,
                "interval_secs": 3600,
                "tls": {"ca_file": sim.ca_file},
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["amp"], "path": str(out), "rotate_max_bytes": 0}},
    }
    path = workdir / "logferry.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, SECRET_ENV: sim.credentials["api_key"]}
    cmd = [sys.executable, "-c", "from logferry.cli import main; main()", "run", "-c", str(path)]
    with (workdir / "run.log").open("wb") as log_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
        try:
            lines, last_change, last = 0, time.perf_counter(), -1
            while lines < total:
                time.sleep(0.2)
                lines = out.read_bytes().count(b"\n") if out.exists() else 0
                if lines != last:
                    last, last_change = lines, time.perf_counter()
                if proc.poll() is not None or time.perf_counter() - last_change > STALL_SECS:
                    raise BenchFailed(f"logferry stopped or stalled at {lines} of {total} events")
            wall = time.perf_counter() - t0
            cpu = process_cpu_secs(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ids = [orjson.loads(line)["id"] for line in out.read_bytes().splitlines()]
    if len(set(ids)) != total or len(ids) != total:
        raise BenchFailed(f"file holds {len(ids)} lines, {len(set(ids))} distinct ids; expected {total} each")
    stats = sim.raw_stats()
    made = int(stats["requests_by_path"].get("/v1/events", 0))
    return {
        "events": total,
        "drain_secs": round(wall, 1),
        "events_per_sec": round(total / wall),
        "requests": made,
        "http_429": int(stats["rate_limited"]),
        "cpu_secs": round(cpu, 1),
        **budget(made, wall, 3600.0 / args.speedup),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=3600, help="backlog size in pages")
    parser.add_argument("--page-size", type=int, default=100, help="events per page (limit)")
    parser.add_argument("--speedup", type=float, default=60.0, help="time compression of the hourly quota")
    parser.add_argument("--latency-secs", type=float, default=0.005, help="simulator time per request")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()
    # The simulators and logferry import this checkout (PYTHONPATH precedes site-packages).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    result: dict[str, Any] = {
        "bench": "secure_endpoint",
        "backlog_events": args.pages * args.page_size,
        "page_size": args.page_size,
        "quota": f"{QUOTA_PER_HOUR} requests per {3600 / args.speedup:g} s (speedup {args.speedup:g})",
    }
    if not args.skip_baseline:
        sim = start_sim(args)
        try:
            log("baseline: Cisco's pagination sample, waiting out 429s ...")
            result["baseline"] = run_baseline(sim, args)
        finally:
            sim.close()
        log(f"baseline: {result['baseline']}")
    sim = start_sim(args)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            log("logferry run ...")
            result["logferry"] = run_logferry(sim, args, Path(tmp))
    finally:
        sim.close()
    log(f"logferry: {result['logferry']}")
    print(orjson.dumps(result).decode() if args.json else yaml.safe_dump(result))


if __name__ == "__main__":
    main()
