"""The SSH drop's finer rules: nothing is replaced, hidden names are refused, the rate is per
connection, a damaged host key is reported (not replaced), ``[::]`` takes IPv4 too."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncssh
import pytest
import yaml

from logferry.service import Service
from logferry.sim.peers import free_port
from tests.conftest import read_ndjson, running, wait_for
from tests.sources.filedrop.conftest import (
    SSH_OPTS,
    Key,
    drop_config,
    drop_running,
    esa_lines,
    run_client,
    scp,
    sftp,
    write_log,
)
from tests.sources.filedrop.test_scp_status import response, send_file


def jail(svc: Service) -> Path:
    return svc.data_dir / "filedrop" / "esa" / "jail" / "esa1"


async def test_nothing_waiting_to_be_read_is_replaced(tmp_path: Path, key: Key) -> None:
    port = free_port()
    first = write_log(tmp_path / "up" / "mail_logs.@1.c", esa_lines(2, first_mid=1))
    other = write_log(tmp_path / "other" / "mail_logs.@1.c", esa_lines(2, first_mid=50))
    spare = write_log(tmp_path / "up" / "mail_logs.@2.c", esa_lines(2, first_mid=90))
    async with drop_running(drop_config(tmp_path, port, key), tmp_path) as svc:
        assert (await sftp(key.private, port, f"put {first}\n")).code == 0
        again_sftp = await sftp(key.private, port, f"put {other}\n")
        assert again_sftp.code != 0
        again_scp = await scp(key.private, port, other, "")
        assert again_scp.code != 0
        assert "already waiting to be read" in again_scp.out
        assert (await sftp(key.private, port, f"put {spare}\n")).code == 0
        # OpenSSH's sftp asks for the POSIX rename (which replaces) when the server offers it.
        renamed = await sftp(key.private, port, f"rename {spare.name} {first.name}\n")
        assert renamed.code != 0
        assert (jail(svc) / first.name).read_bytes() == first.read_bytes()
        assert (jail(svc) / spare.name).exists()
        assert not any((svc.data_dir / "filedrop" / "esa" / "upload").iterdir())


async def test_hidden_names_are_refused_anywhere_in_a_path(tmp_path: Path, key: Key) -> None:
    port = free_port()
    log = write_log(tmp_path / "up" / "mail_logs.@1.c", esa_lines(1))
    hidden_dir = tmp_path / "tree" / ".hidden"
    write_log(hidden_dir / "mail_logs.@2.s", esa_lines(1))
    async with drop_running(drop_config(tmp_path, port, key), tmp_path) as svc:
        for commands in ("mkdir .hid\n", f"put {log} .zz\n", f"mkdir ok\nput {log} ok/.x/mail_logs.@1.s\n"):
            result = await sftp(key.private, port, commands)
            assert result.code != 0, commands
        assert (await sftp(key.private, port, f"put {log}\n")).code == 0
        assert (await sftp(key.private, port, f"rename {log.name} .zz\n")).code != 0
        recursive = await run_client(
            "scp",
            "-O",
            "-r",
            "-i",
            str(key.private),
            "-P",
            str(port),
            *SSH_OPTS,
            str(hidden_dir),
            "esa1@127.0.0.1:",
        )
        assert recursive.code != 0
        assert "names starting with '.' are not accepted" in recursive.out
        found = sorted(p.relative_to(jail(svc)).as_posix() for p in jail(svc).rglob("*"))
        assert found == ["mail_logs.@1.c", "ok"]


async def test_the_rate_limit_holds_for_a_connection_however_many_channels_it_opens(
    tmp_path: Path, key: Key
) -> None:
    port = free_port()
    out = tmp_path / "out.ndjson"
    data = "".join(line + "\n" for line in esa_lines(2000)).encode()
    rate = len(data)
    cfg = drop_config(tmp_path, port, key, max_upload_bytes_per_sec=rate)
    async with (
        drop_running(cfg, tmp_path),
        asyncssh.connect(
            "127.0.0.1", port, username="esa1", client_keys=[str(key.private)], known_hosts=None
        ) as conn,
    ):

        async def channel(name: str) -> None:
            proc = await conn.create_process("scp -t .", encoding=None)
            assert await response(proc) == b"\0"
            assert await send_file(proc, name, data, b"\0") == b"\0"
            proc.stdin.write_eof()
            await asyncio.wait_for(proc.wait(), timeout=30)

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        # Three channels on one connection: 3 s worth of bytes, 1 s of burst, so about 2 s. Each
        # channel alone would be within its own burst (no wait at all).
        await asyncio.gather(*(channel(f"mail_logs.@{i}.s") for i in range(3)))
        elapsed = loop.time() - t0
        await wait_for(lambda: len(read_ndjson(out)) >= 6000)
    assert elapsed >= 1.5


async def test_a_damaged_host_key_is_reported_with_the_fix_and_kept(tmp_path: Path, key: Key) -> None:
    port = free_port()
    cfg = drop_config(tmp_path, port, key, stale_after_secs=0.5)
    # The data dir is where the state store is: tmp_path.
    host_key = tmp_path / "filedrop" / "esa" / "ssh_host_ed25519_key"
    host_key.parent.mkdir(parents=True)
    host_key.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n")
    async with running(cfg, tmp_path) as svc:
        rt = svc.pipeline.runtimes["esa"]
        await wait_for(lambda: rt.last_error is not None)
        check = await svc.sources["esa"].check()
    assert f"host key file {host_key} is unreadable" in (rt.last_error or "")
    assert "delete it to generate a new one" in (rt.last_error or "")
    assert not check.ok
    assert "delete it to generate a new one" in check.message
    assert host_key.read_bytes() == b"-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n"


async def test_listening_on_all_ipv6_addresses_takes_ipv4_too(tmp_path: Path, key: Key) -> None:
    port = free_port()
    out = tmp_path / "out.ndjson"
    log = write_log(tmp_path / "up" / "mail_logs.@1.s", esa_lines(2))
    cfg = drop_config(tmp_path, port, key, listen=f"[::]:{port}")
    async with drop_running(cfg, tmp_path):
        # scp() connects to 127.0.0.1: IPv4.
        result = await scp(key.private, port, log, "")
        assert result.code == 0, result.out
        await wait_for(lambda: len(read_ndjson(out)) >= 2)


async def test_an_upload_is_on_disk_before_it_is_published(tmp_path: Path, key: Key) -> None:
    # Seen from the outside with strace: the file's data is fsynced before it appears under its
    # name, and the directory after, so an upload acknowledged to the sender survives a power cut.
    port = free_port()
    out = tmp_path / "out.ndjson"
    cfg = drop_config(tmp_path, port, key)
    cfg["state"] = {"path": str(tmp_path / "state.db")}
    cfg["api"] = {"address": "127.0.0.1:0"}
    cfg_path = tmp_path / "logferry.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    trace = tmp_path / "strace.txt"
    log = tmp_path / "run.log"
    log_file = log.open("ab")
    proc = await asyncio.create_subprocess_exec(
        "strace", "-f", "-qq", "-y", "-o", str(trace), "-e", "trace=fsync,fdatasync,link,linkat,rename,renameat,renameat2",
        sys.executable, "-m", "logferry", "run", "-c", str(cfg_path),
        stdout=log_file, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    log_file.close()
    upload = write_log(tmp_path / "up" / "mail_logs.@1.s", esa_lines(3))
    try:

        async def uploaded() -> bool:
            return (await scp(key.private, port, upload, "")).code == 0

        await wait_for(uploaded, timeout=60, interval=0.3)
        await wait_for(lambda: len(read_ndjson(out)) >= 3)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), timeout=30)
    calls = trace.read_text().splitlines()
    jail_dir = str(tmp_path / "filedrop" / "esa" / "jail" / "esa1")
    # link(tmp, final) or rename(tmp, final): the call that makes the upload appear.
    published = [i for i, c in enumerate(calls) if f'"{jail_dir}/mail_logs.@1.s"' in c]
    assert published, "\n".join(calls)
    tmp = calls[published[0]].split('"')[1]
    data_synced = [i for i, c in enumerate(calls) if c.split()[1].startswith("fsync(") and f"<{tmp}>" in c]
    dir_synced = [
        i for i, c in enumerate(calls) if c.split()[1].startswith("fsync(") and f"<{jail_dir}>" in c
    ]
    assert data_synced and data_synced[0] < published[0], "\n".join(calls)
    assert any(i > published[0] for i in dir_synced), "\n".join(calls)


async def test_of_two_uploads_racing_to_one_name_the_second_fails(tmp_path: Path, key: Key) -> None:
    # Both opened before either closed, so the check at open passes for both: the publish itself
    # must refuse to replace.
    port = free_port()
    async with drop_running(drop_config(tmp_path, port, key), tmp_path) as svc:
        async with asyncssh.connect(
            "127.0.0.1", port, username="esa1", client_keys=[str(key.private)], known_hosts=None
        ) as conn, conn.start_sftp_client() as client:  # fmt: skip
            first = await client.open("mail_logs.@1.c", "wb")
            second = await client.open("mail_logs.@1.c", "wb")
            await first.write(b"first\n")
            await second.write(b"second\n")
            await first.close()
            with pytest.raises(asyncssh.SFTPFailure, match="already waiting to be read"):
                await second.close()
        assert (jail(svc) / "mail_logs.@1.c").read_bytes() == b"first\n"
        assert not any((svc.data_dir / "filedrop" / "esa" / "upload").iterdir())
