"""The shared conformance suite every sink type passes.

A sink's test module subclasses :class:`SinkConformance` and provides the ``case`` fixture (a
valid sink config entry, with its destination started, and a way to read back what arrived). The
suite checks what the delivery loop relies on: the config validates and refuses unknown keys, the
type is in the JSON Schema, limits are sane, ``encode`` gives one newline-free line per record,
``send`` of packed lines is confirmed and the records arrive, ``healthcheck`` says ok, and (for
cases that can take their destination down) a send during an outage asks for a retry and the same
lines are all delivered once the destination is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import config_schema, parse_config
from logferry.core.batcher import pack, request_size
from logferry.core.errors import ConfigError
from logferry.core.sink import Action, Sink
from logferry.observe.metrics import Metrics

__all__ = ["SinkCase", "SinkConformance"]


@dataclass
class SinkCase:
    config: dict[str, Any]  # the sink's config entry without `inputs`
    records: list[dict[str, Any]]  # source records to deliver
    arrived: Callable[[], Awaitable[int]]  # how many records the destination holds now
    outage: Callable[[], Awaitable[None]] | None = None  # take the destination down (stop it, refuse)
    recover: Callable[[], Awaitable[None]] | None = None  # bring it back; `arrived` counts from before


def full_config(case: SinkCase, **sink: Any) -> dict[str, Any]:
    return {
        "sources": {
            "src": {
                "type": "meshstack",
                "api_url": "https://mesh.example.com",
                "client_id": "k",
                "client_secret": "${env:CONFORMANCE_UNUSED}",
            }
        },
        "sinks": {"dst": {**case.config, "inputs": ["src"], **sink}},
    }


class SinkConformance:
    """Subclass as ``TestXConformance`` and define the ``case`` fixture."""

    @pytest.fixture(autouse=True)
    def _unused_secret(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CONFORMANCE_UNUSED", "unused")

    @pytest.fixture
    async def sink(self, case: SinkCase, tmp_path: Path) -> Any:
        ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
        built = parse_config(full_config(case), tmp_path).sinks["dst"].build("dst", ctx)
        await built.start()
        yield built
        await built.close()
        await ctx.close()

    def test_config_validates_and_refuses_unknown_keys(self, case: SinkCase, tmp_path: Path) -> None:
        parse_config(full_config(case), tmp_path)
        with pytest.raises(ConfigError) as exc:
            parse_config(full_config(case, no_such_option=1), tmp_path)
        assert any(p.startswith("sinks.dst.no_such_option: unknown key") for p in exc.value.problems)

    def test_type_is_in_the_json_schema(self, case: SinkCase) -> None:
        assert f'"const": "{case.config["type"]}"' in str(config_schema()).replace("'", '"')

    async def test_satisfies_the_protocol_with_sane_limits(self, sink: Sink) -> None:
        assert isinstance(sink, Sink)
        assert sink.limits.max_bytes > 0 and sink.limits.max_events > 0

    async def test_encode_gives_one_newline_free_line_per_record(self, case: SinkCase, sink: Sink) -> None:
        lines = sink.encode(case.records)
        assert len(lines) == len(case.records)
        assert all(b"\n" not in line for line in lines)

    async def test_packed_requests_are_delivered_and_arrive(self, case: SinkCase, sink: Sink) -> None:
        before = await case.arrived()
        lines = sink.encode(case.records)
        for i, j in pack(sink.limits, lines):
            assert request_size(sink.limits, lines[i:j]) <= sink.limits.max_bytes
            result = await sink.send(lines[i:j])
            assert result.action is Action.DELIVERED, result.reason
        assert await case.arrived() - before == len(case.records)

    async def test_healthcheck_says_ok(self, sink: Sink) -> None:
        result = await sink.healthcheck()
        assert result.ok, result.message

    async def test_outage_is_retried_and_recovery_delivers_everything(
        self, case: SinkCase, sink: Sink
    ) -> None:
        # A destination with no outage to stage (a local file, UDP) removes this test in its class
        # (``test_outage_… = None``) and says why; every other case must stage one.
        assert case.outage is not None and case.recover is not None, "give the case outage and recover"
        before = await case.arrived()
        lines = sink.encode(case.records)
        requests = list(pack(sink.limits, lines))
        await case.outage()
        i, j = requests[0]
        during = await sink.send(lines[i:j])
        assert during.action is Action.RETRY, during
        assert during.reason
        assert not (await sink.healthcheck()).ok
        await case.recover()
        for i, j in requests:
            # The first sends after recovery may still find the old connection dead; the delivery
            # loop would retry them, and so does this test, within a bound.
            deadline = time.monotonic() + 20
            while (result := await sink.send(lines[i:j])).action is Action.RETRY:
                assert time.monotonic() < deadline, result.reason
                await asyncio.sleep(0.05)
            assert result.action is Action.DELIVERED, result.reason
        assert await case.arrived() - before == len(case.records)
