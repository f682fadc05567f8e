"""Simulators in child processes, so their CPU never counts as the measured side's.

``logferry sim NAME [--tls] [--option value …]`` prints ``listening on URL`` and then one JSON line
with the URL, credentials and the CA file to trust. ``SimProcess`` starts any simulator that way;
``SentinelProcess`` is ``logferry sim sentinel --tls --store-rows false`` with its stats parsed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import requests

__all__ = ["SentinelProcess", "SimProcess", "SimStats", "process_cpu_secs", "stat_cpu_secs"]

_START_TIMEOUT_SECS = 30.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class SimStats:
    rows: int
    requests_204: int
    requests_other: dict[str, int]
    bytes_received: int


def process_cpu_secs(pid: int) -> float:
    """User + system CPU of process ``pid`` so far (from /proc, Linux only; NaN once it is gone)."""
    return stat_cpu_secs(f"/proc/{pid}/stat")


def stat_cpu_secs(path: str) -> float:
    """User + system CPU from a /proc ``stat`` file: a process's, or a thread's (``task/TID/stat``)."""
    try:
        with open(path) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    # After the ")" that ends the command name, utime and stime are fields 12 and 13 (0-based).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


class SimProcess:
    """``logferry sim NAME`` in a child process; ``options`` are the simulator's own flags."""

    def __init__(
        self, name: str, options: Sequence[str] = (), *, tls: bool = True, stderr_path: str | None = None
    ) -> None:
        """``stderr_path``: write the simulator's stderr there instead of a pipe nobody drains
        (a long run could fill the pipe and stall the simulator)."""
        self.name = name
        # The console script may not be on PATH in every venv; the CLI's main() is what it runs.
        cmd = [sys.executable, "-c", "from logferry.cli import main; main()", "sim", name]
        if tls:
            cmd.append("--tls")
        cmd.extend(options)
        self.stderr_path = stderr_path
        if stderr_path:
            with open(stderr_path, "w") as err:  # the child keeps its own copy of the descriptor
                self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        else:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.info = self._read_announcement()
        except BaseException:
            self.close()
            raise
        self.url: str = self.info["url"]
        self.ca_file: str = self.info["ca_file"]
        self.credentials: dict[str, Any] = self.info["credentials"]

    def _read_announcement(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT_SECS
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(timeout=10)
                err = self._stderr_text()
                raise RuntimeError(f"{self.name} simulator exited before announcing itself: {err.strip()}")
            if line.startswith("{"):
                info: dict[str, Any] = orjson.loads(line)
                return info
        raise RuntimeError(f"{self.name} simulator did not announce itself in time")

    def _stderr_text(self) -> str:
        if self.proc.stderr is not None:
            return self.proc.stderr.read()
        if self.stderr_path:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        return ""

    def raw_stats(self, session: requests.Session | None = None) -> dict[str, Any]:
        """The simulator's ``/sim/stats`` document as it is."""
        get = session.get if session is not None else requests.get
        r = get(f"{self.url}/sim/stats", verify=self.ca_file, timeout=10)
        r.raise_for_status()
        stats: dict[str, Any] = r.json()
        return stats

    def cpu_secs(self) -> float:
        """User + system CPU of the simulator process so far (from /proc, Linux only)."""
        return process_cpu_secs(self.proc.pid)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


class SentinelProcess(SimProcess):
    def __init__(self, table: str) -> None:
        self.table = table
        super().__init__("sentinel", ["--store-rows", "false"])

    def stats(self) -> SimStats:
        s = self.raw_stats()
        by_status: dict[str, int] = s.get("requests_by_status", s.get("requests", {}))
        return SimStats(
            rows=int(s["rows_accepted"].get(self.table, 0)),
            requests_204=int(by_status.get("204", 0)),
            requests_other={k: v for k, v in by_status.items() if k != "204"},
            bytes_received=int(s["bytes_received"]),
        )
