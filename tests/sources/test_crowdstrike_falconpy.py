"""CrowdStrike's own Python SDK (crowdstrike-falconpy) works unchanged against the simulator.

falconpy is synchronous (requests), so every call runs in a thread while the simulator serves
from the test's event loop.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from falconpy import EventStreams, OAuth2

from logferry.sim.crowdstrike import CrowdStrikeSim

APP = "falconpyTest"


async def call(fn: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
    result: dict[str, Any] = await asyncio.to_thread(fn, **kwargs)
    return result


async def test_falconpy_authenticates_discovers_and_refreshes_an_active_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim = CrowdStrikeSim(partitions=2, backlog_events=20)
    await sim.start(tls=True)
    assert sim.ca_file
    # requests lets REQUESTS_CA_BUNDLE (set on CI machines) override a session's `verify`
    # (psf/requests#3829), which is what falconpy's ssl_verify sets.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim.ca_file)
    ca: Any = sim.ca_file  # falconpy types ssl_verify as bool; requests takes a CA path there too
    try:
        auth = OAuth2(
            client_id=sim.client_id, client_secret=sim.client_secret, base_url=sim.url, ssl_verify=ca
        )
        token = await call(auth.token)
        assert token["status_code"] == 201 and token["body"]["access_token"]
        streams = EventStreams(auth_object=auth)

        listed = await call(streams.list_available_streams, app_id=APP)
        assert listed["status_code"] == 200
        resources = listed["body"]["resources"]
        assert [r["refreshActiveSessionInterval"] for r in resources] == [1800, 1800]

        idle = await call(streams.refresh_active_stream, app_id=APP, partition=0)
        assert idle["status_code"] == 404
        assert idle["body"]["errors"][0]["message"] == "no active stream session found"

        ctx = ssl.create_default_context(cafile=sim.ca_file)
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http,
            http.get(
                resources[0]["dataFeedURL"],
                headers={"Authorization": f"Token {resources[0]['sessionToken']['token']}"},
            ) as feed,
        ):
            assert feed.status == 200
            assert (await feed.content.readline()).startswith(b'{"metadata":')
            active = await call(streams.refresh_active_stream, app_id=APP, partition=0)
            assert active["status_code"] == 200, active
        assert len(sim.refresh_log) == 1

        wrong = OAuth2(client_id=sim.client_id, client_secret="nope", base_url=sim.url, ssl_verify=ca)
        refused = await call(wrong.token)
        assert refused["status_code"] == 401
    finally:
        await sim.stop()
