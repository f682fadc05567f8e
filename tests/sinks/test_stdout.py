from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from logferry.config.base import BuildContext
from logferry.core.registry import SINK_TYPES
from logferry.core.sink import Action, Sink
from logferry.observe.metrics import Metrics
from logferry.sinks.file import NDJSON_LIMITS
from logferry.sinks.stdout import StdoutConfig, StdoutSink


async def test_send_writes_one_line_per_record_to_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    sink = StdoutSink("debug")
    records = [{"id": 1, "msg": "a\nb"}, {"id": 2, "u": "é"}]

    result = await sink.send(sink.encode(records))

    assert result.action is Action.DELIVERED
    out = capfd.readouterr().out
    assert out.endswith("\n")
    assert [orjson.loads(line) for line in out.splitlines()] == records


async def test_send_keeps_order_with_text_already_printed(capfd: pytest.CaptureFixture[str]) -> None:
    sink = StdoutSink("debug")
    print("before", end="\n")

    await sink.send([b'{"n":1}'])
    await sink.send([b'{"n":2}', b'{"n":3}'])

    assert capfd.readouterr().out == 'before\n{"n":1}\n{"n":2}\n{"n":3}\n'


async def test_empty_request_writes_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    assert (await StdoutSink("debug").send([])).action is Action.DELIVERED
    assert capfd.readouterr().out == ""


async def test_closed_stream_returns_retry_instead_of_raising() -> None:
    stream = io.BytesIO()
    stream.close()
    sink = StdoutSink("debug", stream=stream)

    result = await sink.send([b"{}"])

    assert result.action is Action.RETRY
    assert "stdout" in result.reason
    assert not (await sink.healthcheck()).ok


async def test_line_with_raw_newline_is_rejected(capfd: pytest.CaptureFixture[str]) -> None:
    result = await StdoutSink("debug").send([b'{"a":\n1}'])

    assert result.action is Action.REJECT
    assert capfd.readouterr().out == ""


async def test_healthcheck_passes_with_stdout_attached() -> None:
    assert (await StdoutSink("debug").healthcheck()).ok


def test_registered_as_stdout_and_builds_a_sink(tmp_path: Path) -> None:
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())

    sink = SINK_TYPES["stdout"].model_validate({"type": "stdout", "inputs": ["src"]}).build("debug", ctx)

    assert isinstance(sink, StdoutSink)
    assert isinstance(sink, Sink)
    assert sink.limits == NDJSON_LIMITS


@pytest.mark.parametrize(
    "data",
    [
        {"type": "stdout", "inputs": ["src"], "path": "/tmp/x"},
        {"type": "file", "inputs": ["src"]},
        {"type": "stdout", "inputs": []},
    ],
    ids=["unknown_key", "wrong_type", "no_inputs"],
)
def test_validation_rejects(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        StdoutConfig.model_validate(data)
