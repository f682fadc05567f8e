"""The Sentinel simulator in a child process, so its CPU never counts as logferry's.

``logferry sim sentinel --tls --store-rows false`` prints ``listening on URL`` and then one JSON line
with the URL, credentials (it runs its own Entra ID simulator) and the CA file to trust.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import orjson
import requests

__all__ = ["SentinelProcess", "SimStats"]

_START_TIMEOUT_SECS = 30.0
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class SimStats:
    rows: int
    requests_204: int
    requests_other: dict[str, int]
    bytes_received: int


class SentinelProcess:
    def __init__(self, table: str) -> None:
        self.table = table
        # The console script may not be on PATH in every venv; the CLI's main() is what it runs.
        cmd = [
            sys.executable,
            "-c",
            "from logferry.cli import main; main()",
            "sim",
            "sentinel",
            "--tls",
            "--store-rows",
            "false",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.info = self._read_announcement()
        self.url: str = self.info["url"]
        self.ca_file: str = self.info["ca_file"]
        self.credentials: dict[str, Any] = self.info["credentials"]

    def _read_announcement(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + _START_TIMEOUT_SECS
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"sentinel simulator exited before announcing itself: {err.strip()}")
            if line.startswith("{"):
                info: dict[str, Any] = orjson.loads(line)
                return info
        raise RuntimeError("sentinel simulator did not announce itself in time")

    def stats(self) -> SimStats:
        r = requests.get(f"{self.url}/sim/stats", verify=self.ca_file, timeout=10)
        r.raise_for_status()
        s = r.json()
        by_status: dict[str, int] = s.get("requests_by_status", s.get("requests", {}))
        return SimStats(
            rows=int(s["rows_accepted"].get(self.table, 0)),
            requests_204=int(by_status.get("204", 0)),
            requests_other={k: v for k, v in by_status.items() if k != "204"},
            bytes_received=int(s["bytes_received"]),
        )

    def cpu_secs(self) -> float:
        """User + system CPU of the simulator process so far (from /proc, Linux only)."""
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        # After the ")" that ends the command name, utime and stime are fields 12 and 13 (0-based).
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

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
