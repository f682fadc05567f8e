"""Syslog peer: rsyslogd in its own process, taking octet-counted RFC 5424 over TCP (imtcp) into a file.

The sink runs with its defaults (RFC 5424 header, JSON body, octet counting). ``arrived`` counts the
lines rsyslog has written, reading only what was appended since the last call.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

from logferry.sim.peers import free_port
from peers import Peer

_CONF = """
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imuxsock" SysSock.Use="off")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\\n")
if $inputname == "imtcp" then action(type="omfile" file="{out}" template="raw")
"""


async def _listening(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(200):
        if proc.returncode is not None:
            raise SystemExit(f"rsyslogd exited with {proc.returncode}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)  # another process: nothing to wait on but time
    raise SystemExit("rsyslogd did not start listening")


@contextlib.asynccontextmanager
async def peer(tmp: Path) -> AsyncIterator[Peer]:
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    port, out, work = free_port(), tmp / "syslog-peer.log", tmp / "rsyslog-work"
    work.mkdir(exist_ok=True)
    conf = tmp / "rsyslog.conf"
    conf.write_text(_CONF.format(work=work, port=port, out=out))
    proc = await asyncio.create_subprocess_exec(
        rsyslogd, "-n", "-f", str(conf), "-i", str(tmp / "rsyslog.pid"),
        stdout=(tmp / "rsyslog.err").open("wb"), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    seen = {"offset": 0, "lines": 0}

    def count() -> int:
        if out.exists():
            with out.open("rb") as f:
                f.seek(seen["offset"])
                data = f.read()
            seen["offset"] += len(data)
            seen["lines"] += data.count(b"\n")
        return seen["lines"]

    async def arrived() -> int:
        return await asyncio.to_thread(count)

    try:
        await _listening(port, proc)
        yield Peer({"type": "syslog", "host": "127.0.0.1", "port": port, "protocol": "tcp"}, arrived)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        await proc.wait()
