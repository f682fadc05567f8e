"""``ssh_drop`` across restarts: the same host key, and every line exactly once through SIGKILLs."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from logferry.sim.peers import free_port
from logferry.sinks.file import NDJSON_LIMITS
from tests.conftest import read_ndjson, start_logferry, wait_for
from tests.sources.filedrop.conftest import (
    Key,
    drop_config,
    drop_running,
    esa_lines,
    run_client,
    scp,
    write_log,
)

KILLS = 3
FILES = 3
LINES = 30000


async def keyscan(port: int) -> str:
    result = await run_client("ssh-keyscan", "-t", "ed25519", "-p", str(port), "127.0.0.1")
    assert result.code == 0, result.out
    return "".join(line for line in result.out.splitlines(keepends=True) if not line.startswith("#"))


async def test_host_key_is_made_once_and_kept_across_restarts(
    tmp_path: Path, key: Key, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="logferry")
    port = free_port()
    seen = []
    for _ in range(2):
        async with drop_running(drop_config(tmp_path, port, key), tmp_path) as svc:
            seen.append(await keyscan(port))
            pub = (svc.data_dir / "filedrop" / "esa" / "ssh_host_ed25519_key.pub").read_text().split()
    assert seen[0] == seen[1]
    assert seen[0].split()[1:3] == pub[:2]
    assert oct((tmp_path / "filedrop" / "esa" / "ssh_host_ed25519_key").stat().st_mode & 0o777) == "0o600"
    logged = [r.__dict__["fields"] for r in caplog.records if r.msg == "ssh_drop_listening"]
    assert len(logged) == 2
    assert logged[0]["host_key_fingerprint"] == logged[1]["host_key_fingerprint"]
    assert str(logged[0]["host_key_fingerprint"]).startswith("SHA256:")


async def test_sigkill_while_reading_loses_no_line_and_reads_no_file_twice(tmp_path: Path, key: Key) -> None:
    port = free_port()
    out = tmp_path / "out.ndjson"
    cfg: dict[str, Any] = drop_config(tmp_path, port, key)
    cfg["state"] = {"path": str(tmp_path / "state.db")}
    cfg["api"] = {"address": "127.0.0.1:0"}
    cfg_path = tmp_path / "logferry.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    log = tmp_path / "run.log"
    files = [
        write_log(
            tmp_path / "up" / f"mail_logs.@2025031718{i:02d}00.s", esa_lines(LINES, first_mid=i * LINES + 1)
        )
        for i in range(FILES)
    ]
    rng = random.Random(int(os.environ.get("LOGFERRY_CRASH_SEED", "5")))

    proc = await start_logferry(cfg_path, log)
    for f in files:

        async def uploaded(f: Path = f) -> bool:
            return (await scp(key.private, port, f, "")).code == 0

        await wait_for(uploaded, timeout=30, interval=0.2)
    fingerprint = (tmp_path / "filedrop" / "esa" / "ssh_host_ed25519_key.pub").read_text()
    for _ in range(KILLS):
        # Kill once this run has made progress, at a random moment after it.
        before = out.stat().st_size if out.exists() else 0
        await wait_for(lambda b=before: out.exists() and out.stat().st_size > b, timeout=30)  # type: ignore[misc]
        await asyncio.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL
        proc = await start_logferry(cfg_path, log)
    try:
        await wait_for(lambda: len({r["mid"] for r in read_ndjson(out)}) >= FILES * LINES, timeout=90)
        archive = tmp_path / "filedrop" / "esa" / "archive" / "esa1"
        await wait_for(lambda: archive.exists() and len(list(archive.iterdir())) == FILES)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=15)
    assert code == 0, log.read_text()[-3000:]

    mids = [r["mid"] for r in read_ndjson(out)]
    assert set(mids) == set(range(1, FILES * LINES + 1))
    # Lines are committed exactly once; the file sink may write a batch again after a kill (it had
    # written it when killed, before the outbox knew).
    assert len(mids) - len(set(mids)) <= KILLS * NDJSON_LIMITS.max_events
    # Each file archived once, under its own name (a second read would have archived a renamed copy).
    assert sorted(p.name for p in archive.iterdir()) == sorted(f.name for f in files)
    assert not any((tmp_path / "filedrop" / "esa" / "work").iterdir())
    assert (tmp_path / "filedrop" / "esa" / "ssh_host_ed25519_key.pub").read_text() == fingerprint
    assert "Traceback" not in log.read_text()
