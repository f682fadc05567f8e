"""Fixtures for the simulator tests: simulators on real sockets, in the test's event loop."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
import pytest

from logferry.sim.entra import EntraSim
from logferry.sim.server import SimServer

SimT = TypeVar("SimT", bound=SimServer[Any])
Starter = Callable[..., Awaitable[Any]]


@pytest.fixture
async def start_sim() -> AsyncIterator[Starter]:
    """``await start_sim(sim, tls=False)`` starts a simulator and stops it after the test."""
    started: list[SimServer[Any]] = []

    async def start(sim: SimT, tls: bool = False) -> SimT:
        await sim.start(tls=tls)
        started.append(sim)
        return sim

    yield start
    for sim in reversed(started):
        await sim.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def entra(start_sim: Starter) -> EntraSim:
    """An Entra ID simulator over TLS, as msal and azure-identity require."""
    sim: EntraSim = await start_sim(EntraSim(), tls=True)
    return sim


SCRIPT = (
    "import asyncio, sys; from logferry.sim import run_standalone; "
    "asyncio.run(run_standalone(sys.argv[1], '127.0.0.1', 0, sys.argv[2] == 'tls', sys.argv[3:]))"
)


@pytest.fixture
def launch() -> Iterator[Any]:
    """``launch(name, tls, *options)`` runs ``run_standalone`` in a subprocess; killed at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(name: str, tls: bool, *argv: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, name, "tls" if tls else "plain", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def announcement(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """The JSON line a standalone simulator prints after ``listening on URL``."""
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("listening on "), first + (proc.stderr.read() if proc.stderr else "")
    announced: dict[str, Any] = json.loads(proc.stdout.readline())
    assert first.strip() == f"listening on {announced['url']}"
    return announced
