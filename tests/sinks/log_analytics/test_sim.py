"""The Data Collector API simulator refuses what the service refuses (azure_monitor.md §3.5)."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import aiohttp
import orjson
import pytest

from logferry.sim.log_analytics import LogAnalyticsSim
from logferry.sinks.log_analytics.signing import SharedKeySigner, rfc1123_date


async def post(
    sim: LogAnalyticsSim,
    body: bytes = b'[{"a":"b"}]',
    *,
    query: str = "?api-version=2016-04-01",
    date: str | None = None,
    key: str | None = None,
    **headers: str,
) -> tuple[int, dict[str, Any]]:
    date = date or rfc1123_date()
    signer = SharedKeySigner(sim.options.workspace_id, key or sim.shared_key)
    sent = {
        "Content-Type": "application/json",
        "Log-Type": "Probe",
        "x-ms-date": date,
        "Authorization": signer.authorization(body, date),
    }
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    sent = {k: v for k, v in sent.items() if v}
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            f"{sim.url}/api/logs{query}",
            data=body,
            headers=sent,
            ssl=False,
            skip_auto_headers=("Content-Type",),  # a missing one must stay missing
        ) as r,
    ):
        raw = await r.read()
        return r.status, orjson.loads(raw) if raw else {}


async def test_a_signed_request_is_accepted(sim: LogAnalyticsSim) -> None:
    assert await post(sim) == (200, {})
    assert sim.stats()["rows_accepted"] == {"Probe_CL": 1}


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"query": ""}, 400, "MissingApiVersion"),
        ({"query": "?api-version=2023-01-01"}, 400, "InvalidApiVersion"),
        ({"Content_Type": ""}, 400, "MissingContentType"),
        ({"Content_Type": "text/plain"}, 400, "UnsupportedContentType"),
        ({"Log_Type": ""}, 400, "MissingLogType"),
        ({"Log_Type": "Bad-Name"}, 400, "InvalidLogType"),
        ({"Authorization": ""}, 403, "InvalidAuthorization"),
        ({"Authorization": "Bearer abc"}, 403, "InvalidAuthorization"),
        ({"key": "b3RoZXIga2V5"}, 403, "InvalidAuthorization"),
        # Signed for application/json, sent with a charset: the service answers 403 too.
        ({"Content_Type": "application/json; charset=utf-8"}, 403, "InvalidAuthorization"),
        ({"date": rfc1123_date(time.time() - 3600)}, 403, "InvalidAuthorization"),
        ({"body": b'{"a": 1}'}, 400, "InvalidDataFormat"),
        ({"body": b"[1, 2]"}, 400, "InvalidDataFormat"),
        ({"body": b"[{"}, 400, "InvalidDataFormat"),
        ({"body": b'[{"user.name": "x"}]'}, 400, "InvalidDataFormat"),
        ({"body": b'[{"RawData": "x"}]'}, 400, "InvalidDataFormat"),
    ],
)
async def test_refusals_carry_the_services_codes(
    sim: LogAnalyticsSim, kwargs: dict[str, Any], status: int, code: str
) -> None:
    got_status, body = await post(sim, **kwargs)
    assert (got_status, body["Error"]) == (status, code), body
    assert sim.stats()["rows_accepted"] == {}


async def test_a_post_over_the_size_limit_is_404() -> None:
    async with LogAnalyticsSim(max_post_bytes=100) as sim:
        status, body = await post(sim, b'[{"a":"' + b"x" * 100 + b'"}]')
        assert status == 404 and "30 MB" in body["Message"]


async def test_standalone_announces_what_a_client_needs() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from logferry.cli import main; main()", "sim", "log_analytics",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        while not (line := await asyncio.wait_for(proc.stdout.readline(), 20)).startswith(b"{"):
            assert line, "the simulator exited before announcing itself"
        creds = orjson.loads(line)["credentials"]
        assert set(creds) == {"workspace_id", "shared_key", "endpoint"}
    finally:
        proc.terminate()
        await proc.wait()
