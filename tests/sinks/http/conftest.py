"""Fixtures for the HTTP and Splunk HEC sink tests: the HEC simulator, a plain web server and sinks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.sink import Sink
from logferry.observe.metrics import Metrics
from logferry.sim.hec import HecSim
from tests.conftest import serve_app

StartHec = Callable[..., Awaitable[HecSim]]
WEB_PAGE = b"<html><body>Welcome to nginx!</body></html>"


@pytest.fixture
async def start_hec() -> AsyncIterator[StartHec]:
    """Start HEC simulators (TLS by default) with the given options; all are stopped afterwards."""
    started: list[HecSim] = []

    async def start(tls: bool = True, **options: Any) -> HecSim:
        sim = HecSim(**options)
        await sim.start(tls=tls)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


@pytest.fixture
async def web_server() -> AsyncIterator[str]:
    """The URL of a web server that answers 200 with an HTML page on every path and method.

    What a sink meets when its URL points at the wrong port, Splunk Web, or a proxy's landing page.
    """

    async def page(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=WEB_PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", page)
    async with serve_app(app) as url:
        yield url


@asynccontextmanager
async def built_sink(
    entry: dict[str, Any], tmp_path: Path, metrics: Metrics | None = None
) -> AsyncIterator[Sink]:
    """The sink of config entry ``entry`` (without ``inputs``), built and started as the service would."""
    config = {
        "sources": {
            "src": {
                "type": "meshstack",
                "api_url": "https://mesh.example.com",
                "client_id": "k",
                "client_secret": "${env:HTTP_TESTS_UNUSED}",
            }
        },
        "sinks": {"dst": {**entry, "inputs": ["src"]}},
    }
    ctx = BuildContext(data_dir=tmp_path, metrics=metrics or Metrics())
    sink = parse_config(config, tmp_path).sinks["dst"].build("dst", ctx)
    await sink.start()
    try:
        yield sink
    finally:
        await sink.close()
        await ctx.close()


@pytest.fixture(autouse=True)
def _unused_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_TESTS_UNUSED", "unused")


async def harness(sim: HecSim, method: str, path: str, body: Any = None) -> Any:
    """Call one of the simulator's ``/sim/*`` routes and return its JSON answer."""
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, f"{sim.url}{path}", json=body, ssl=False) as r,
    ):
        r.raise_for_status()
        return await r.json()


async def stored(sim: HecSim, index: str | None = None) -> list[dict[str, Any]]:
    return list(await harness(sim, "GET", "/sim/events" + (f"?index={index}" if index else "")))
