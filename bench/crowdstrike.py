"""CrowdStrike Falcon event streams: backlog drain through ``logferry run`` into the file sink.

The simulator runs in its own process (``logferry sim crowdstrike --tls``) with a backlog of
``--events`` per partition; ``logferry run`` drains it into an NDJSON file. Reported: drain time,
events/s, CPU, API requests used (token, discover, refresh) against the request budget, and the
**replay after restart**: logferry is SIGKILLed mid-backlog and restarted, and the simulator's
count of events served after the restart is compared with what was still missing (a collector
that replays the backlog serves it all again).

The baseline is a consumer written the way the simple reference collectors are (the ansible
event-stream plugin, the Falcon SIEM Connector's JSON output): ``requests`` with ``iter_lines``,
``json.loads`` per line, one ``write`` per event to a file, one partition after the other, the
offset kept in memory only. It runs in this process against the same simulator; it guarantees
nothing across restarts, so it is a speed reference, not a like-for-like product.

Usage::

    python bench/crowdstrike.py --events 100000 --partitions 2 --json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml
from simproc import SimProcess, process_cpu_secs

SRC = Path(__file__).resolve().parent.parent / "src"
SECRET_ENV = "BENCH_FALCON_SECRET"
APP_ID = "logferrybench"
MAX_REQUESTS_PER_SEC = 5.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 22), b""))
    except FileNotFoundError:
        return 0


def config(sim: SimProcess, workdir: Path, output_format: str, batch_events: int) -> dict[str, Any]:
    return {
        "state": {"path": str(workdir / "state.db")},
        "api": {"enabled": False},
        "log": {"level": "warning", "format": "text"},
        "sources": {
            "falcon": {
                "type": "crowdstrike",
                "api_url": sim.url,
                "client_id": sim.credentials["client_id"],
                "client_secret": "${env:" + SECRET_ENV + "}",
                "app_id": APP_ID,
                "output_format": output_format,
                "max_requests_per_sec": MAX_REQUESTS_PER_SEC,
                "batch_events": batch_events,
                "tls": {"ca_file": sim.ca_file},
            }
        },
        "sinks": {
            "out": {
                "type": "file",
                "inputs": ["falcon"],
                "path": str(workdir / "out.ndjson"),
                "rotate_max_bytes": 0,
            }
        },
    }


def start_logferry(cfg_path: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from logferry.cli import main; main()", "run", "-c", str(cfg_path)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def api_requests(stats: dict[str, Any]) -> int:
    """Token, discover and refresh calls: every counted request except the streams themselves."""
    return (
        int(stats["tokens_issued"])
        + int(stats["discovers"])
        + int(stats["refreshes"])
        + int(stats["rate_limited"])
    )


def drain(sim: SimProcess, workdir: Path, total: int, args: argparse.Namespace) -> dict[str, Any]:
    cfg_path = workdir / "logferry.yaml"
    cfg_path.write_text(
        yaml.safe_dump(config(sim, workdir, args.output_format, args.batch_events), sort_keys=False)
    )
    env = {**os.environ, SECRET_ENV: sim.credentials["client_secret"]}
    out = workdir / "out.ndjson"
    before = sim.raw_stats()
    t0 = time.perf_counter()
    proc = start_logferry(cfg_path, env, workdir / "logferry.log")
    try:
        while (lines := count_lines(out)) < total:
            if proc.poll() is not None:
                raise RuntimeError(f"logferry exited with {proc.returncode} at {lines} of {total}")
            if time.perf_counter() - t0 > args.timeout_secs:
                raise RuntimeError(f"timed out at {lines} of {total}")
            time.sleep(0.2)
        secs = time.perf_counter() - t0
        cpu = process_cpu_secs(proc.pid)
    finally:
        stop(proc)
    after = sim.raw_stats()
    used = api_requests(after) - api_requests(before)
    return {
        "events": total,
        "drain_secs": round(secs, 2),
        "events_per_sec": round(total / secs),
        "logferry_cpu_secs": round(cpu, 2),
        "events_per_cpu_sec": round(total / cpu) if cpu else None,
        "api_requests": used,
        "api_budget": f"{MAX_REQUESTS_PER_SEC:g}/s ({MAX_REQUESTS_PER_SEC * secs:.0f} in the drain)",
        "served": int(after["events_served"]) - int(before["events_served"]),
        "sessions_expired": int(after["sessions_expired"]) - int(before["sessions_expired"]),
    }


def replay_after_restart(
    sim: SimProcess, workdir: Path, total: int, args: argparse.Namespace
) -> dict[str, Any]:
    """SIGKILL logferry part-way through the backlog, restart it, count what Falcon serves again."""
    cfg_path = workdir / "logferry.yaml"
    env = {**os.environ, SECRET_ENV: sim.credentials["client_secret"]}
    out = workdir / "out.ndjson"
    proc = start_logferry(cfg_path, env, workdir / "logferry.log")
    try:
        while count_lines(out) < total // 3:
            if proc.poll() is not None:
                raise RuntimeError(f"logferry exited with {proc.returncode}")
            time.sleep(0.05)
    finally:
        stop(proc, signal.SIGKILL)
    at_kill = _committed_offsets(workdir / "state.db")
    mid = sim.raw_stats()
    proc = start_logferry(cfg_path, env, workdir / "logferry.log")
    try:
        lines = count_lines(out)
        deadline = time.perf_counter() + args.timeout_secs
        while lines < total:
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"restart did not finish: {lines} of {total}")
            time.sleep(0.2)
            lines = count_lines(out)
    finally:
        stop(proc)
    end = sim.raw_stats()
    starts = end["stream_starts"][len(mid["stream_starts"]) :]
    missing = sum(args.events - offset for offset in at_kill.values())
    served_after = int(end["events_served"]) - int(mid["events_served"])
    return {
        "committed_at_kill": at_kill,
        "resumed_at": {f"partition-{p}": o for p, o in starts[: args.partitions]},
        "missing_at_kill": missing,
        "served_after_restart": served_after,
        "served_again": served_after - missing,
        "full_replay_would_serve": total,
        "lines_in_file": count_lines(out),
    }


def _committed_offsets(db: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT cursor FROM cursors WHERE source='falcon'").fetchone()
    lanes: dict[str, Any] = json.loads(row[0])["lanes"] if row else {}
    return {name: int(c["offset"]) for name, c in lanes.items()}


def baseline(sim: SimProcess, partitions: int, per_partition: int, workdir: Path) -> dict[str, Any]:
    http = requests.Session()
    # Per request: REQUESTS_CA_BUNDLE would override a session-wide verify (psf/requests#3829).
    ca = sim.ca_file
    token = http.post(f"{sim.url}/oauth2/token", data=sim.credentials, verify=ca, timeout=30).json()[
        "access_token"
    ]
    resources = http.get(
        f"{sim.url}/sensors/entities/datafeed/v2",
        params={"appId": "baseline", "format": "json"},
        headers={"Authorization": f"Bearer {token}"},
        verify=ca,
        timeout=30,
    ).json()["resources"]
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    events = 0
    with (workdir / "baseline.ndjson").open("w") as out:
        for res in resources[:partitions]:
            offset = 0
            with http.get(
                res["dataFeedURL"],
                headers={"Authorization": f"Token {res['sessionToken']['token']}"},
                stream=True,
                verify=ca,
                timeout=(10, None),
            ) as r:
                for line in r.iter_lines():
                    if not line:
                        continue
                    event = json.loads(line)
                    offset = event["metadata"]["offset"]
                    out.write(json.dumps(event) + "\n")
                    out.flush()
                    events += 1
                    if offset >= per_partition:
                        break
    secs = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    return {
        "events": events,
        "secs": round(secs, 2),
        "events_per_sec": round(events / secs),
        "cpu_secs": round(cpu, 2),
        "events_per_cpu_sec": round(events / cpu) if cpu else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000, help="backlog events per partition")
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--output-format", choices=["siem", "raw"], default="siem")
    p.add_argument("--batch-events", type=int, default=1000, help="the source's batch_events")
    p.add_argument(
        "--baseline-events", type=int, default=50_000, help="events per partition for the baseline"
    )
    p.add_argument("--timeout-secs", type=float, default=170.0)
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    result: dict[str, Any] = {"bench": "crowdstrike", "args": vars(args), "cpus": os.cpu_count()}
    total = args.events * args.partitions
    with tempfile.TemporaryDirectory(prefix="logferry-bench-crowdstrike-") as tmp:
        workdir = Path(tmp)
        sim_options = [
            f"--partitions={args.partitions}",
            f"--backlog-events={args.events}",
            "--keepalive-secs=5",
        ]
        sim = SimProcess("crowdstrike", sim_options, stderr_path=str(workdir / "sim.log"))
        try:
            log(f"simulator {sim.url}: {args.partitions} partitions x {args.events:,} events")
            if args.baseline_events:
                result["baseline"] = baseline(sim, args.partitions, args.baseline_events, workdir)
                log(f"baseline: {result['baseline']}")
            cpu0 = sim.cpu_secs()
            result["logferry"] = drain(sim, workdir, total, args)
            result["logferry"]["sim_cpu_secs"] = round(sim.cpu_secs() - cpu0, 2)
            log(f"logferry: {result['logferry']}")
            for stale in [*workdir.glob("state.db*"), workdir / "out.ndjson"]:
                stale.unlink(missing_ok=True)
            result["restart"] = replay_after_restart(sim, workdir, total, args)
            log(f"restart: {result['restart']}")
        finally:
            sim.close()
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
