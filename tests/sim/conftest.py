"""Fixtures for the simulator tests: simulators on real sockets, in the test's event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
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
