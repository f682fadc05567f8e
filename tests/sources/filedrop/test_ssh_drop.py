"""The ``ssh_drop`` source with OpenSSH's own ``scp -O`` and ``sftp`` as the clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

from logferry.service import Service
from logferry.sim.peers import free_port
from logferry.sources.filedrop.source import FileDropSource
from tests.conftest import read_ndjson, wait_for
from tests.sources.filedrop.conftest import (
    SSH_OPTS,
    Key,
    drop_config,
    drop_running,
    esa_lines,
    make_key,
    run_client,
    scp,
    sftp,
    write_log,
)


def spool(svc: Service) -> Path:
    return svc.data_dir / "filedrop" / "esa"


def jail(svc: Service, user: str = "esa1") -> Path:
    return spool(svc) / "jail" / user


def source(svc: Service) -> FileDropSource:
    src = svc.sources["esa"]
    assert isinstance(src, FileDropSource)
    return src


async def test_scp_and_sftp_uploads_arrive_once_each_with_parsed_fields(tmp_path: Path, key: Key) -> None:
    port = free_port()
    out = tmp_path / "out.ndjson"
    by_scp = write_log(tmp_path / "up" / "mail_logs.@20250317T180000.s", esa_lines(1500))
    by_sftp = write_log(tmp_path / "up" / "mail_logs.@20250317T190000.s", esa_lines(10, first_mid=5000))
    async with drop_running(drop_config(tmp_path, port, key), tmp_path) as svc:
        assert (await scp(key.private, port, by_scp, "")).code == 0
        result = await sftp(key.private, port, f"put {by_sftp}\n")
        assert result.code == 0, result.out
        await wait_for(lambda: len(read_ndjson(out)) >= 1510)
        await wait_for(lambda: not any((spool(svc) / "work").iterdir()))
        archived = sorted(p.name for p in (spool(svc) / "archive" / "esa1").iterdir())
        assert not any(jail(svc).iterdir())
    records = read_ndjson(out)
    assert len(records) == 1510
    assert len({r["mid"] for r in records}) == 1510
    first = next(r for r in records if r["mid"] == 1)
    assert first == {
        "timestamp": "2025-03-17T18:00:00Z",
        "level": "Info",
        "message": "MID 1 ICID 7 From: <sender0@example.com>",
        "event": "mail_from",
        "mid": 1,
        "icid": 7,
        "mail_from": "sender0@example.com",
        "log_name": "mail_logs",
        "source_file": "esa1/mail_logs.@20250317T180000.s",
        "line": 1,
    }
    assert archived == ["mail_logs.@20250317T180000.s", "mail_logs.@20250317T190000.s"]


async def test_a_current_file_waits_until_it_is_renamed_to_s(tmp_path: Path, key: Key) -> None:
    port = free_port()
    out = tmp_path / "out.ndjson"
    current = write_log(tmp_path / "up" / "mail_logs.@20250317T180000.c", esa_lines(3))
    async with drop_running(drop_config(tmp_path, port, key), tmp_path) as svc:
        assert (await sftp(key.private, port, f"put {current}\n")).code == 0
        await wait_for(lambda: (jail(svc) / current.name).exists())
        # Several scans pass; the '.c' file stays where it is, unread.
        await wait_for(lambda: source(svc).scans >= 3)
        assert read_ndjson(out) == []
        assert (jail(svc) / current.name).exists()
        renamed = "mail_logs.@20250317T180000.s"
        assert (await sftp(key.private, port, f"rename {current.name} {renamed}\n")).code == 0
        await wait_for(lambda: len(read_ndjson(out)) == 3)
    assert [r["source_file"] for r in read_ndjson(out)] == [f"esa1/{renamed}"] * 3


async def test_an_unknown_key_a_password_and_an_unknown_user_are_refused(tmp_path: Path, key: Key) -> None:
    port = free_port()
    other = make_key(tmp_path / "other", "intruder")
    async with drop_running(drop_config(tmp_path, port, key), tmp_path):
        wrong_key = await sftp(other.private, port, "ls\n")
        assert wrong_key.code != 0
        # Only public key login is offered at all.
        assert "Permission denied (publickey)" in wrong_key.out
        password = await sftp(
            key.private, port, "ls\n", "esa1", "-o", "PreferredAuthentications=password,keyboard-interactive"
        )
        assert password.code != 0
        assert "Permission denied" in password.out
        unknown_user = await sftp(key.private, port, "ls\n", "root")
        assert unknown_user.code != 0
        shell = await run_client(
            "ssh", "-i", str(key.private), "-p", str(port), *SSH_OPTS, "esa1@127.0.0.1", "id"
        )
        assert shell.code != 0
        assert "uid=" not in shell.out
        listing = await sftp(key.private, port, "mkdir logs\nls -la\n")
        assert listing.code == 0
        assert "Couldn't" not in listing.out
        assert "logs" in listing.out


async def test_paths_out_of_the_jail_links_reads_and_removals_are_refused(tmp_path: Path, key: Key) -> None:
    port = free_port()
    log = write_log(tmp_path / "up" / "mail_logs.@1.c", esa_lines(2))
    async with drop_running(drop_config(tmp_path, port, key), tmp_path) as svc:
        outside = spool(svc).parent
        for commands in (
            f"put {log} ../../escaped.@1.s\n",
            f"put {log} /../escaped.@1.s\n",
            f"put {log} sub/../../escaped.@1.s\n",
        ):
            result = await sftp(key.private, port, commands)
            assert result.code != 0, commands
            assert "not allowed" in result.out or "Permission denied" in result.out
        assert (await scp(key.private, port, log, "../../escaped.@1.s")).code != 0
        assert not list(tmp_path.rglob("escaped*"))

        assert (await sftp(key.private, port, f"put {log}\n")).code == 0
        for commands in (
            f"symlink {log.name} link\n",
            f"ln {log.name} hard\n",
            f"get {log.name} {tmp_path / 'back'}\n",
            f"rm {log.name}\n",
        ):
            assert (await sftp(key.private, port, commands)).code != 0, commands
        assert not (jail(svc) / "link").exists()
        assert not (tmp_path / "back").exists()
        assert (jail(svc) / log.name).exists()

        # A link an admin left in the jail is not followed out of it.
        (outside / "elsewhere").mkdir()
        (jail(svc) / "door").symlink_to(outside / "elsewhere")
        result = await sftp(key.private, port, f"put {log} door/x.@1.s\n")
        assert result.code != 0
        assert not any((outside / "elsewhere").iterdir())
    assert read_ndjson(tmp_path / "out.ndjson") == []


async def test_a_file_over_the_size_limit_fails_and_nothing_of_it_is_read(tmp_path: Path, key: Key) -> None:
    port = free_port()
    out = tmp_path / "out.ndjson"
    big = write_log(tmp_path / "up" / "mail_logs.@1.s", esa_lines(200))
    small = write_log(tmp_path / "up" / "mail_logs.@2.s", esa_lines(3, first_mid=900))
    assert big.stat().st_size > 4096 > small.stat().st_size
    async with drop_running(drop_config(tmp_path, port, key, max_file_bytes=4096), tmp_path) as svc:
        by_sftp = await sftp(key.private, port, f"put {big}\n")
        # OpenSSH's sftp prints only the status code; scp prints the server's reason.
        assert by_sftp.code != 0
        assert "Failure" in by_sftp.out
        by_scp = await scp(key.private, port, big, "")
        assert by_scp.code != 0
        assert "larger than the limit" in by_scp.out
        assert (await scp(key.private, port, small, "")).code == 0
        await wait_for(lambda: len(read_ndjson(out)) == 3)
        assert not any((spool(svc) / "upload").iterdir())
    assert {r["mid"] for r in read_ndjson(out)} == {900, 901, 902}


async def test_uploads_beyond_the_spool_quota_fail_until_files_are_read(tmp_path: Path, key: Key) -> None:
    port = free_port()
    first = write_log(tmp_path / "up" / "mail_logs.@1.c", esa_lines(30))
    second = write_log(tmp_path / "up" / "mail_logs.@2.c", esa_lines(30))
    quota = first.stat().st_size + second.stat().st_size // 2
    async with drop_running(drop_config(tmp_path, port, key, max_spool_bytes=quota), tmp_path) as svc:
        # '.c' files wait in the jail, unread, so they keep their room in the spool.
        assert (await sftp(key.private, port, f"put {first}\n")).code == 0
        await wait_for(lambda: source(svc).scans >= 2)
        result = await scp(key.private, port, second, "")
        assert result.code != 0
        assert "spool is full" in result.out
        assert (await sftp(key.private, port, f"put {second}\n")).code != 0
        assert not (jail(svc) / second.name).exists()


async def test_upload_rate_is_limited_per_connection(tmp_path: Path, key: Key) -> None:
    port = free_port()
    out = tmp_path / "out.ndjson"
    log = write_log(tmp_path / "up" / "mail_logs.@1.s", esa_lines(4000))
    size = log.stat().st_size
    rate = size // 3
    async with drop_running(drop_config(tmp_path, port, key, max_upload_bytes_per_sec=rate), tmp_path):
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert (await scp(key.private, port, log, "")).code == 0
        elapsed = loop.time() - t0
        await wait_for(lambda: len(read_ndjson(out)) == 4000)
    # One second of burst, then the rest at the rate: about two seconds for three seconds' worth.
    assert elapsed >= 1.5


async def test_an_upload_cut_off_midway_is_discarded(tmp_path: Path, key: Key) -> None:
    port = free_port()
    out = tmp_path / "out.ndjson"
    log = write_log(tmp_path / "up" / "mail_logs.@1.s", esa_lines(40000))
    later = write_log(tmp_path / "up" / "mail_logs.@2.s", esa_lines(2, first_mid=10**6))
    rate = log.stat().st_size // 20
    async with drop_running(drop_config(tmp_path, port, key, max_upload_bytes_per_sec=rate), tmp_path) as svc:
        uploads = spool(svc) / "upload"
        proc = await asyncio.create_subprocess_exec(
            "scp", "-O", "-i", str(key.private), "-P", str(port), *SSH_OPTS, str(log), "esa1@127.0.0.1:",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await wait_for(lambda: any(p.stat().st_size > rate for p in uploads.iterdir()))
        proc.kill()
        await proc.wait()
        await wait_for(lambda: not any(uploads.iterdir()))
        assert not any(jail(svc).iterdir())
        # Files are read in arrival order: once the later file is in, the cut one would be too.
        assert (await scp(key.private, port, later, "")).code == 0
        await wait_for(lambda: len(read_ndjson(out)) >= 2)
    assert {r["mid"] for r in read_ndjson(out)} == {10**6, 10**6 + 1}
