"""``run_standalone`` as ``logferry sim NAME`` uses it: a subprocess that announces itself on stdout."""

from __future__ import annotations

import asyncio
import signal
import ssl
from typing import Any

import aiohttp

from .conftest import announcement


async def _stats(url: str, ca_file: str | None) -> dict[str, Any]:
    ctx: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    async with aiohttp.ClientSession() as http, http.get(f"{url}/sim/stats", ssl=ctx) as resp:
        result: dict[str, Any] = await resp.json()
        return result


async def test_meshstack_announces_url_and_credentials_then_stops_on_sigterm(launch: Any) -> None:
    proc = launch("meshstack", False, "--backlog-events", "5", "--live-rate", "0")
    announced = await asyncio.to_thread(announcement, proc)
    assert set(announced) == {"url", "credentials", "ca_file"}
    assert set(announced["credentials"]) == {"client_id", "client_secret", "api_user", "api_password"}
    assert announced["ca_file"] is None
    assert (await _stats(announced["url"], None))["generated"] == 5
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 10) == 0


async def test_sentinel_with_tls_announces_its_entra_and_dcr(launch: Any) -> None:
    proc = launch("sentinel", True, "--store-rows", "false")
    announced = await asyncio.to_thread(announcement, proc)
    creds = announced["credentials"]
    assert announced["url"].startswith("https://")
    assert {"tenant_id", "client_id", "client_secret", "authority_host", "dcr_id", "streams"} <= set(creds)
    stats = await _stats(creds["authority_host"], announced["ca_file"])
    assert stats["sim"] == "entra"
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 10) == 0


async def test_unknown_option_fails_with_a_clear_message(launch: Any) -> None:
    proc = launch("meshstack", False, "--no-such-option", "1")
    _, stderr = await asyncio.to_thread(proc.communicate, None, 10)
    assert proc.returncode != 0
    assert "ValueError: logferry sim meshstack: unknown option(s) --no-such-option" in stderr
