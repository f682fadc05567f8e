"""Drain a 7-day Office 365 backlog for 3 tenants x 5 content types, measured against the budget.

    python bench/o365.py --json                       # 20,100 blobs, 1,005,000 records: ~4 minutes
    python bench/o365.py --blobs-per-lane 20 --json   # smoke run, ~10 s
    python bench/o365.py --latency-secs 0.5 --concurrency 16 --json   # slow answers, more downloads at once

What runs, each in its own process, all importing logferry from this checkout's src/:

* ``logferry sim o365 --tls`` with 3 tenants, every subscription enabled, no live content, a backlog
  of 7 days less 20 minutes (the source clamps its lookback to 7 days less 10 minutes, so every
  blob is collectable) holding ``--blobs-per-lane`` blobs per tenant and content type of
  ``--records-per-blob`` records, each request answered after ``--latency-secs``, 2,000 requests per
  minute per tenant and PublisherIdentifier (over it: ``403 AF429``, counted as ``throttled``);
* ``logferry run -c <config>`` (the product as users run it): an ``office365`` source with every
  tenant, 24 h windows, a 7-day initial lookback, no listing lag (the backlog is complete), the
  product's defaults otherwise (budget 1,900 requests/min per tenant, 8 downloads at once per tenant)
  → a ``file`` sink without rotation; state in a temp dir (``--workdir`` keeps it).

Before logferry starts, a sequential client shaped like the reference Azure Function
(shared/specs/office365.md §A10.2: list a window, follow NextPageUri, then GET each blob one by one
and keep every record in one list) drains a slice of one tenant's content (``--baseline-blobs``)
from the same simulator, with its own PublisherIdentifier so the two never share a quota.

The run ends when the sink's file holds as many lines as the backlog has unique records (computed
from the simulator's deterministic timeline, ``logferry.sim.o365_content``); then the file is read
back and must hold that many distinct Ids, each once, including every record of each lane's first
and last blob (``--verify-all``: of every blob). Per tenant, requests/min comes from the simulator's
``requests_by_tenant`` (admitted requests only), sampled every ``--sample-secs``: ``rpm_active``
over the tenant's span from its first to its last request, ``rpm_middle`` over the middle half of
that span (the steady rate), ``rpm_drain`` over the whole drain from process start, ``peak_60s``
the most requests in any 60 s (what Microsoft counts). Peak RSS is the logferry process's
``VmHWM`` when the drain completed (``ru_maxrss`` of the reaped child is reported too); CPU per
thread and bytes written come from /proc. The last stdout line is one JSON object (``--json``);
the rest goes to stderr.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests
import yaml

# bench/ is not a package: its modules are imported from the script's directory.
from baseline import fetch_token
from prometheus_client.parser import text_string_to_metric_families
from simproc import SimProcess, process_cpu_secs, stat_cpu_secs

# This checkout's src/ goes first on the path of this process and (see main) of both child processes,
# so the benchmark measures this tree even where an editable install points at another one.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from logferry.sim.o365_content import CONTENT_TYPES, BlobRef, ContentTimeline
from logferry.sim.peers import free_port
from logferry.sources.o365.config import DEFAULT_REQUESTS_PER_MINUTE, Office365Config

SRC = Path(__file__).resolve().parent.parent / "src"
DAY = 86_400.0
#: The source starts 7 days less 600 s back; 1,200 s keeps the oldest blob inside its first window.
BACKLOG_SECS = 7 * DAY - 1200
SEED = 1
SIM_REQUESTS_PER_MINUTE = 2000  # Microsoft's baseline per tenant; the simulator answers AF429 over it
DEFAULT_CONCURRENCY: int = Office365Config.model_fields["concurrency"].default
DUPLICATE_RATIO = 0.2  # the simulator's default: a fifth of the blobs repeat a record of the previous one
TARGET_BUDGET_SHARE = 0.9
SOURCE = "o365"
SINK = "out"
SECRET_ENV = "LOGFERRY_BENCH_O365_SECRET"
#: The sequential baseline's own quota key, so it never spends logferry's.
BASELINE_PUBLISHER = "00000000-0000-4000-8000-0000000be11c"
STALL_SECS = 120.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class BenchFailed(Exception):
    """The run did not deliver exactly what it should have; the numbers would be meaningless."""


# --- the backlog ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """What the simulator serves: blob indices per (tenant, content type), as it computes them."""

    tenants: list[str]
    interval_secs: float
    records_per_blob: int
    lanes: dict[tuple[str, str], range]

    @property
    def blobs(self) -> int:
        return sum(len(r) for r in self.lanes.values())

    @property
    def unique_records(self) -> int:
        # Every blob has records_per_blob fresh Ids; the occasional repeat is of the previous blob.
        return self.blobs * self.records_per_blob

    def timeline(self) -> ContentTimeline:
        return _timeline(self.interval_secs, self.records_per_blob)


def _timeline(interval_secs: float, records_per_blob: int) -> ContentTimeline:
    # The simulator's origin is its start less the backlog. Here the origin is 0 and "now" is the
    # backlog's length: the same blobs, and the same records (they depend only on seed, tenant,
    # content type and blob index; only CreationTime depends on the origin).
    return ContentTimeline(
        seed=SEED,
        origin=0.0,
        interval_secs=interval_secs,
        records_per_blob=records_per_blob,
        duplicate_ratio=DUPLICATE_RATIO,
        expired_ratio=0.0,
        retention_secs=7 * DAY,
    )


def plan_backlog(tenants: list[str], blobs_per_lane: int, records_per_blob: int) -> Backlog:
    """Pick the blob interval so every lane holds ``blobs_per_lane`` blobs, none near an edge.

    With ``interval = backlog / (n - 0.1)`` the content types' phase offsets (interval x i/5) put
    each lane's newest blob 0.1-0.9 intervals before the simulator's start: never on the boundary,
    where a rounding difference between this process and the simulator could add or drop a blob.
    """
    interval = BACKLOG_SECS / (blobs_per_lane - 0.1)
    timeline = _timeline(interval, records_per_blob)
    lanes: dict[tuple[str, str], range] = {}
    for tenant in tenants:
        for ct in CONTENT_TYPES:
            edge = (BACKLOG_SECS - timeline.offset(ct)) / interval
            if abs(edge - round(edge)) < 0.05:
                raise BenchFailed(f"{ct}: a blob falls within 5% of an interval of the backlog's edge")
            lanes[(tenant, ct)] = timeline.blobs_between(tenant, ct, 0.0, BACKLOG_SECS, BACKLOG_SECS)
    return Backlog(tenants, interval, records_per_blob, lanes)


# --- the sequential baseline ----------------------------------------------------------------------


def run_baseline(sim: SimProcess, tenant: str, content_type: str, max_blobs: int) -> dict[str, Any]:
    """List the newest 24 h of one tenant's content type, then GET each blob one after another.

    As the reference function does (§A10.2), except for two kindnesses: every call carries a
    PublisherIdentifier (the reference downloads without one, so all its tenants would share one
    600/min pool), and one ``requests.Session`` keeps the connection alive.
    """
    token = fetch_token(sim.credentials, sim.ca_file, "https://manage.office.com/.default", tenant)
    feed = f"{sim.url}/api/v1.0/{tenant}/activity/feed"
    end = dt.datetime.now(dt.UTC)
    fmt = "%Y-%m-%dT%H:%M:%S"
    params: dict[str, str] | None = {
        "contentType": content_type,
        "startTime": (end - dt.timedelta(days=1)).strftime(fmt),
        "endTime": end.strftime(fmt),
        "PublisherIdentifier": BASELINE_PUBLISHER,
    }
    # ``verify`` goes on every call: a Session's own is overridden by REQUESTS_CA_BUNDLE.
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    events: list[dict[str, Any]] = []
    requests_made = 0
    cpu0 = _self_cpu()
    t0 = time.perf_counter()
    try:
        uris: list[str] = []
        url: str | None = f"{feed}/subscriptions/content"
        while url is not None:
            r = session.get(url, params=params, verify=sim.ca_file, timeout=60)
            requests_made += 1
            if r.status_code != 200:
                raise BenchFailed(f"baseline: listing answered {r.status_code}: {r.text[:200]}")
            uris.extend(item["contentUri"] for item in r.json())
            url = r.headers.get("NextPageUri") or r.headers.get("NextPageUrl")
            params = {"PublisherIdentifier": BASELINE_PUBLISHER}
        blobs = uris[:max_blobs]
        for uri in blobs:
            r = session.get(
                uri, params={"PublisherIdentifier": BASELINE_PUBLISHER}, verify=sim.ca_file, timeout=60
            )
            requests_made += 1
            if r.status_code != 200:
                raise BenchFailed(f"baseline: blob download answered {r.status_code}: {r.text[:200]}")
            events.extend(r.json())
        wall = time.perf_counter() - t0
        cpu = _self_cpu() - cpu0
    finally:
        session.close()
    return {
        "tenant": tenant,
        "content_type": content_type,
        "blobs": len(blobs),
        "records": len(events),
        "requests": requests_made,
        "wall_secs": round(wall, 2),
        "requests_per_minute": round(requests_made / wall * 60),
        "blobs_per_sec": round(len(blobs) / wall, 1),
        "events_per_sec": round(len(events) / wall),
        "cpu_secs": round(cpu, 2),
    }


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --- logferry -------------------------------------------------------------------------------------


def logferry_config(
    sim: SimProcess, backlog: Backlog, workdir: Path, api_port: int, args: argparse.Namespace
) -> dict[str, Any]:
    creds = sim.credentials
    source: dict[str, Any] = {
        "type": "office365",
        "api_url": sim.url,
        "authority_host": creds["authority_host"],
        "auth": {
            "type": "client_secret",
            "tenant_id": creds["tenant_id"],
            "client_id": creds["client_id"],
            "client_secret": "${env:" + SECRET_ENV + "}",
        },
        "tenants": [{"tenant_id": t} for t in backlog.tenants],
        "initial_lookback_secs": 7 * DAY,  # clamped by the source to 7 days less 10 minutes
        "window_secs": DAY,
        # The simulator's content is complete when it starts (live false). A listing lag (the product's
        # default is 120 s) would hold back blobs newer than the lag when a lane lists its last window,
        # and they would wait interval_secs for the next poll.
        "lag_secs": 0,
        "interval_secs": 3600,
        "tls": {"ca_file": sim.ca_file},
    }
    if args.requests_per_minute is not None:
        source["requests_per_minute"] = args.requests_per_minute
    if args.concurrency is not None:
        source["concurrency"] = args.concurrency
    return {
        "state": {"path": str(workdir / "state.db")},
        "api": {"address": f"127.0.0.1:{api_port}"},
        "log": {"level": "warning", "format": "text"},
        "sources": {SOURCE: source},
        "sinks": {
            SINK: {
                "type": "file",
                "inputs": [SOURCE],
                "path": str(workdir / "out.ndjson"),
                "rotate_max_bytes": 0,
            }
        },
    }


class LineCounter:
    """Counts the lines of a file that only grows, reading each byte once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = 0
        self._pos = 0

    def poll(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self._pos)
                while chunk := f.read(1 << 22):
                    self.lines += chunk.count(b"\n")
                    self._pos += len(chunk)
        except FileNotFoundError:
            pass
        return self.lines


def proc_status_kb(pid: int, key: str) -> int:
    """A ``kB`` field of /proc/PID/status (``VmHWM``: peak RSS, ``VmRSS``: current RSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def thread_cpu_secs(pid: int) -> list[float]:
    """CPU seconds of each thread of ``pid`` in creation order (the first is the main thread)."""
    tids = sorted(int(task.name) for task in Path(f"/proc/{pid}/task").iterdir())
    return [round(stat_cpu_secs(f"/proc/{pid}/task/{tid}/stat"), 2) for tid in tids]


def proc_io(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k: int(v) for k, v in (line.split(": ") for line in f)}
    except OSError:
        return {}


def scrape_metrics(port: int) -> dict[str, dict[str, float]]:
    """``/metrics`` of the running service: metric name → label string → value."""
    r = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    r.raise_for_status()
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out.setdefault(s.name, {})[labels] = s.value
    return out


def metric_total(metrics: dict[str, dict[str, float]], name: str) -> float:
    return sum(metrics.get(name, {}).values())


@dataclass(frozen=True)
class Sample:
    t: float  # seconds since logferry was launched
    by_tenant: dict[str, int]  # requests the simulator admitted per tenant since then


@dataclass
class Drain:
    secs: float
    samples: list[Sample]
    start_stats: dict[str, Any]
    end_stats: dict[str, Any]
    cpu_secs: float
    thread_cpu_secs: list[float]
    vm_hwm_mb: float
    vm_rss_mb: float
    ru_maxrss_children_mb: float
    io: dict[str, int]
    metrics: dict[str, dict[str, float]]
    exit_code: int | None
    log_lines: list[str] = field(default_factory=list)
    state_bytes: int = 0


def run_logferry(sim: SimProcess, backlog: Backlog, workdir: Path, args: argparse.Namespace) -> Drain:
    port = free_port()
    cfg_path = workdir / "logferry.yaml"
    cfg_path.write_text(yaml.safe_dump(logferry_config(sim, backlog, workdir, port, args), sort_keys=False))
    env = {**os.environ, SECRET_ENV: sim.credentials["client_secret"]}
    if args.profile:
        cmd = [sys.executable, "-m", "cProfile", "-o", args.profile, "-m", "logferry"]
    else:
        # The console script may not be on PATH in every venv; the CLI's main() is what it runs.
        cmd = [sys.executable, "-c", "from logferry.cli import main; main()"]
    cmd += ["run", "-c", str(cfg_path)]
    counter = LineCounter(workdir / "out.ndjson")
    want = backlog.unique_records
    http = requests.Session()
    start_stats = sim.raw_stats(http)
    before = start_stats.get("requests_by_tenant", {})
    samples: list[Sample] = []
    log_path = workdir / "logferry.log"
    with log_path.open("wb") as log_file:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    try:
        last_progress, last_key = 0.0, (-1, -1)
        while True:
            time.sleep(args.sample_secs)
            now = time.perf_counter() - t0
            st = sim.raw_stats(http)
            by_tenant = {t: int(v) - int(before.get(t, 0)) for t, v in st["requests_by_tenant"].items()}
            lines = counter.poll()
            samples.append(Sample(now, by_tenant))
            if lines >= want:
                break
            if proc.poll() is not None:
                raise BenchFailed(f"logferry exited with {proc.returncode} at {lines:,} of {want:,} records")
            key = (lines, sum(by_tenant.values()))
            if key != last_key:
                last_progress, last_key = now, key
            elif now - last_progress > STALL_SECS:
                raise BenchFailed(f"no progress for {STALL_SECS:.0f}s at {lines:,} of {want:,} records")
            if now > args.timeout_secs:
                raise BenchFailed(
                    f"timed out after {args.timeout_secs:.0f}s at {lines:,} of {want:,} records"
                )
            if len(samples) % max(1, round(10 / args.sample_secs)) == 0:
                total = sum(by_tenant.values())
                throttled = st["throttled"]
                log(f"  {now:6.1f}s: {lines:>10,} / {want:,} records, {total:,} requests, {throttled} AF429")
        secs = time.perf_counter() - t0
        cpu = process_cpu_secs(proc.pid)
        threads = thread_cpu_secs(proc.pid)
        hwm = proc_status_kb(proc.pid, "VmHWM") / 1024
        rss = proc_status_kb(proc.pid, "VmRSS") / 1024
        io = proc_io(proc.pid)
        metrics = scrape_metrics(port)
        end_stats = sim.raw_stats(http)
    except BenchFailed:
        tail = log_path.read_text(errors="replace").splitlines()[-20:]
        log("logferry's log, last lines:\n" + "\n".join(tail) if tail else "logferry logged nothing")
        raise
    finally:
        http.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    # Only logferry has been reaped so far (the simulator still runs): its ru_maxrss, in kB on Linux.
    maxrss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    text = log_path.read_text(errors="replace").splitlines()
    state_bytes = sum(p.stat().st_size for p in workdir.glob("state.db*"))
    return Drain(
        secs=secs,
        samples=samples,
        start_stats=start_stats,
        end_stats=end_stats,
        cpu_secs=cpu,
        thread_cpu_secs=threads,
        vm_hwm_mb=hwm,
        vm_rss_mb=rss,
        ru_maxrss_children_mb=maxrss_children,
        io=io,
        metrics=metrics,
        exit_code=proc.returncode,
        log_lines=text,
        state_bytes=state_bytes,
    )


# --- checking and reporting -----------------------------------------------------------------------


def verify_output(path: Path, backlog: Backlog, full: bool) -> dict[str, Any]:
    """Every expected record exactly once: count and uniqueness always; the first and last blob of
    every lane by Id (or every blob with ``full``)."""
    ids: set[str] = set()
    lines = 0
    tenants_seen: set[str] = set()
    with path.open("rb") as f:
        for line in f:
            rec = orjson.loads(line)
            ids.add(rec["Id"])
            tenants_seen.add(rec["OrganizationId"])
            lines += 1
    problems: list[str] = []
    if lines != len(ids):
        problems.append(f"{lines - len(ids)} records delivered more than once")
    if len(ids) != backlog.unique_records:
        problems.append(f"{len(ids):,} unique records, expected {backlog.unique_records:,}")
    if tenants_seen != set(backlog.tenants):
        problems.append(f"records of tenants {sorted(tenants_seen)}, expected {sorted(backlog.tenants)}")
    timeline = backlog.timeline()
    checked = 0
    for (tenant, ct), ks in backlog.lanes.items():
        for k in ks if full else sorted({ks[0], ks[-1]}):
            missing = [r["Id"] for r in timeline.records(BlobRef(tenant, ct, k)) if r["Id"] not in ids]
            checked += 1
            if missing:
                problems.append(f"{tenant}/{ct} blob {k}: {len(missing)} records missing")
    if problems:
        raise BenchFailed("output check failed: " + "; ".join(problems[:10]))
    return {"lines": lines, "unique_ids": len(ids), "blobs_checked_by_id": checked}


def tenant_rates(samples: list[Sample], tenant: str, drain_secs: float, budget: float) -> dict[str, Any]:
    counts = [s.by_tenant.get(tenant, 0) for s in samples]
    times = [s.t for s in samples]
    final = counts[-1]
    first = next((i for i, c in enumerate(counts) if c > 0), 0)
    last = next((i for i, c in enumerate(counts) if c == final), len(counts) - 1)
    # Over [times[first], times[last]] exactly counts[last] - counts[first] requests were admitted.
    span = times[last] - times[first]
    rpm_active = (counts[last] - counts[first]) / span * 60 if span > 0 else float("nan")
    # The middle half of the tenant's span: the steady rate, without start-up and the last pages.
    lo = bisect.bisect_left(times, times[first] + span / 4)
    hi = bisect.bisect_left(times, times[first] + span * 3 / 4)
    mid_span = times[hi] - times[lo] if hi < len(times) else 0.0
    rpm_middle = (counts[hi] - counts[lo]) / mid_span * 60 if mid_span > 0 else float("nan")
    peak = 0
    for i, t in enumerate(times):
        j = bisect.bisect_right(times, t - 60.0) - 1  # the latest sample at least 60 s earlier
        base = counts[j] if j >= 0 else 0
        peak = max(peak, counts[i] - base)
    return {
        "requests": final,
        "first_request_by_secs": round(times[first], 1),
        "last_request_by_secs": round(times[last], 1),
        "active_secs": round(span, 1),
        "rpm_active": round(rpm_active),
        "rpm_middle": round(rpm_middle) if mid_span > 0 else None,
        "rpm_drain": round(final / drain_secs * 60),
        "budget_share_active": round(rpm_active / budget, 3),
        "budget_share_middle": round(rpm_middle / budget, 3) if mid_span > 0 else None,
        "budget_share_drain": round(final / drain_secs * 60 / budget, 3),
        "peak_60s": peak if times[-1] >= 60 else None,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tenants", type=int, default=3)
    p.add_argument(
        "--blobs-per-lane",
        type=int,
        default=1340,
        help="blobs per tenant and content type in the 7-day backlog (default %(default)s: 20,100 in all)",
    )
    p.add_argument("--records-per-blob", type=int, default=50)
    p.add_argument("--latency-secs", type=float, default=0.02, help="the simulator's time per request")
    p.add_argument(
        "--requests-per-minute",
        type=float,
        help=f"the source's budget per tenant (default: the product's, {DEFAULT_REQUESTS_PER_MINUTE:,})",
    )
    p.add_argument(
        "--list-page-size",
        type=int,
        default=100,
        help="content items per listing page (the simulator's; Microsoft's page size is not documented)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        help=f"the source's downloads at once per tenant (default: {DEFAULT_CONCURRENCY})",
    )
    p.add_argument(
        "--baseline-blobs",
        type=int,
        default=200,
        help="blobs the sequential baseline downloads (newest 24 h of one lane at most); 0: no baseline",
    )
    p.add_argument(
        "--sample-secs", type=float, default=0.5, help="how often /sim/stats and the sink are read"
    )
    p.add_argument("--timeout-secs", type=float, default=1800.0)
    p.add_argument("--verify-all", action="store_true", help="check every blob's records by Id (slower)")
    p.add_argument(
        "--profile", metavar="PATH", help="run logferry under cProfile (main thread), stats to PATH"
    )
    p.add_argument("--workdir", metavar="DIR", help="keep config, state, output and logs here")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last stdout line")
    args = p.parse_args(argv)
    if args.blobs_per_lane < 2 or args.records_per_blob < 1 or args.tenants < 1:
        p.error("--blobs-per-lane must be at least 2, --records-per-blob and --tenants at least 1")
    return args


def code_version() -> dict[str, Any]:
    """Where the measured logferry comes from: this checkout's commit and whether src/ differs from it."""
    import logferry

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(
                ["git", "-C", str(SRC.parent), *cmd], capture_output=True, text=True, timeout=10
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "src": str(Path(logferry.__file__).resolve().parent.parent),
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "src_modified": bool(git("status", "--porcelain", "--", "src")),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Both child processes import logferry from this checkout (PYTHONPATH precedes site-packages).
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))
    version = code_version()
    if version["src"] != str(SRC):
        raise BenchFailed(f"logferry is imported from {version['src']}, not {SRC}")
    load0 = os.getloadavg()
    tmp = None if args.workdir else tempfile.TemporaryDirectory(prefix="logferry-bench-o365-")
    workdir = Path(args.workdir or (tmp.name if tmp else "."))
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in [*workdir.glob("state.db*"), workdir / "out.ndjson"]:
        stale.unlink(missing_ok=True)
    probe = plan_backlog([], args.blobs_per_lane, args.records_per_blob)
    sim_options = [
        f"--seed={SEED}",
        f"--tenants={args.tenants}",
        f"--backlog-secs={BACKLOG_SECS}",
        f"--blob-interval-secs={probe.interval_secs!r}",
        f"--records-per-blob={args.records_per_blob}",
        f"--duplicate-ratio={DUPLICATE_RATIO}",
        "--live=false",
        "--subscribed=true",
        f"--latency-secs={args.latency_secs}",
        f"--requests-per-minute={SIM_REQUESTS_PER_MINUTE}",
        f"--list-page-size={args.list_page_size}",
    ]
    sim = SimProcess("o365", sim_options, stderr_path=str(workdir / "sim.log"))
    sim_started = time.monotonic()
    try:
        backlog = plan_backlog(
            list(sim.credentials["tenant_ids"]), args.blobs_per_lane, args.records_per_blob
        )
        log(
            f"simulator: {sim.url} (pid {sim.proc.pid}); {len(backlog.tenants)} tenants x "
            f"{len(CONTENT_TYPES)} content types, {backlog.blobs:,} blobs "
            f"(one every {backlog.interval_secs:.1f}s per lane), "
            f"{backlog.unique_records:,} unique records, latency {args.latency_secs}s"
        )
        baseline = None
        if args.baseline_blobs > 0:
            baseline = run_baseline(sim, backlog.tenants[0], "Audit.Exchange", args.baseline_blobs)
            log(
                f"baseline: {baseline['blobs']} blobs, {baseline['records']:,} records in "
                f"{baseline['wall_secs']}s = {baseline['requests_per_minute']:,} requests/min, "
                f"{baseline['events_per_sec']:,} events/s"
            )
        if time.monotonic() - sim_started > 500:
            raise BenchFailed("over 500 s since the simulator started: the oldest blobs may be out of reach")
        sim_cpu0 = sim.cpu_secs()
        log("logferry: draining")
        drain = run_logferry(sim, backlog, workdir, args)
        sim_cpu = sim.cpu_secs() - sim_cpu0
        check = verify_output(workdir / "out.ndjson", backlog, args.verify_all)
    finally:
        sim.close()

    budget = args.requests_per_minute or DEFAULT_REQUESTS_PER_MINUTE
    per_tenant = {t: tenant_rates(drain.samples, t, drain.secs, budget) for t in backlog.tenants}
    end, start = drain.end_stats, drain.start_stats
    throttled = int(end["throttled"]) - int(start["throttled"])
    blobs_served = int(end["blobs_served"]) - int(start["blobs_served"])
    records_served = int(end["records_served"]) - int(start["records_served"])
    first_request = min(r["first_request_by_secs"] for r in per_tenant.values())
    requests_total = sum(r["requests"] for r in per_tenant.values())
    m = drain.metrics
    warnings = [line for line in drain.log_lines if " WARNING " in line or " ERROR " in line]
    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_start": [round(x, 2) for x in load0],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "logferry": version,
        "workload": {
            "tenants": len(backlog.tenants),
            "content_types": len(CONTENT_TYPES),
            "backlog_secs": BACKLOG_SECS,
            "blob_interval_secs": round(backlog.interval_secs, 3),
            "blobs": backlog.blobs,
            "records_per_blob": args.records_per_blob,
            "unique_records": backlog.unique_records,
            "latency_secs": args.latency_secs,
            "list_page_size": args.list_page_size,
            "sim_requests_per_minute": SIM_REQUESTS_PER_MINUTE,
            "budget_requests_per_minute": budget,
            "concurrency": args.concurrency or DEFAULT_CONCURRENCY,
        },
        "drain_secs": round(drain.secs, 1),
        "first_request_by_secs": first_request,
        "events_per_sec": round(backlog.unique_records / drain.secs),
        "events_per_sec_active": round(backlog.unique_records / (drain.secs - first_request)),
        "requests": requests_total,
        "blobs_served": blobs_served,
        "records_served": records_served,
        "duplicates_served": records_served - blobs_served * args.records_per_blob,
        "throttled": throttled,
        "per_tenant": per_tenant,
        "min_budget_share_active": min(r["budget_share_active"] for r in per_tenant.values()),
        "min_budget_share_middle": min(
            (r["budget_share_middle"] for r in per_tenant.values() if r["budget_share_middle"] is not None),
            default=None,
        ),
        "min_budget_share_drain": min(r["budget_share_drain"] for r in per_tenant.values()),
        "peak_rss_mb": round(drain.vm_hwm_mb, 1),
        "rss_at_end_mb": round(drain.vm_rss_mb, 1),
        "ru_maxrss_mb": round(drain.ru_maxrss_children_mb, 1),
        "logferry_cpu_secs": round(drain.cpu_secs, 2),
        "logferry_cpu_us_per_event": round(drain.cpu_secs / backlog.unique_records * 1e6, 1),
        # Main thread first (event loop), then the others by creation: state store, worker threads.
        "logferry_thread_cpu_secs": drain.thread_cpu_secs,
        "sim_cpu_secs": round(sim_cpu, 2),
        "logferry_write_mb": round(drain.io.get("write_bytes", 0) / 2**20, 1),
        "logferry_wchar_mb": round(drain.io.get("wchar", 0) / 2**20, 1),
        "state_db_mb": round(drain.state_bytes / 2**20, 1),
        "metrics": {
            "http_requests_by_status": {
                k: int(v) for k, v in sorted(m.get("logferry_http_requests_total", {}).items()) if v
            },
            "rate_limit_wait_secs": round(metric_total(m, "logferry_rate_limit_wait_seconds_total"), 1),
            "events_received": int(metric_total(m, "logferry_source_events_received_total")),
            "events_deduplicated": int(metric_total(m, "logferry_source_events_deduplicated_total")),
            "events_delivered": int(metric_total(m, "logferry_sink_events_delivered_total")),
            "items_skipped": int(metric_total(m, "logferry_source_items_skipped_total")),
            "backpressure_wait_secs": round(metric_total(m, "logferry_backpressure_wait_seconds_total"), 1),
        },
        "check": check,
        "log_warnings": len(warnings),
        "log_warning_samples": warnings[:5],
        "logferry_exit_code": drain.exit_code,
        "baseline": baseline,
    }
    if baseline is not None:
        tenant_rpm = per_tenant[backlog.tenants[0]]["rpm_active"]
        result["speedup_per_tenant_requests"] = round(tenant_rpm / baseline["requests_per_minute"], 2)
    result["targets_met"] = {
        "budget_share_active>=0.9": result["min_budget_share_active"] >= TARGET_BUDGET_SHARE,
        "budget_share_drain>=0.9": result["min_budget_share_drain"] >= TARGET_BUDGET_SHARE,
        "throttled==0": throttled == 0,
    }
    for tenant, r in per_tenant.items():
        log(
            f"  tenant {tenant}: {r['requests']:,} requests, {r['rpm_active']:,}/min over its "
            f"{r['active_secs']}s ({r['budget_share_active']:.1%} of {budget:,.0f}), {r['rpm_middle']}/min "
            f"in its middle half, {r['rpm_drain']:,}/min "
            f"over the drain, busiest 60 s {r['peak_60s']}"
        )
    log(
        f"drained {backlog.unique_records:,} records ({backlog.blobs:,} blobs) in {drain.secs:.1f}s = "
        f"{result['events_per_sec']:,} events/s; throttled {throttled}; peak RSS {result['peak_rss_mb']} MB; "
        f"logferry CPU {result['logferry_cpu_secs']}s, simulator CPU {result['sim_cpu_secs']}s"
    )
    result["logferry"]["changed_during_run"] = code_version() != version
    if tmp is not None:
        tmp.cleanup()
    if args.json:
        print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailed as exc:
        log(f"BENCHMARK FAILED: {exc}")
        sys.exit(1)
