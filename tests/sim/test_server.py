"""The shared simulator base: binding, TLS, statistics, fault rules and outages."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from logferry.sim.server import SimOptions, SimServer, json_response

from .conftest import Starter
from .helpers import ssl_for, stats


@dataclass(frozen=True, kw_only=True)
class PingOptions(SimOptions):
    pass


class PingSim(SimServer[PingOptions]):
    """The smallest simulator: GET /ping answers 200, GET /teapot raises 403."""

    options_type = PingOptions

    @property
    def credentials(self) -> dict[str, Any]:
        return {"token": "t"}

    def generated(self) -> int:
        return 0

    def add_routes(self, app: web.Application) -> None:
        async def ping(request: web.Request) -> web.Response:
            return json_response({"pong": True})

        async def teapot(request: web.Request) -> web.Response:
            raise web.HTTPForbidden()

        app.router.add_get("/ping", ping)
        app.router.add_get("/teapot", teapot)


async def _get(
    http: aiohttp.ClientSession, sim: SimServer[Any], path: str
) -> tuple[int, aiohttp.ClientResponse]:
    async with http.get(f"{sim.url}{path}", ssl=ssl_for(sim)) as resp:
        await resp.read()
        return resp.status, resp


async def _statuses(http: aiohttp.ClientSession, sim: SimServer[Any], path: str, n: int) -> list[int]:
    return [(await _get(http, sim, path))[0] for _ in range(n)]


async def _set_faults(http: aiohttp.ClientSession, sim: SimServer[Any], rules: Any) -> None:
    async with http.post(f"{sim.url}/sim/faults", json=rules, ssl=ssl_for(sim)) as resp:
        assert resp.status == 200, await resp.text()


async def test_binds_a_free_port_and_reports_its_url(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(PingSim())
    assert sim.url.startswith("http://127.0.0.1:")
    assert sim.ca_file is None
    assert (await _get(http, sim, "/ping"))[0] == 200


async def test_tls_serves_a_certificate_clients_trust_via_ca_file(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(PingSim(), tls=True)
    assert sim.url.startswith("https://127.0.0.1:")
    assert sim.ca_file is not None
    for host in ("127.0.0.1", "localhost"):
        url = sim.url.replace("127.0.0.1", host) + "/ping"
        async with http.get(url, ssl=ssl.create_default_context(cafile=sim.ca_file)) as resp:
            assert resp.status == 200
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with http.get(sim.url + "/ping", ssl=ssl.create_default_context(cafile=None, capath=None)):
            pass


async def test_stats_count_requests_by_status_but_not_harness_calls(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(PingSim())
    await _statuses(http, sim, "/ping", 2)
    await _get(http, sim, "/teapot")
    await _get(http, sim, "/missing")
    assert await stats(http, sim) == {
        "sim": "",
        "generated": 0,
        "requests": {"200": 2, "403": 1, "404": 1},
        "faults_injected": 0,
    }


async def test_fault_rule_skips_after_then_fires_count_times(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(PingSim())
    await _set_faults(http, sim, [{"path": "/ping", "status": 500, "count": 2, "after": 1}])
    assert await _statuses(http, sim, "/ping", 5) == [200, 500, 500, 200, 200]
    assert (await stats(http, sim))["faults_injected"] == 2


async def test_fault_rule_sets_retry_after_and_body(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(PingSim())
    await _set_faults(http, sim, [{"status": 429, "retry_after": 1.5, "body": {"reason": "slow down"}}])
    async with http.get(f"{sim.url}/ping") as resp:
        assert resp.status == 429
        assert resp.headers["Retry-After"] == "1.5"
        assert await resp.json() == {"reason": "slow down"}


async def test_fault_rules_match_path_globs_and_never_sim_paths(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(PingSim())
    await _set_faults(http, sim, [{"path": "/tea*", "status": 503, "count": None}])
    assert await _statuses(http, sim, "/ping", 2) == [200, 200]
    assert await _statuses(http, sim, "/teapot", 2) == [503, 503]
    assert (await _get(http, sim, "/sim/stats"))[0] == 200
    async with http.delete(f"{sim.url}/sim/faults") as resp:
        assert resp.status == 200
    assert await _statuses(http, sim, "/teapot", 1) == [403]


async def test_faults_from_constructor_options(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(PingSim(faults=[{"status": 401}]))
    assert await _statuses(http, sim, "/ping", 2) == [401, 200]


async def test_delay_only_rule_slows_the_response(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(PingSim())
    await _set_faults(http, sim, [{"status": None, "delay_secs": 0.2}])
    started = time.monotonic()
    assert await _statuses(http, sim, "/ping", 1) == [200]
    assert time.monotonic() - started >= 0.2


async def test_invalid_fault_rules_are_400(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(PingSim())
    async with http.post(f"{sim.url}/sim/faults", json=[{"status": 503, "colour": "red"}]) as resp:
        assert resp.status == 400
        assert "colour" in await resp.text()


async def test_outage_fails_every_request_for_its_duration(
    start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(PingSim())
    async with http.post(f"{sim.url}/sim/outage", json={"seconds": 1.0, "status": 502}) as resp:
        assert resp.status == 200
    assert await _statuses(http, sim, "/ping", 2) == [502, 502]
    assert (await _get(http, sim, "/sim/stats"))[0] == 200
    await asyncio.sleep(1.05)
    assert await _statuses(http, sim, "/ping", 1) == [200]


async def test_outage_can_be_ended_early(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(PingSim())
    async with http.post(f"{sim.url}/sim/outage", json={"seconds": 60}) as resp:
        assert resp.status == 200
    assert await _statuses(http, sim, "/ping", 1) == [503]
    async with http.delete(f"{sim.url}/sim/outage") as resp:
        assert resp.status == 200
    assert await _statuses(http, sim, "/ping", 1) == [200]


async def test_stop_is_idempotent_and_start_twice_fails() -> None:
    sim = PingSim()
    await sim.start()
    with pytest.raises(RuntimeError):
        await sim.start()
    await sim.stop()
    await sim.stop()
    assert not sim.started
