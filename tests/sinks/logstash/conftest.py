"""A Beats simulator per test, and a way to build a ``logstash`` sink against it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.observe.metrics import Metrics
from logferry.sim.beats import BeatsSim
from logferry.sinks.logstash import LogstashSink

BuildSink = Callable[..., Awaitable[LogstashSink]]


def address(sim: BeatsSim) -> str:
    return f"127.0.0.1:{sim.lumberjack_port}"


def records(n: int, tag: str = "r") -> list[dict[str, Any]]:
    return [{"id": f"{tag}-{i}", "message": f"event {i}", "n": i} for i in range(n)]


def sink_config(hosts: list[str], **options: Any) -> dict[str, Any]:
    return {
        "sources": {
            "src": {
                "type": "meshstack",
                "api_url": "https://mesh.example.com",
                "client_id": "k",
                "client_secret": "${env:LOGSTASH_TEST_UNUSED}",
            }
        },
        "sinks": {"dst": {"type": "logstash", "inputs": ["src"], "hosts": hosts, **options}},
    }


@pytest.fixture
async def sim() -> AsyncIterator[BeatsSim]:
    async with BeatsSim() as s:
        yield s


@pytest.fixture
async def build_sink(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BuildSink]:
    monkeypatch.setenv("LOGSTASH_TEST_UNUSED", "unused")
    built: list[LogstashSink] = []
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())

    async def build(hosts: list[str], **options: Any) -> LogstashSink:
        sink = parse_config(sink_config(hosts, **options), tmp_path).sinks["dst"].build("dst", ctx)
        assert isinstance(sink, LogstashSink)
        await sink.start()
        built.append(sink)
        return sink

    yield build
    for sink in built:
        await sink.close()
    await ctx.close()
