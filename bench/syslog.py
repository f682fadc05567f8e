"""Syslog over TCP into a file: logferry (`logferry run`, syslog source → file sink) against rsyslog
(imtcp → omfile) receiving the same stream on the same machine, one after the other.

    python bench/syslog.py [--messages 500000] [--format syslog|sophos] [--fsync always|never] [--json]

Each receiver runs in its own process; this process only sends. The stream is pre-built RFC 3164
lines (`--format syslog`: a ~190-byte generic line; `sophos`: a ~700-byte SFOS 19 firewall line),
sent over one TCP connection in 256 KiB writes, LF-framed. A run ends when the receiver's output file
holds every message (logferry: NDJSON lines counted; rsyslog: lines counted); the benchmark fails
unless both wrote exactly `--messages` lines. Reported per receiver: wall seconds from the first byte
sent to the last line written, CPU seconds of the receiver's process over that interval (user +
system, every thread, from /proc), messages per CPU-second (the "per core" figure) and per wall
second. The last stdout line is one JSON object; human lines go to stderr.

logferry commits every batch to its SQLite outbox before the file sink writes it (its durability
promise); rsyslog writes straight from memory. `--fsync` sets the file sink's policy (default
`never`, like omfile's default; `always` shows what durable delivery costs).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from simproc import process_cpu_secs, stat_cpu_secs

from logferry.sim.peers import free_port

GENERIC = (
    b"<134>Nov 22 06:25:00 fw01 app[1234]: connection accepted src=10.1.2.3 dst=192.0.2.10 port=443 seq=%d"
)
SOPHOS = (
    b'<30>Nov 22 06:25:00 sophos device_name="SFW" timestamp="2026-11-22T06:25:00+0100" device_model="XG230" '
    b'device_serial_id="C01001BQC8TFFFF" log_id=010101600001 log_type="Firewall" '
    b'log_component="Firewall Rule" '
    b'log_subtype="Allowed" log_version=1 severity="Information" fw_rule_id=5 fw_rule_name="LAN to WAN" '
    b'fw_rule_section="Local rule" nat_rule_id=4 nat_rule_name="default SNAT" policy_type=1 '
    b'web_policy_id=0 ips_policy_id=0 appfilter_policy_id=0 app_name="" app_risk=0 app_technology="" '
    b'app_category="" vlan_id="" ether_type="IPv4 (0x0800)" bridge_name="" bridge_display_name="" '
    b'in_interface="PortA" in_display_interface="PortA" out_interface="PortB" out_display_interface="PortB" '
    b'src_mac=00:1a:2b:3c:4d:5e dst_mac=00:5e:4d:3c:2b:1a src_ip=10.1.2.3 src_country="" dst_ip=192.0.2.10 '
    b'dst_country="USA" protocol="TCP" src_port=51234 dst_port=443 packets_sent=12 packets_received=10 '
    b'bytes_sent=1234 bytes_received=5678 src_zone_type="LAN" src_zone="LAN" dst_zone_type="WAN" '
    b'dst_zone="WAN" connection_event="Start" connection_id=%d'
)


def stream(fmt: str, n: int) -> bytes:
    line = GENERIC if fmt == "syslog" else SOPHOS
    return b"".join(line % i + b"\n" for i in range(n))


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"receiver exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit("receiver did not listen")


def count_lines(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        try:
            with p.open("rb") as f:
                total += sum(chunk.count(b"\n") for chunk in iter(lambda f=f: f.read(1 << 20), b""))
        except FileNotFoundError:
            pass
    return total


def send(port: int, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        view = memoryview(data)
        for i in range(0, len(view), 256 * 1024):
            s.sendall(view[i : i + 256 * 1024])


def wait_lines(outputs: list[Path], n: int) -> None:
    deadline = time.monotonic() + 600
    seen = 0
    while time.monotonic() < deadline:
        seen = count_lines(outputs)
        if seen >= n:
            break
        time.sleep(0.05)
    if seen != n:
        raise SystemExit(f"receiver wrote {seen} lines for {n} messages")


def measure(
    proc: subprocess.Popen[bytes], port: int, data: bytes, n: int, warmup: bytes, w: int, outputs: list[Path]
) -> dict[str, Any]:
    wait_port(port, proc)
    if w:
        # First-touch memory is costly on some VMs (this one returns freed pages to its host): a
        # warm-up stream lets both receivers reach their steady state before anything is measured.
        send(port, warmup)
        wait_lines(outputs, w)
    time.sleep(0.5)
    cpu0 = process_cpu_secs(proc.pid)
    main0 = stat_cpu_secs(f"/proc/{proc.pid}/task/{proc.pid}/stat")
    t0 = time.perf_counter()
    send(port, data)
    sent = time.perf_counter() - t0
    wait_lines(outputs, w + n)
    wall = time.perf_counter() - t0
    cpu = process_cpu_secs(proc.pid) - cpu0
    main = stat_cpu_secs(f"/proc/{proc.pid}/task/{proc.pid}/stat") - main0
    return {
        "messages": n,
        "wall_secs": round(wall, 3),
        "send_secs": round(sent, 3),
        "cpu_secs": round(cpu, 3),
        # The main thread (logferry: the event loop) against every other thread (logferry: the
        # state store's and the file sink's writers).
        "main_thread_cpu_secs": round(main, 3),
        "messages_per_cpu_sec": round(n / cpu),
        "messages_per_wall_sec": round(n / wall),
    }


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_logferry(
    d: Path, data: bytes, n: int, warmup: bytes, w: int, fmt: str, fsync: str, batch_events: int
) -> dict[str, Any]:
    port = free_port()
    out = d / "logferry.ndjson"
    cfg = {
        "state": {"path": str(d / "state.db")},
        "api": {"address": "127.0.0.1:0"},
        "sources": {
            "rx": {"type": "syslog", "protocol": "tcp", "listen": f"127.0.0.1:{port}", "format": fmt}
        },
        "sinks": {
            "out": {
                "type": "file",
                "inputs": ["rx"],
                "path": str(out),
                "fsync": fsync,
                "rotate_max_bytes": 1 << 40,
            }
        },
    }
    path = d / "logferry.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = (d / "logferry.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "logferry", "run", "-c", str(path)], stdout=log, stderr=log
    )
    try:
        return measure(proc, port, data, n, warmup, w, [out])
    finally:
        stop(proc)
        log.close()


def run_rsyslog(d: Path, data: bytes, n: int, warmup: bytes, w: int) -> dict[str, Any]:
    port = free_port()
    out = d / "rsyslog.log"
    work = d / "rsyslog-work"
    work.mkdir()
    conf = d / "rsyslog.conf"
    conf.write_text(
        f'global(workDirectory="{work}" maxMessageSize="64k")\n'
        'module(load="imuxsock" SysSock.Use="off")\n'
        'module(load="imtcp")\n'
        f'input(type="imtcp" port="{port}" address="127.0.0.1")\n'
        f'action(type="omfile" file="{out}" template="RSYSLOG_FileFormat")\n'
    )
    log = (d / "rsyslogd.out").open("wb")
    proc = subprocess.Popen(
        ["rsyslogd", "-n", "-f", str(conf), "-i", str(d / "rsyslog.pid")], stdout=log, stderr=log
    )
    try:
        return measure(proc, port, data, n, warmup, w, [out])
    finally:
        stop(proc)
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--warmup", type=int, default=100_000, help="messages sent before measuring")
    ap.add_argument("--format", choices=["syslog", "sophos"], default="syslog")
    ap.add_argument("--fsync", choices=["always", "never"], default="never")
    ap.add_argument("--batch-events", type=int, default=5000, help="the syslog source's batch_events")
    ap.add_argument("--no-rsyslog", action="store_true", help="measure logferry only")
    ap.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    args = ap.parse_args()
    data = stream(args.format, args.messages)
    warmup = stream(args.format, args.warmup)
    result: dict[str, Any] = {
        "format": args.format,
        "fsync": args.fsync,
        "batch_events": args.batch_events,
        "bytes_per_message": round(len(data) / args.messages),
        "warmup_messages": args.warmup,
        "cpus": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory(prefix="bench-syslog-") as tmp:
        d = Path(tmp)
        (d / "lf").mkdir()
        result["logferry"] = run_logferry(
            d / "lf", data, args.messages, warmup, args.warmup, args.format, args.fsync, args.batch_events
        )
        print(f"logferry: {result['logferry']}", file=sys.stderr)
        if not args.no_rsyslog:
            (d / "rs").mkdir()
            result["rsyslog"] = run_rsyslog(d / "rs", data, args.messages, warmup, args.warmup)
            print(f"rsyslog:  {result['rsyslog']}", file=sys.stderr)
            result["cpu_ratio_logferry_vs_rsyslog"] = round(
                result["logferry"]["messages_per_cpu_sec"] / result["rsyslog"]["messages_per_cpu_sec"], 3
            )
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
