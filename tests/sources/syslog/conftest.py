"""Helpers for the syslog receiver tests: a running service with one syslog source, senders, peers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from logferry.service import Service
from logferry.sim.tls import CertBundle, make_self_signed
from logferry.sources.syslog.source import SyslogSource
from tests.conftest import read_ndjson, running, wait_for


@dataclass
class Receiver:
    service: Service
    out: Path

    @property
    def source(self) -> SyslogSource:
        src = self.service.pipeline.sources["syslog"].source
        assert isinstance(src, SyslogSource)
        return src

    @property
    def host(self) -> str:
        assert self.source.address is not None
        return self.source.address[0]

    @property
    def port(self) -> int:
        assert self.source.address is not None
        return self.source.address[1]

    def records(self) -> list[dict[str, Any]]:
        return read_ndjson(self.out)

    async def wait_records(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        await wait_for(lambda: len(self.records()) >= n, timeout=timeout)
        return self.records()

    def metric(self, key: str) -> float:
        return self.service.metrics.snapshot().get(key, 0.0)

    async def dead_letters(self) -> list[tuple[str, bytes]]:
        return [(d.reason, d.payload) for d in await self.service.pipeline.store.dead_letters(10_000)]


@asynccontextmanager
async def receiver(
    tmp_path: Path, *, sink: dict[str, Any] | None = None, **source: Any
) -> AsyncIterator[Receiver]:
    """A service with source ``syslog`` (options as given; port 0 unless ``listen`` is set) → file sink."""
    source.setdefault("protocol", "tcp")
    source.setdefault("listen", "[::1]:0" if source.pop("ipv6", False) else "127.0.0.1:0")
    source.setdefault("flush_secs", 0.05)
    out = tmp_path / "out.ndjson"
    config = {
        "sources": {"syslog": {"type": "syslog", **source}},
        "sinks": {
            "out": {"type": "file", "inputs": ["syslog"], "path": str(out), "fsync": "never", **(sink or {})}
        },
    }
    async with running(config, tmp_path) as service:
        rx = Receiver(service, out)
        await wait_for(lambda: rx.source.address is not None, timeout=10)
        yield rx


async def logger(*args: str) -> None:
    """util-linux logger, the reference syslog sender."""
    proc = await asyncio.create_subprocess_exec("logger", *args, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()


@dataclass
class TLSFiles:
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_cert: Path
    other_key: Path


def _write(bundle: CertBundle, d: Path, name: str) -> tuple[Path, Path]:
    cert, key = d / f"{name}.crt", d / f"{name}.key"
    cert.write_bytes(bundle.cert_pem)
    key.write_bytes(bundle.key_pem)
    key.chmod(0o600)
    return cert, key


def tls_files(d: Path) -> TLSFiles:
    """A localhost server certificate, a client certificate, and a second client nobody trusts."""
    server = make_self_signed("localhost", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True)
    sc, sk = _write(server, d, "server")
    cc, ck = _write(make_self_signed("sender.example"), d, "client")
    oc, ok = _write(make_self_signed("stranger.example"), d, "other")
    return TLSFiles(sc, sk, cc, ck, oc, ok)


@contextlib.contextmanager
def rsyslogd(conf: str, d: Path, listen_port: int) -> Iterator[None]:
    """rsyslogd in the foreground with ``conf``; ready when its imtcp port accepts."""
    cfg, pid = d / "rsyslog.conf", d / "rsyslog.pid"
    work = d / "rsyslog-work"
    work.mkdir(exist_ok=True)
    cfg.write_text(f'global(workDirectory="{work}")\nmodule(load="imuxsock" SysSock.Use="off")\n' + conf)
    log = (d / "rsyslog.log").open("wb")
    proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(cfg), "-i", str(pid)], stdout=log, stderr=log)
    try:
        for _ in range(200):
            if proc.poll() is not None:
                raise AssertionError(f"rsyslogd exited: {(d / 'rsyslog.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", listen_port)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("rsyslogd did not start listening")
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()
