"""Benchmark: drain a Duo log backlog at Duo's request pacing, against the simulator in its own process.

Duo allows about 2 requests a minute per log endpoint and answers 429/42901, with no hint of when
to return, beyond that (specs/duo.md §5). Draining is slow by design, so what matters is how
well the budget is used: requests spent against the budget, events per request, 429s provoked.

logferry runs in this process (the ``duo`` source, four log types, file sink). The baseline
is what a script on Duo's own client does: ``duo_client.Admin.get_authentication_log`` in a loop
over ``next_offset`` with no pacing of its own, relying on the SDK's built-in 429 back-off
(1, 2, 4 … 32 s). It runs at the same time in a thread, against a second simulator process with
the same backlog and limits (its own budget), on the authentication log only (one kindness: it
passes ``maxtime = now - 2 min``; the SDK's default ``maxtime = now`` gets nothing from Duo).

``--scale`` multiplies both the simulators' limit and logferry's pacing (default 2: 4 requests
a minute per endpoint) so a run takes about 1.5 minutes; ``--scale 1`` is Duo's real pacing
(about 3 minutes). The backlog is chosen to need more pages than one minute's budget, which is
where pacing and blind retrying part ways.

    python bench/duo.py --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duo_client  # type: ignore[import-untyped]
from simproc import SimProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from logferry.config.loader import parse_config
from logferry.connectors import load_builtin
from logferry.service import Service

DUO_REQUESTS_PER_MINUTE = 2  # per log endpoint, Duo staff (duo_client_python#101)
# Trust Monitor is left out: logferry asks it for at most 200 records a request (its maximum is not
# published), so its drain says nothing new about pacing and would take five times as long.
LOG_TYPES = ("authentication", "administrator", "telephony", "activity")
PATHS = {
    "authentication": "/admin/v2/logs/authentication",
    "administrator": "/admin/v1/logs/administrator",
    "telephony": "/admin/v2/logs/telephony",
    "activity": "/admin/v2/logs/activity",
}
SECRET_ENV = "LOGFERRY_BENCH_DUO_SKEY"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as f:
        return sum(1 for _ in f)


async def run_logferry(sim: SimProcess, rpm: float, total: int, workdir: Path) -> dict[str, Any]:
    creds = sim.credentials
    os.environ[SECRET_ENV] = creds["skey"]
    out = workdir / "out.ndjson"
    raw = {
        "state": {"path": str(workdir / "state.db")},
        "api": {"enabled": False},
        "sources": {
            "duo": {
                "type": "duo",
                "host": creds["host"],
                "ikey": creds["ikey"],
                "skey": "${env:" + SECRET_ENV + "}",
                "requests_per_minute": rpm,
                "initial_lookback_secs": 2 * 3600,
                "window_secs": 3 * 3600,
                "log_types": list(LOG_TYPES),
                "tls": {"ca_file": sim.ca_file},
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["duo"], "path": str(out), "rotate_max_bytes": 0}},
    }
    service = Service(parse_config(raw, workdir))
    before = sim.raw_stats()
    t0 = time.perf_counter()
    await service.start()
    try:
        while count_lines(out) < total:
            if time.perf_counter() - t0 > 600:
                raise RuntimeError(f"logferry stalled at {count_lines(out)} of {total} events")
            await asyncio.sleep(0.2)
        drain = time.perf_counter() - t0
    finally:
        await service.stop(grace_secs=5.0)
    after = sim.raw_stats()
    endpoints: dict[str, Any] = {}
    for kind in LOG_TYPES:
        path = PATHS[kind]
        used = after["endpoint_requests"].get(path, 0) - before["endpoint_requests"].get(path, 0)
        limited = after["rate_limited"].get(path, 0) - before["rate_limited"].get(path, 0)
        served = after["served"].get(kind, 0) - before["served"].get(kind, 0)
        # The budget in the drain time: one request at once, then one per 60/rpm seconds.
        budget = 1 + int(drain * rpm / 60.0)
        endpoints[kind] = {
            "requests": used,
            "rate_limited_429": limited,
            "budget": budget,
            "budget_used": round(used / budget, 3),
            "events_per_request": round(served / max(1, used - limited), 1),
        }
    return {
        "events": count_lines(out),
        "drain_secs": round(drain, 1),
        "events_per_sec": round(total / drain, 1),
        "requests_per_minute_per_endpoint": rpm,
        "endpoints": endpoints,
    }


def run_baseline(sim: SimProcess, expected: int) -> dict[str, Any]:
    creds = sim.credentials
    port = int(creds["host"].rsplit(":", 1)[1])
    client = duo_client.Admin(creds["ikey"], creds["skey"], "localhost", ca_certs=sim.ca_file, port=port)
    maxtime = int(time.time() * 1000) - 120_000
    mintime = maxtime - 3 * 3600 * 1000
    before = sim.raw_stats()
    events = 0
    error = None
    offset: Any = None
    t0 = time.perf_counter()
    while True:
        try:
            resp = client.get_authentication_log(
                api_version=2,
                mintime=mintime,
                maxtime=maxtime,
                limit="1000",
                sort="ts:asc",
                next_offset=offset,
            )
        except RuntimeError as exc:  # the SDK gives up after its 32 s back-off step
            error = str(exc)
            break
        events += len(resp["authlogs"])
        offset = resp["metadata"]["next_offset"]
        if not offset:
            break
    drain = time.perf_counter() - t0
    after = sim.raw_stats()
    path = PATHS["authentication"]
    used = after["endpoint_requests"].get(path, 0) - before["endpoint_requests"].get(path, 0)
    limited = after["rate_limited"].get(path, 0) - before["rate_limited"].get(path, 0)
    return {
        "log_type": "authentication",
        "events": events,
        "complete": events == expected and error is None,
        "error": error,
        "drain_secs": round(drain, 1),
        "events_per_sec": round(events / drain, 1) if drain else None,
        "requests": used,
        "rate_limited_429": limited,
        "events_per_request": round(events / max(1, used - limited), 1),
    }


async def both(sims: list[SimProcess], rpm: float, per_type: int, workdir: Path) -> dict[str, Any]:
    """logferry on the first simulator and, at the same time, the baseline on the second."""
    ours = run_logferry(sims[0], rpm, len(LOG_TYPES) * per_type, workdir)
    if len(sims) == 1:
        return {"logferry": await ours}
    theirs = asyncio.to_thread(run_baseline, sims[1], per_type)
    lf, base = await asyncio.gather(ours, theirs)
    return {"logferry": lf, "baseline_duo_client": base}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events-per-type", type=int, default=6000, help="backlog of each log")
    parser.add_argument("--scale", type=float, default=2.0, help="multiply Duo's 2 requests/min per endpoint")
    parser.add_argument("--no-baseline", action="store_true", help="skip the duo_client baseline")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()
    rpm = DUO_REQUESTS_PER_MINUTE * args.scale
    options = [
        "--backlog-events", str(args.events_per_type), "--backlog-secs", "3600", "--live-rate", "0",
        "--requests-per-minute", str(int(rpm)),
    ]  # fmt: skip
    load_builtin()
    sims = [SimProcess("duo", options) for _ in range(1 if args.no_baseline else 2)]
    try:
        total = len(LOG_TYPES) * args.events_per_type
        log(f"draining {total} events at {rpm:g} requests/min per endpoint")
        with tempfile.TemporaryDirectory() as tmp:
            result = asyncio.run(both(sims, rpm, args.events_per_type, Path(tmp)))
        result.update(backlog_events=total, scale=args.scale)
    finally:
        for sim in sims:
            sim.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        lf = result["logferry"]
        print(f"logferry: {lf['events']} events in {lf['drain_secs']} s ({lf['events_per_sec']}/s)")
        for kind, e in lf["endpoints"].items():
            print(
                f"  {kind}: {e['requests']} requests of {e['budget']} budget, {e['rate_limited_429']} x 429"
            )
        if "baseline_duo_client" in result:
            print(f"baseline: {result['baseline_duo_client']}")


if __name__ == "__main__":
    main()
