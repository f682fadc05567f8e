"""``logferry sim NAME``: run one simulator on its own until SIGTERM or Ctrl-C.

Prints ``listening on URL`` and then one line holding exactly one JSON object
``{"url", "credentials", "ca_file"}``, so a script or a test can start a simulator as a subprocess
and read what it needs to connect from its stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from .options import parse_options_for
from .registry import SIMULATORS
from .server import SimOptions, SimServer

__all__ = ["parse_options", "run_standalone"]


def simulator_class(name: str) -> type[SimServer[Any]]:
    try:
        return SIMULATORS[name]
    except KeyError:
        raise ValueError(f"unknown simulator {name!r}; known: {', '.join(sorted(SIMULATORS))}") from None


def parse_options(name: str, argv: Sequence[str]) -> SimOptions:
    """The options of simulator ``name`` from command-line ``argv`` (``ValueError`` on any mistake)."""
    cls = simulator_class(name)
    return parse_options_for(cls.options_type, argv, prog=f"logferry sim {name}")


async def run_standalone(name: str, host: str, port: int, tls: bool, argv: list[str]) -> None:
    """Start simulator ``name``, announce it on stdout, and serve until cancelled or SIGTERM."""
    sim = simulator_class(name)(parse_options(name, argv))
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Ctrl-C already cancels the task under asyncio.run; SIGTERM would kill the process without
    # cleanup (temp key files, SQLite), so it gets the same orderly stop. The handler is in place
    # before the announcement, so a harness may send SIGTERM as soon as it has read it. Not a stub:
    # asyncio raises NotImplementedError where signals are unsupported and RuntimeError outside
    # the main thread.
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await sim.start(host=host, port=port, tls=tls)
        try:
            announcement = {"url": sim.url, "credentials": sim.credentials, "ca_file": sim.ca_file}
            sys.stdout.write(f"listening on {sim.url}\n{orjson.dumps(announcement).decode()}\n")
            sys.stdout.flush()
            await stop.wait()
        finally:
            await sim.stop()
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGTERM)
