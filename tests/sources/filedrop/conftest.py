"""Fixtures for the file drop sources: client keys made by OpenSSH's ssh-keygen, free ports, ESA log
files, and the OpenSSH ``scp``/``sftp`` clients run as real subprocesses."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logferry.service import Service
from logferry.sources.filedrop.source import FileDropSource
from tests.conftest import running, wait_for

SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR"]  # fmt: skip


@dataclass(frozen=True)
class Key:
    private: Path
    authorized_keys: Path


def make_key(directory: Path, name: str) -> Key:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private)], check=True
    )
    authorized = directory / f"{name}_authorized_keys"
    shutil.copy(private.with_suffix(".pub"), authorized)
    return Key(private, authorized)


@pytest.fixture
def key(tmp_path: Path) -> Key:
    return make_key(tmp_path / "keys", "esa1")


@dataclass(frozen=True)
class Result:
    code: int
    out: str


async def run_client(*argv: str, stdin: bytes | None = None) -> Result:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout=30)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(errors="replace"))


async def scp(key: Path, port: int, local: Path, remote: str, user: str = "esa1") -> Result:
    """OpenSSH ``scp -O`` (the legacy SCP protocol, as the appliance's SCP push speaks it)."""
    return await run_client(
        "scp", "-O", "-i", str(key), "-P", str(port), *SSH_OPTS, str(local), f"{user}@127.0.0.1:{remote}"
    )


async def sftp(key: Path, port: int, commands: str, user: str = "esa1", *extra: str) -> Result:
    """OpenSSH ``sftp -b -``: the batch stops (exit 1) at the first failing command."""
    return await run_client(
        "sftp", "-b", "-", "-i", str(key), "-P", str(port), *SSH_OPTS, *extra, f"{user}@127.0.0.1",
        stdin=commands.encode(),
    )  # fmt: skip


def esa_lines(count: int, first_mid: int = 1) -> list[str]:
    """Text mail log lines (file variant), one message lifecycle line each, MIDs counting up."""
    return [
        f"Mon Mar 17 18:{(i // 60) % 60:02d}:{i % 60:02d} 2025 Info: MID {first_mid + i} ICID {7 + i} "
        f"From: <sender{i}@example.com>"
        for i in range(count)
    ]


def write_log(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


def drop_config(tmp_path: Path, port: int, key: Key, **source: Any) -> dict[str, Any]:
    """An ``ssh_drop`` source for user esa1 feeding a file sink at ``tmp_path / "out.ndjson"``."""
    return {
        "sources": {
            "esa": {
                "type": "ssh_drop",
                "listen": f"127.0.0.1:{port}",
                "users": {"esa1": str(key.authorized_keys)},
                "scan_interval_secs": 0.5,
                **source,
            }
        },
        "sinks": {
            "out": {
                "type": "file",
                "inputs": ["esa"],
                "path": str(tmp_path / "out.ndjson"),
                "rotate_max_bytes": 0,
            }
        },
    }


@asynccontextmanager
async def drop_running(config: dict[str, Any], base_dir: Path) -> AsyncIterator[Service]:
    """``running()``, returning once every SSH drop listens (its source starts it in the background)."""
    async with running(config, base_dir) as svc:
        for src in svc.sources.values():
            server = src.server if isinstance(src, FileDropSource) else None
            if server is not None:
                await wait_for(lambda s=server: s.listening)  # type: ignore[misc]
        yield svc
