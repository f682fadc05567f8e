"""Small helpers shared by the simulator tests."""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp

from logferry.sim.meshstack import MEDIA_TYPE, MeshStackSim
from logferry.sim.server import SimServer


def ssl_for(sim: SimServer[Any]) -> ssl.SSLContext | bool:
    """What to pass as aiohttp's ``ssl=`` to trust a simulator."""
    return ssl.create_default_context(cafile=sim.ca_file) if sim.ca_file else True


async def stats(http: aiohttp.ClientSession, sim: SimServer[Any]) -> dict[str, Any]:
    async with http.get(f"{sim.url}/sim/stats", ssl=ssl_for(sim)) as resp:
        assert resp.status == 200
        result: dict[str, Any] = await resp.json()
        return result


async def mesh_token(http: aiohttp.ClientSession, sim: MeshStackSim) -> str:
    creds = sim.credentials
    body = {"clientId": creds["client_id"], "clientSecret": creds["client_secret"]}
    async with http.post(f"{sim.url}/api/login", json=body) as resp:
        assert resp.status == 200, await resp.text()
        token: str = (await resp.json())["access_token"]
        return token


async def mesh_list(
    http: aiohttp.ClientSession, sim: MeshStackSim, token: str, **params: Any
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}", "Accept": MEDIA_TYPE}
    query = {k: str(v) for k, v in params.items()}
    async with http.get(f"{sim.url}/api/meshobjects/mesheventlogs", headers=headers, params=query) as resp:
        return resp.status, await resp.json(content_type=None)
