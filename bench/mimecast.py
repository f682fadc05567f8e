"""Drain a Mimecast backlog (audit events + SIEM batch files) under a per-user quota, against a baseline.

    python bench/mimecast.py --json                  # 100,000 audit events + 60,000 SIEM events: ~3 min
    python bench/mimecast.py --skip-baseline --max-rps 20 --json   # logferry paced by the quota headers
    python bench/mimecast.py --audit-events 5000 --batch-files 4 --json   # smoke run, ~20 s

Mimecast publishes no numeric quota (shared/specs/mimecast.md §4), only the mechanism: every
response carries ``X-RateLimit-Limit/-Remaining/-Reset`` (ms) and calls over the per-user quota are
answered 429 and not executed. The simulator enforces ``--rate-limit`` calls per
``--rate-window-secs`` (default 120 per 60 s, i.e. logferry's default budget of 2 calls/s) on audit
and listing calls; pre-signed file downloads go to the storage host and are not counted.

Two simulator processes with the same seed (so the same data and quota, never shared):

* **baseline**, in this process: a sequential ``requests`` client shaped like Sentinel's Mimecast
  functions (mimecast.md §9.1, §9.3): one audit window over the whole backlog paged with
  ``pageToken`` (500 per page) keeping every record in memory, then per type the batch listing and
  each file one by one; on 429 it sleeps ``ceil(X-RateLimit-Reset / 1000)`` s and retries (§4);
* **logferry**, ``logferry run`` in a child process: a ``mimecast`` source (API 2.0, audit lane +
  one lane per batch type, the product's default budget) → a ``file`` sink.

Each side ends when it holds every expected record (audit ids + batch events); logferry's output is
read back and must hold each exactly once. The last stdout line is one JSON object (``--json``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

# bench/ is not a package: its modules are imported from the script's directory.
from simproc import SimProcess, process_cpu_secs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from logferry.sources.mimecast.config import DEFAULT_MAX_RPS

SRC = Path(__file__).resolve().parent.parent / "src"
TYPES = ("receipt", "delivery", "url protect")
SECRET_ENV = "LOGFERRY_BENCH_MIMECAST_SECRET"
STALL_SECS = 90.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class BenchFailed(Exception):
    """The run did not deliver exactly what it should have; the numbers would be meaningless."""


def sim_options(args: argparse.Namespace) -> list[str]:
    return [
        "--audit-events", str(args.audit_events),
        "--batch-files", str(args.batch_files),
        "--records-per-file", str(args.records_per_file),
        "--batch-types", ",".join(TYPES),
        "--rate-limit", str(args.rate_limit),
        "--rate-window-secs", str(args.rate_window_secs),
        "--latency-secs", str(args.latency_secs),
        "--backlog-secs", str(6 * 3600),
    ]  # fmt: skip


def expected_total(args: argparse.Namespace) -> int:
    return int(args.audit_events + len(TYPES) * args.batch_files * args.records_per_file)


# --- the baseline ---------------------------------------------------------------------------------


class Baseline:
    def __init__(self, sim: SimProcess) -> None:
        self.sim = sim
        self.session = requests.Session()
        self.requests = 0
        self.throttled = 0
        self.throttle_wait_secs = 0.0

    def call(self, method: str, url: str, **kw: Any) -> requests.Response:
        while True:
            r = self.session.request(method, url, verify=self.sim.ca_file, timeout=120, **kw)
            self.requests += 1
            if r.status_code != 429:
                return r
            # Sentinel v1: sleep ceil(reset / 1000) s and retry (without bound there; here too).
            self.throttled += 1
            wait = math.ceil(int(r.headers.get("X-RateLimit-Reset", "1000")) / 1000)
            self.throttle_wait_secs += wait
            time.sleep(wait)

    def run(self) -> dict[str, Any]:
        c = self.sim.credentials
        cpu0 = _self_cpu()
        t0 = time.perf_counter()
        form = {
            "grant_type": "client_credentials",
            "client_id": c["client_id"],
            "client_secret": c["client_secret"],
        }
        token = self.call("POST", f"{self.sim.url}/oauth/token", data=form).json()["access_token"]
        self.session.headers["Authorization"] = f"Bearer {token}"
        events: list[dict[str, Any]] = []
        end = time.gmtime()
        query = {
            "startDateTime": time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime(time.time() - 8 * 3600)),
            "endDateTime": time.strftime("%Y-%m-%dT%H:%M:%S+0000", end),
        }
        body: dict[str, Any] = {"meta": {"pagination": {"pageSize": 500}}, "data": [query]}
        while True:
            doc = self.call("POST", f"{self.sim.url}/api/audit/get-audit-events", json=body).json()
            if doc.get("fail"):
                raise BenchFailed(f"baseline audit: {doc['fail']}")
            events.extend(doc["data"])
            nxt = doc["meta"]["pagination"].get("next")
            if not nxt:
                break
            body = {"meta": {"pagination": {"pageSize": 500, "pageToken": nxt}}, "data": [query]}
        audit_secs = time.perf_counter() - t0
        downloads = requests.Session()
        for log_type in TYPES:
            since = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 86400))
            params: dict[str, str] = {"type": log_type, "pageSize": "25", "dateRangeStartsAt": since}
            while True:
                doc = self.call("GET", f"{self.sim.url}/siem/v1/batch/events/cg", params=params).json()
                for item in doc["value"]:
                    r = downloads.get(item["url"], verify=self.sim.ca_file, timeout=120)
                    if r.status_code != 200:
                        raise BenchFailed(f"baseline download answered {r.status_code}")
                    events.extend(
                        json.loads(line) for line in gzip.decompress(r.content).splitlines() if line
                    )
                if doc["isCaughtUp"]:
                    break
                params = {"nextPage": doc["@nextPage"], "pageSize": "25"}
        wall = time.perf_counter() - t0
        downloads.close()
        self.session.close()
        return {
            "events": len(events),
            "wall_secs": round(wall, 1),
            "audit_secs": round(audit_secs, 1),
            "events_per_sec": round(len(events) / wall),
            "api_requests": self.requests,
            "throttled_429": self.throttled,
            "throttle_sleep_secs": self.throttle_wait_secs,
            "cpu_secs": round(_self_cpu() - cpu0, 2),
        }


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --- logferry -------------------------------------------------------------------------------------


def logferry_config(sim: SimProcess, workdir: Path, max_rps: float | None) -> dict[str, Any]:
    c = sim.credentials
    cfg: dict[str, Any] = {
        "state": {"path": str(workdir / "state.db")},
        "api": {"enabled": False},
        "log": {"level": "warning", "format": "text"},
        "sources": {
            "mimecast": {
                "type": "mimecast",
                "api_url": sim.url,
                "auth": {
                    "type": "oauth2",
                    "client_id": c["client_id"],
                    "client_secret": "${env:" + SECRET_ENV + "}",
                },
                # One window over the whole backlog, no lag: the backlog is complete when the run starts.
                "audit": {"initial_lookback_secs": 8 * 3600, "window_secs": 86400, "lag_secs": 0},
                "siem": {"types": list(TYPES), "interval_secs": 3600},
                "tls": {"ca_file": sim.ca_file},
            }
        },
        "sinks": {
            "out": {
                "type": "file",
                "inputs": ["mimecast"],
                "path": str(workdir / "out.ndjson"),
                "rotate_max_bytes": 0,
            }
        },
    }
    if max_rps is not None:
        cfg["sources"]["mimecast"]["max_requests_per_sec"] = max_rps
    return cfg


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(int(chunk.count(b"\n")) for chunk in iter(lambda: f.read(1 << 22), b""))
    except FileNotFoundError:
        return 0


def run_logferry(sim: SimProcess, workdir: Path, want: int, args: argparse.Namespace) -> dict[str, Any]:
    timeout_secs: float = args.timeout_secs
    cfg_path = workdir / "logferry.yaml"
    cfg_path.write_text(yaml.safe_dump(logferry_config(sim, workdir, args.max_rps), sort_keys=False))
    env = {**os.environ, SECRET_ENV: sim.credentials["client_secret"], "PYTHONPATH": str(SRC)}
    cmd = [sys.executable, "-c", "from logferry.cli import main; main()", "run", "-c", str(cfg_path)]
    out = workdir / "out.ndjson"
    log_path = workdir / "logferry.log"
    with log_path.open("wb") as log_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        last, last_change = -1, 0.0
        while True:
            time.sleep(0.25)
            now = time.perf_counter() - t0
            lines = count_lines(out)
            if lines >= want:
                break
            if proc.poll() is not None:
                raise BenchFailed(f"logferry exited with {proc.returncode} at {lines:,} of {want:,}")
            if lines != last:
                last, last_change = lines, now
            elif now - last_change > STALL_SECS or now > timeout_secs:
                raise BenchFailed(f"stalled at {lines:,} of {want:,} records")
        secs = time.perf_counter() - t0
        cpu = process_cpu_secs(proc.pid)
    except BenchFailed:
        log("\n".join(log_path.read_text(errors="replace").splitlines()[-20:]))
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    keys = [
        str(r.get("id") or r.get("processingId"))
        for r in (json.loads(line) for line in out.read_bytes().splitlines() if line)
    ]
    if len(keys) != len(set(keys)) or len(set(keys)) != want:
        raise BenchFailed(f"{len(keys):,} records, {len(set(keys)):,} unique, expected {want:,} each once")
    return {
        "events": len(keys),
        "wall_secs": round(secs, 1),
        "events_per_sec": round(want / secs),
        "cpu_secs": round(cpu, 2),
    }


def quota_use(stats: dict[str, Any], secs: float, args: argparse.Namespace) -> dict[str, Any]:
    calls = int(stats["api_calls"])
    budget_per_min = args.rate_limit / args.rate_window_secs * 60
    return {
        "api_calls_admitted": calls,
        "rejected_429": int(stats["rate_limited"]),
        "files_downloaded": int(stats["files_served"]),
        "tokens_issued": int(stats["tokens_issued"]),
        "calls_per_min": round(calls / secs * 60, 1),
        "quota_per_min": budget_per_min,
        "quota_share": round(calls / secs * 60 / budget_per_min, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audit-events", type=int, default=100_000)
    ap.add_argument("--batch-files", type=int, default=40, help="files per batch type")
    ap.add_argument("--records-per-file", type=int, default=500)
    ap.add_argument("--rate-limit", type=int, default=120, help="API calls per user per rate window")
    ap.add_argument("--rate-window-secs", type=float, default=60.0)
    ap.add_argument("--latency-secs", type=float, default=0.05, help="simulated time per API call")
    ap.add_argument("--timeout-secs", type=float, default=600.0)
    ap.add_argument(
        "--max-rps", type=float, default=None, help="logferry's max_requests_per_sec (default: product's)"
    )
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args()
    want = expected_total(args)
    result: dict[str, Any] = {
        "backlog": {
            "audit_events": args.audit_events,
            "batch_types": list(TYPES),
            "batch_files_per_type": args.batch_files,
            "records_per_file": args.records_per_file,
            "events": want,
        },
        "quota": f"{args.rate_limit} calls per {args.rate_window_secs:g} s per user (none published)",
        "logferry_budget_per_sec": args.max_rps or DEFAULT_MAX_RPS,
    }
    if not args.skip_baseline:
        sim = SimProcess("mimecast", sim_options(args))
        try:
            log("baseline: sequential requests client …")
            base = Baseline(sim).run()
            if base["events"] != want:
                raise BenchFailed(f"baseline got {base['events']:,} events, expected {want:,}")
            base["quota"] = quota_use(sim.raw_stats(), base["wall_secs"], args)
            result["baseline"] = base
            log(f"baseline: {base}")
        finally:
            sim.close()
    sim = SimProcess("mimecast", sim_options(args))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-mimecast-") as tmp:
            log("logferry run …")
            lf = run_logferry(sim, Path(tmp), want, args)
            lf["quota"] = quota_use(sim.raw_stats(), lf["wall_secs"], args)
            result["logferry"] = lf
            log(f"logferry: {lf}")
    finally:
        sim.close()
    if "baseline" in result:
        result["speedup_wall"] = round(result["baseline"]["wall_secs"] / result["logferry"]["wall_secs"], 2)
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    try:
        main()
    except BenchFailed as exc:
        log(f"benchmark failed: {exc}")
        sys.exit(1)
