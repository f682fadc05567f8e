"""Helpers for the syslog sink tests: building the sink from a config entry, and waiting for a count
to settle at a receiver that commits asynchronously."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.observe.metrics import Metrics
from logferry.sinks.syslog.service import SyslogSink
from tests.sources.syslog.conftest import Receiver, TLSFiles, tls_files

# The syslog receiver commits every flush_secs; a count that has not moved for this long is complete.
QUIET_SECS = 0.25


def sink_config(**sink: Any) -> dict[str, Any]:
    return {
        "sources": {"src": {"type": "syslog", "listen": "127.0.0.1:0"}},
        "sinks": {"dst": {"type": "syslog", "inputs": ["src"], **sink}},
    }


def build_sink(tmp_path: Path, **sink: Any) -> SyslogSink:
    built = (
        parse_config(sink_config(**sink), tmp_path)
        .sinks["dst"]
        .build("dst", BuildContext(data_dir=tmp_path, metrics=Metrics()))
    )
    assert isinstance(built, SyslogSink)
    return built


async def settled(
    count: Callable[[], int], idle: Callable[[], Awaitable[bool]], timeout: float = 15.0
) -> int:
    """``count()`` once the receiver is ``idle`` and the count has not changed for QUIET_SECS."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = count(), loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.02)
        now = count()
        if now != last or not await idle():
            last, since = now, loop.time()
        elif loop.time() - since >= QUIET_SECS:
            return now
    raise AssertionError(f"count still changing after {timeout}s (last {last})")


async def receiver_idle(rx: Receiver) -> bool:
    """Nothing received and uncommitted, and nothing left in the outbox of its file sink."""
    stats = await rx.service.pipeline.store.outbox_stats()
    return rx.source.pending == 0 and all(s.events == 0 for s in stats.values())


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """One set of certificates for every test here: RSA key generation takes about a second each."""
    return tls_files(tmp_path_factory.mktemp("syslog-sink-certs"))
