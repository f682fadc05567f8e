"""Duo's official Python client (duo_client 5.7.0), unchanged, against the simulator over TLS.

duo_client signs v5 with its own canonicalisation and sends the query with ``urlencode``; that
the simulator accepts it checks the simulator's verification independently of logferry's signer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import duo_client  # type: ignore[import-untyped]
import pytest

from logferry.sim.duo import DuoSim
from tests.sim.conftest import Starter

# duo_client builds its TLS context with ssl.PROTOCOL_TLS, deprecated since Python 3.10; the
# client is used unchanged, so its warning is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:ssl.PROTOCOL_TLS is deprecated:DeprecationWarning")


def admin(sim: DuoSim, skey: str | None = None) -> duo_client.Admin:
    creds = sim.credentials
    port = int(creds["host"].rsplit(":", 1)[1])
    # The documented form: a hostname alone (Duo is on 443; the simulator's port goes in port=).
    # "localhost" because duo_client matches the certificate's DNS names only, never its IPs.
    return duo_client.Admin(
        creds["ikey"], skey or creds["skey"], "localhost", ca_certs=sim.ca_file, port=port
    )


def window_ms() -> tuple[int, int]:
    end = int(time.time() * 1000) - 121 * 1000
    return end - 2 * 3600 * 1000, end


async def test_authentication_log_v2_pages_with_duo_client(start_sim: Starter) -> None:
    sim: DuoSim = await start_sim(DuoSim(backlog_events=150, live_rate=0, requests_per_minute=0), tls=True)
    client = admin(sim)
    mintime, maxtime = window_ms()

    def pull() -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = None
        while True:
            resp = client.get_authentication_log(
                api_version=2,
                mintime=mintime,
                maxtime=maxtime,
                limit="100",
                sort="ts:asc",
                next_offset=offset,
            )
            out += resp["authlogs"]
            offset = resp["metadata"]["next_offset"]
            if not offset:
                return out

    records = await asyncio.to_thread(pull)
    assert [r["txid"] for r in records] == [r["txid"] for r in sim.expected("authentication")]
    assert all(r["eventtype"] == "authentication" for r in records)


async def test_administrator_and_telephony_logs_with_duo_client(start_sim: Starter) -> None:
    sim: DuoSim = await start_sim(DuoSim(backlog_events=40, live_rate=0, requests_per_minute=0), tls=True)
    client = admin(sim)
    mintime, maxtime = window_ms()
    admins = await asyncio.to_thread(client.get_administrator_log, mintime=0)
    assert len(admins) == 40
    assert [r["timestamp"] for r in admins] == [r["timestamp"] for r in sim.expected("administrator")]
    telephony = await asyncio.to_thread(
        client.get_telephony_log, mintime=mintime, maxtime=maxtime, api_version=2, limit=1000, sort="asc"
    )
    assert [r["telephony_id"] for r in telephony["items"]] == [
        r["telephony_id"] for r in sim.expected("telephony")
    ]


async def test_duo_client_sees_the_bad_signature_error(start_sim: Starter) -> None:
    sim: DuoSim = await start_sim(DuoSim(backlog_events=1, live_rate=0, requests_per_minute=0), tls=True)
    client = admin(sim, skey="x" * 40)
    with pytest.raises(RuntimeError, match="Received 401 Invalid signature in request credentials") as exc:
        await asyncio.to_thread(client.get_administrator_log, mintime=0)
    assert exc.value.data["code"] == 40103  # type: ignore[attr-defined]
