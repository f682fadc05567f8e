from __future__ import annotations

import asyncio
import gzip
import io
from collections.abc import MutableMapping
from typing import Any

import aiohttp
import orjson
import pytest
from azure.identity.aio import ClientSecretCredential
from azure.monitor.ingestion.aio import LogsIngestionClient

from logferry.schemas import available_tables, load_table
from logferry.sim.entra import EntraSim
from logferry.sim.sentinel import SentinelSim

from .conftest import Starter
from .helpers import ssl_for, stats

STREAM = "Custom-meshStackEventLogs_CL"
MONITOR = "https://monitor.azure.com"


def _row(i: int = 0, **overrides: Any) -> dict[str, Any]:
    row = {
        "TimeGenerated": "2025-12-10T11:06:49.999377Z",
        "EventTitle": f"Workspace Created #{i}",
        "EventDescription": "Workspace 'Müller Analytics' was created.",
        "EventType": "Created",
        "WorkspaceName": "mueller-analytics",
        "EventContent": {"Workspace Name": "Müller Analytics", "n": i},
        "AuthorIdentifier": "system",
        "AuthorType": "System",
    }
    return {**row, **overrides}


@pytest.fixture
async def sentinel(start_sim: Starter, entra: EntraSim) -> SentinelSim:
    sim: SentinelSim = await start_sim(SentinelSim(entra=entra), tls=True)
    return sim


class Poster:
    """Posts raw bodies to the simulator's stream URL with a valid token unless told otherwise."""

    def __init__(self, http: aiohttp.ClientSession, sim: SentinelSim, entra: EntraSim) -> None:
        self.http, self.sim, self.entra = http, sim, entra

    def url(self, dcr: str | None = None, stream: str = STREAM) -> str:
        dcr = dcr or self.sim.options.dcr_id
        return f"{self.sim.url}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01"

    async def post(
        self, body: bytes, token: str | None = None, url: str | None = None, gzipped: bool = False
    ) -> tuple[int, dict[str, str], Any]:
        headers = {
            "Authorization": f"Bearer {token or self.entra.issue_token(MONITOR)}",
            "Content-Type": "application/json",
        }
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        async with self.http.post(
            url or self.url(), data=io.BytesIO(body), headers=headers, ssl=ssl_for(self.sim)
        ) as r:
            text = await r.text()
            return r.status, dict(r.headers), (await r.json()) if text else None


@pytest.fixture
def poster(http: aiohttp.ClientSession, sentinel: SentinelSim, entra: EntraSim) -> Poster:
    return Poster(http, sentinel, entra)


async def _rows(http: aiohttp.ClientSession, sim: SentinelSim, query: str = "") -> list[dict[str, Any]]:
    async with http.get(f"{sim.url}/sim/tables/meshStackEventLogs_CL/rows{query}", ssl=ssl_for(sim)) as resp:
        assert resp.status == 200
        rows: list[dict[str, Any]] = await resp.json()
        return rows


async def test_official_sdk_uploads_rows_unchanged(
    http: aiohttp.ClientSession, entra: EntraSim, sentinel: SentinelSim
) -> None:
    rows: list[MutableMapping[str, Any]] = [_row(i) for i in range(250)]
    credential = ClientSecretCredential(
        entra.tenant_id,
        entra.client_id,
        entra.client_secret,
        authority=entra.url,
        disable_instance_discovery=True,
        connection_verify=entra.ca_file,
    )
    async with (
        credential,
        LogsIngestionClient(sentinel.url, credential, connection_verify=sentinel.ca_file) as client,
    ):
        await client.upload(rule_id=sentinel.options.dcr_id, stream_name=STREAM, logs=rows)
    assert await _rows(http, sentinel) == rows
    assert await _rows(http, sentinel, "?limit=2&offset=10") == rows[10:12]
    counters = await stats(http, sentinel)
    assert counters["rows_accepted"] == {"meshStackEventLogs_CL": 250}
    assert counters["generated"] == 250
    assert counters["requests_by_status"] == {"204": 1}
    assert entra.generated() == 1


async def test_optional_columns_are_accepted(poster: Poster) -> None:
    status, _, _ = await poster.post(
        b'[{"EventId": "5351d2c1-e8fb-46b5-aa2d-551f65b184f7", "EventTitle": null}]'
    )
    assert status == 204


async def test_body_over_1_mib_is_413(poster: Poster) -> None:
    body = b"[" + b",".join([b'{"EventTitle": "' + b"x" * 1000 + b'"}'] * 1100) + b"]"
    status, headers, error = await poster.post(body)
    assert status == 413
    assert headers["x-ms-error-code"] == "ContentLengthLimitExceeded"
    assert error["error"] == {
        "code": "ContentLengthLimitExceeded",
        "message": "Maximum allowed content length: 1048576 bytes (1 MB). "
        f"Provided content length: {len(body)} bytes.",
    }


async def test_gzip_body_over_1_mib_once_decompressed_is_413(poster: Poster) -> None:
    raw = b"[" + b",".join([b'{"EventTitle": "' + b"x" * 1000 + b'"}'] * 1100) + b"]"
    status, _, error = await poster.post(gzip.compress(raw), gzipped=True)
    assert status == 413
    assert error["error"]["message"].endswith(f"Provided content length: {len(raw)} bytes.")


async def test_gzip_body_within_limit_is_accepted(poster: Poster, http: aiohttp.ClientSession) -> None:
    status, _, _ = await poster.post(
        gzip.compress(b"[" + b",".join([b'{"EventTitle": "t"}'] * 3) + b"]"), gzipped=True
    )
    assert status == 204
    assert len(await _rows(http, poster.sim)) == 3


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([_row(), _row(1, EventContent=None, EventTitle=5)], "Record 1: column 'EventTitle' has type string"),
        ([_row(TimeGenerated="yesterday")], "Record 0: column 'TimeGenerated' has type datetime"),
        (
            [_row(Severity="high")],
            "Record 0: column 'Severity' is not a column of table meshStackEventLogs_CL",
        ),
        ({"EventTitle": "x"}, "must be a JSON array of objects"),
        (["x"], "Record 0 must be a JSON object"),
    ],
    ids=["wrong_type", "bad_datetime", "unknown_column", "not_an_array", "not_objects"],
)
async def test_rows_that_do_not_fit_the_table_are_400(
    poster: Poster, http: aiohttp.ClientSession, rows: Any, message: str
) -> None:
    status, headers, error = await poster.post(orjson.dumps(rows))
    assert status == 400
    assert headers["x-ms-error-code"] == "InvalidPayload"
    assert message in error["error"]["message"]
    assert await _rows(http, poster.sim) == []  # the whole request is refused


@pytest.mark.parametrize(
    ("token_args", "message"),
    [
        ((MONITOR, -5), "expired"),
        (("https://management.azure.com", None), "audience"),
    ],
    ids=["expired", "wrong_audience"],
)
async def test_bad_token_is_401(poster: Poster, token_args: tuple[str, int | None], message: str) -> None:
    status, headers, error = await poster.post(b"[]", token=poster.entra.issue_token(*token_args))
    assert status == 401
    assert headers["x-ms-error-code"] == "InvalidToken"
    assert message in error["error"]["message"]


async def test_missing_token_is_401(
    http: aiohttp.ClientSession, sentinel: SentinelSim, poster: Poster
) -> None:
    async with http.post(poster.url(), data=b"[]", ssl=ssl_for(sentinel)) as resp:
        assert resp.status == 401


async def test_unknown_dcr_and_stream_are_404(poster: Poster) -> None:
    status, headers, error = await poster.post(
        b"[]", url=poster.url(dcr="dcr-00000000000000000000000000000000")
    )
    assert (status, headers["x-ms-error-code"]) == (404, "NotFound")
    status, headers, error = await poster.post(b"[]", url=poster.url(stream="Custom-Nope_CL"))
    assert (status, headers["x-ms-error-code"]) == (404, "InvalidStream")
    assert "Custom-meshStackEventLogs_CL" in error["error"]["message"]


async def test_injected_503_once_then_success(poster: Poster, http: aiohttp.ClientSession) -> None:
    rule = [{"path": "/dataCollectionRules/*", "status": 503, "count": 1, "retry_after": 2}]
    async with http.post(f"{poster.sim.url}/sim/faults", json=rule, ssl=ssl_for(poster.sim)) as resp:
        assert resp.status == 200
    status, headers, _ = await poster.post(b'[{"EventTitle": "a"}]')
    assert (status, headers["Retry-After"], headers["x-ms-error-code"]) == (503, "2", "ServiceError")
    assert (await poster.post(b'[{"EventTitle": "a"}]'))[0] == 204
    assert len(await _rows(http, poster.sim)) == 1
    assert (await stats(http, poster.sim))["requests"] == {"204": 1, "503": 1}


async def test_outage_fails_everything_until_it_ends(poster: Poster, http: aiohttp.ClientSession) -> None:
    async with http.post(
        f"{poster.sim.url}/sim/outage", json={"seconds": 1.5}, ssl=ssl_for(poster.sim)
    ) as resp:
        assert resp.status == 200
    # 1.5 s: room for the first post's token request and TLS handshake on a loaded machine.
    assert (await poster.post(b"[]"))[0] == 503
    assert (await poster.post(b"[]"))[0] == 503
    await asyncio.sleep(1.55)
    assert (await poster.post(b"[]"))[0] == 204


async def test_throttling_answers_429_with_retry_after(
    start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(SentinelSim(entra=entra, max_requests_per_minute=2), tls=True)
    poster = Poster(http, sim, entra)
    assert [(await poster.post(b"[]"))[0] for _ in range(2)] == [204, 204]
    status, headers, _ = await poster.post(b"[]")
    assert (status, headers["x-ms-error-code"]) == (429, "TooManyRequests")
    assert 1 <= int(headers["Retry-After"]) <= 60


async def test_counts_only_when_rows_are_not_stored(
    start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(SentinelSim(entra=entra, store_rows=False), tls=True)
    body = b'[{"EventTitle": "a"}, {"EventTitle": "b"}]'
    assert (await Poster(http, sim, entra).post(body))[0] == 204
    async with http.get(f"{sim.url}/sim/tables/meshStackEventLogs_CL/rows", ssl=ssl_for(sim)) as resp:
        assert resp.status == 409
    counters = await stats(http, sim)
    assert counters["rows_accepted"] == {"meshStackEventLogs_CL": 2}
    assert counters["bytes_received"] == len(body)


async def test_runs_its_own_entra_when_none_is_given(start_sim: Starter, http: aiohttp.ClientSession) -> None:
    sim = await start_sim(SentinelSim(), tls=True)
    creds = sim.credentials
    assert {"tenant_id", "client_id", "client_secret", "certificate_file", "authority_host", "dcr_id"} <= set(
        creds
    )
    # One stream per shipped table definition.
    assert creds["streams"]["meshStackEventLogs_CL"] == STREAM
    assert creds["streams"] == {t: load_table(t).stream for t in available_tables()}
    assert {"O365Audit_CL", "MimecastAudit_CL"} <= set(creds["streams"])
    assert sim.entra is not None
    assert creds["authority_host"] == sim.entra.url != sim.url
    assert (await Poster(http, sim, sim.entra).post(b"[]"))[0] == 204
    await sim.stop()
    assert not sim.entra.started


async def test_validates_via_jwks_url_of_another_entra(
    start_sim: Starter, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(SentinelSim(entra_url=entra.url, entra_ca_file=entra.ca_file), tls=True)
    poster = Poster(http, sim, entra)
    assert (await poster.post(b"[]"))[0] == 204
    status, _, error = await poster.post(b"[]", token=entra.issue_token(MONITOR, -5))
    assert (status, error["error"]["code"]) == (401, "InvalidToken")
