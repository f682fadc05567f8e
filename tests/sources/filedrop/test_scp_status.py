"""SCP uploads are published only once the sender says the file went well.

An SCP sender streams the file's bytes, then one status byte: ``\\0`` for success, or ``\\x01`` and
a message when it could not read its own file (OpenSSH's scp then pads the data with zeros). The
tests speak the protocol over a raw asyncssh channel (``scp -t``) to send exactly that.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncssh
import pytest

from logferry.service import Service
from logferry.sim.peers import free_port
from tests.conftest import read_ndjson, wait_for
from tests.sources.filedrop.conftest import Key, drop_config, drop_running, esa_lines


def jail(svc: Service) -> Path:
    return svc.data_dir / "filedrop" / "esa" / "jail" / "esa1"


@asynccontextmanager
async def scp_sink(
    port: int, key: Key, command: str = "scp -t ."
) -> AsyncIterator[asyncssh.SSHClientProcess[bytes]]:
    """A raw ``scp -t`` session: the caller plays the sending side of the protocol."""
    async with asyncssh.connect(
        "127.0.0.1", port, username="esa1", client_keys=[str(key.private)], known_hosts=None
    ) as conn:
        proc = await conn.create_process(command, encoding=None)
        try:
            yield proc
        finally:
            proc.close()
            await proc.wait_closed()


async def response(proc: asyncssh.SSHClientProcess[bytes]) -> bytes:
    """One SCP response: ``\\0``, or a status byte and its message line."""
    first = await asyncio.wait_for(proc.stdout.readexactly(1), timeout=10)
    if first == b"\0":
        return first
    return first + await asyncio.wait_for(proc.stdout.readline(), timeout=10)


async def send_file(proc: asyncssh.SSHClientProcess[bytes], name: str, data: bytes, status: bytes) -> bytes:
    """Send one file; the receiver's answer to the final status."""
    proc.stdin.write(f"C0644 {len(data)} {name}\n".encode())
    assert await response(proc) == b"\0"
    proc.stdin.write(data + status)
    return await response(proc)


async def test_a_file_the_sender_failed_to_read_is_not_published(
    tmp_path: Path, key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    out = tmp_path / "out.ndjson"
    lines = esa_lines(3)
    data = "".join(line + "\n" for line in lines).encode()
    async with drop_running(drop_config(tmp_path, port, key), tmp_path) as svc:
        async with scp_sink(port, key) as proc:
            assert await response(proc) == b"\0"
            # What OpenSSH's scp sends when its read fails midway: zeros for the rest, then an error.
            half = data[: len(data) // 2] + b"\0" * (len(data) - len(data) // 2)
            await send_file(proc, "mail_logs.@1.s", half, b"\x01scp: mail_logs.@1.s: read error\n")
            # The same session goes on: the next file is whole and arrives.
            assert await send_file(proc, "mail_logs.@2.s", data, b"\0") == b"\0"
            proc.stdin.write_eof()
            await asyncio.wait_for(proc.wait(), timeout=10)
        await wait_for(lambda: len(read_ndjson(out)) >= 3)
        assert not (jail(svc) / "mail_logs.@1.s").exists()
        assert not any((svc.data_dir / "filedrop" / "esa" / "upload").iterdir())
    assert {r["source_file"] for r in read_ndjson(out)} == {"esa1/mail_logs.@2.s"}
    assert len(read_ndjson(out)) == 3
    discarded = [r for r in caplog.records if r.msg == "upload_discarded"]
    assert len(discarded) == 1
    assert "read error" in str(discarded[0].__dict__["fields"]["reason"])


async def test_a_session_cut_after_the_data_but_before_the_status_publishes_nothing(
    tmp_path: Path, key: Key
) -> None:
    port = free_port()
    data = "".join(line + "\n" for line in esa_lines(3)).encode()
    async with drop_running(drop_config(tmp_path, port, key, scan_interval_secs=0.2), tmp_path) as svc:
        async with scp_sink(port, key) as proc:
            assert await response(proc) == b"\0"
            proc.stdin.write(f"C0644 {len(data)} mail_logs.@1.s\n".encode())
            assert await response(proc) == b"\0"
            proc.stdin.write(data)
            uploads = svc.data_dir / "filedrop" / "esa" / "upload"
            published = jail(svc) / "mail_logs.@1.s"
            # All bytes are in; the status byte has not come.
            await wait_for(
                lambda: published.exists() or any(p.stat().st_size == len(data) for p in uploads.iterdir())
            )
            assert not published.exists()
        await wait_for(lambda: not any(uploads.iterdir()))
        assert not published.exists()
    assert read_ndjson(tmp_path / "out.ndjson") == []
