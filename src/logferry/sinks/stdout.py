"""Stdout sink: NDJSON lines on standard output, for debugging and for piping into other tools.

Each request is written and flushed in one go from a worker thread, so a slow reader on the
other end of a pipe holds back delivery (the outbox keeps the data) instead of the event loop.
A closed pipe is retried like any other outage. Nothing is fsynced: stdout makes no durability
promise beyond handing the bytes to the reader.

Usage::

    sinks:
      debug:
        type: stdout
        inputs: [duo]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import BinaryIO, Literal

from pydantic import Field

from logferry.config.base import BuildContext, SinkConfig
from logferry.core.registry import register_sink
from logferry.core.sink import CheckResult, Resolution
from logferry.core.types import Record
from logferry.sinks.file import NDJSON_LIMITS, encode_json, framing_problem

__all__ = ["StdoutConfig", "StdoutSink"]


@register_sink("stdout")
class StdoutConfig(SinkConfig):
    """Print records as NDJSON to logferry's standard output."""

    type: Literal["stdout"] = Field(description="Write to standard output.", examples=["stdout"])

    def build(self, name: str, ctx: BuildContext) -> StdoutSink:
        return StdoutSink(name)


class StdoutSink:
    """Writes each request's lines, newline-terminated, to ``stream`` or else the current ``sys.stdout``."""

    def __init__(self, name: str, stream: BinaryIO | None = None) -> None:
        self.name = name
        self.limits = NDJSON_LIMITS
        self._stream = stream

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return encode_json(records)

    async def start(self) -> None:
        pass

    async def send(self, lines: list[bytes]) -> Resolution:
        if not lines:
            return Resolution.delivered()
        problem = framing_problem(lines)
        if problem is not None:
            return problem
        try:
            await asyncio.to_thread(self._write, self.limits.frame(lines))
        except BrokenPipeError:
            return Resolution.retry("cannot write to stdout: the reading end of the pipe is closed")
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            return Resolution.retry(f"cannot write to stdout: {exc}")
        return Resolution.delivered()

    async def healthcheck(self) -> CheckResult:
        out = self._stream if self._stream is not None else sys.stdout
        if out is None or out.closed:
            return CheckResult(
                False, "stdout is closed; start logferry with an output attached or remove this sink"
            )
        return CheckResult(True, "stdout is open")

    async def close(self) -> None:
        pass

    def _write(self, data: bytes) -> None:
        if self._stream is not None:
            self._stream.write(data)
            self._stream.flush()
            return
        out = sys.stdout
        if out is None:
            raise OSError("stdout is not attached")
        # Flush text already printed so the two layers do not interleave out of order.
        out.flush()
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            out.write(data.decode("utf-8"))
            out.flush()
