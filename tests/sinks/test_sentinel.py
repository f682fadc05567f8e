"""SentinelSink against the Entra ID and Logs Ingestion simulators, over real TLS sockets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from logferry.config.base import BuildContext
from logferry.config.secrets import Ref, resolve_refs
from logferry.core.errors import ConfigError
from logferry.core.sink import Action, Sink
from logferry.observe.metrics import Metrics
from logferry.sim.entra import EntraSim
from logferry.sim.sentinel import SentinelSim
from logferry.sinks.sentinel import SentinelConfig, SentinelSink
from logferry.sinks.sentinel.service import REASON_401, REASON_403, REASON_404
from tests.conftest import serve_app

from .test_sentinel_config import mesh_record

TABLE = "meshStackEventLogs_CL"
WRONG_DCR = "dcr-00000000000000000000000000000000"
STREAM_PATH = "/streams/Custom-meshStackEventLogs_CL"


@dataclass
class Env:
    entra: EntraSim
    sentinel: SentinelSim
    ctx: BuildContext

    def config(self, **overrides: Any) -> SentinelConfig:
        raw: dict[str, Any] = {
            "type": "sentinel",
            "inputs": ["mesh"],
            "endpoint": self.sentinel.url,
            "dcr_immutable_id": self.sentinel.options.dcr_id,
            "table": TABLE,
            "authority_host": self.entra.url,
            "auth": {
                "type": "client_secret",
                "tenant_id": self.entra.tenant_id,
                "client_id": self.entra.client_id,
                "client_secret": Ref(self.entra.client_secret, "${env:SENTINEL_CLIENT_SECRET}"),
            },
            "tls": {"ca_file": self.sentinel.ca_file},
        }
        raw.update(overrides)
        return SentinelConfig.model_validate(raw)

    async def sink(self, **overrides: Any) -> SentinelSink:
        sink = self.config(**overrides).build("sentinel", self.ctx)
        await sink.start()
        return sink

    async def faults(self, *rules: dict[str, Any]) -> None:
        async with self.ctx.session(self.config().tls.settings()).post(
            f"{self.sentinel.url}/sim/faults", json=list(rules)
        ) as resp:
            assert resp.status == 200, await resp.text()

    async def rows(self) -> list[dict[str, Any]]:
        async with self.ctx.session(self.config().tls.settings()).get(
            f"{self.sentinel.url}/sim/tables/{TABLE}/rows"
        ) as resp:
            assert resp.status == 200, await resp.text()
            rows: list[dict[str, Any]] = orjson.loads(await resp.read())
            return rows


EnvFactory = Callable[..., Awaitable["Env"]]


async def start_env(tmp_path: Path, entra_options: dict[str, Any], sentinel_options: dict[str, Any]) -> Env:
    entra = EntraSim(**entra_options)
    await entra.start(tls=True)
    sentinel = SentinelSim(entra=entra, **sentinel_options)
    await sentinel.start(tls=True)
    return Env(entra, sentinel, BuildContext(data_dir=tmp_path, metrics=Metrics()))


@pytest.fixture
async def make_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[EnvFactory]:
    """``await make_env(entra={...}, sentinel={...})`` for simulators with non-default options."""
    envs: list[Env] = []

    async def make(entra: dict[str, Any] | None = None, sentinel: dict[str, Any] | None = None) -> Env:
        env = await start_env(tmp_path, entra or {}, sentinel or {})
        # A CA bundle in the environment must not override the sink's configured tls.ca_file
        # (psf/requests#3829); point it somewhere useless to prove the sink ignores it.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
        envs.append(env)
        return env

    yield make
    for env in envs:
        await env.ctx.close()
        await env.sentinel.stop()
        await env.entra.stop()


@pytest.fixture
async def env(make_env: EnvFactory) -> Env:
    return await make_env()


def lines_of(sink: SentinelSink, n: int, **spec: Any) -> list[bytes]:
    return sink.encode([mesh_record(title=f"event {i}", **spec) for i in range(n)])


async def test_sink_satisfies_the_sink_protocol(env: Env) -> None:
    sink = await env.sink()
    assert isinstance(sink, Sink)
    assert (sink.limits.max_bytes, sink.limits.max_events) == (1_048_576, 10_000)
    assert (sink.limits.prefix, sink.limits.separator, sink.limits.suffix) == (b"[", b",", b"]")


@pytest.mark.parametrize("compression", ["gzip", "none"])
async def test_send_delivers_and_rows_appear_in_the_table(env: Env, compression: str) -> None:
    sink = await env.sink(compression=compression)
    lines = lines_of(sink, 3)
    result = await sink.send(lines)
    assert (result.action, result.status) == (Action.DELIVERED, 204)
    rows = await env.rows()
    assert rows == [orjson.loads(line) for line in lines]
    assert rows[0]["EventContent"] == {"Building Block Name": "postgres", "Building Block UUID": "b1"}


async def test_send_with_event_id_delivers_the_optional_column(env: Env) -> None:
    sink = await env.sink(include_event_id=True)
    assert (await sink.send(lines_of(sink, 1))).action is Action.DELIVERED
    [row] = await env.rows()
    assert row["EventId"] == "6f1c2b9e-0000-4000-8000-000000000001"


async def test_request_over_the_api_limit_gets_413_and_is_split(env: Env) -> None:
    sink = await env.sink()
    # Built directly, past the batcher: three ~400 KB rows make a 1.2 MB array (gzip shrinks it on the
    # wire, but the API limit applies to the uncompressed body too).
    lines = lines_of(sink, 3, description="x" * 400_000)
    result = await sink.send(lines)
    assert (result.action, result.status) == (Action.SPLIT, 413)
    assert "ContentLengthLimitExceeded" in result.reason
    assert await env.rows() == []


async def test_single_record_over_the_api_limit_is_rejected(env: Env) -> None:
    sink = await env.sink(compression="none")
    result = await sink.send(lines_of(sink, 1, description="x" * 1_100_000))
    assert (result.action, result.status) == (Action.REJECT, 413)
    assert "Maximum allowed content length: 1048576" in result.reason


async def test_wrong_typed_column_rejects_a_single_line_with_the_destinations_message(env: Env) -> None:
    sink = await env.sink()
    bad = mesh_record()
    bad["metadata"]["createdAt"] = 1765364809  # TimeGenerated must be an ISO-8601 string
    result = await sink.send(sink.encode([bad]))
    assert (result.action, result.status) == (Action.REJECT, 400)
    assert "InvalidPayload" in result.reason
    assert "column 'TimeGenerated' has type datetime" in result.reason


async def test_wrong_typed_column_among_several_lines_splits_the_request(env: Env) -> None:
    sink = await env.sink()
    bad = mesh_record()
    bad["metadata"]["createdAt"] = 1765364809
    lines = lines_of(sink, 2) + sink.encode([bad])
    result = await sink.send(lines)
    assert (result.action, result.status) == (Action.SPLIT, 400)
    # Bisecting as core.delivery does isolates the bad record; the good ones are delivered.
    assert (await sink.send(lines[:1])).action is Action.DELIVERED
    assert (await sink.send(lines[1:2])).action is Action.DELIVERED
    assert (await sink.send(lines[2:])).action is Action.REJECT
    assert len(await env.rows()) == 2


async def test_refused_token_is_refreshed_once_and_the_batch_delivered(env: Env) -> None:
    sink = await env.sink()
    assert (await sink.send(lines_of(sink, 1))).action is Action.DELIVERED
    await env.faults({"path": "/dataCollectionRules/*", "status": 401, "count": 1})
    result = await sink.send(lines_of(sink, 2))
    assert result.action is Action.DELIVERED
    assert sum(env.entra.tokens_issued.values()) == 2
    assert len(await env.rows()) == 3


async def test_expired_token_is_replaced_before_the_next_send(
    make_env: EnvFactory,
) -> None:
    # JWT expiry is in whole seconds: a 1 s token can be valid for only a few ms after it is issued,
    # which a loaded CI machine overshoots; 2 s leaves the new token at least one second.
    env = await make_env(entra={"token_lifetime_secs": 2})
    sink = await env.sink()
    assert (await sink.send(lines_of(sink, 1))).action is Action.DELIVERED
    await asyncio.sleep(2.1)  # the first token is now expired at the API
    assert (await sink.send(lines_of(sink, 1))).action is Action.DELIVERED
    assert sum(env.entra.tokens_issued.values()) == 2


async def test_token_refused_after_refresh_is_retried_with_a_scope_hint(env: Env) -> None:
    sink = await env.sink()
    await env.faults({"path": "/dataCollectionRules/*", "status": 401, "count": 2})
    result = await sink.send(lines_of(sink, 1))
    assert (result.action, result.status, result.reason) == (Action.RETRY, 401, REASON_401)


@pytest.mark.parametrize("status", [429, 503], ids=["throttled", "unavailable"])
async def test_throttling_and_outages_retry_after_the_destinations_retry_after(env: Env, status: int) -> None:
    sink = await env.sink()
    await env.faults({"path": "/dataCollectionRules/*", "status": status, "count": 1, "retry_after": 7})
    result = await sink.send(lines_of(sink, 1))
    assert (result.action, result.status, result.after) == (Action.RETRY, status, 7.0)
    assert (await sink.send(lines_of(sink, 1))).action is Action.DELIVERED


async def test_simulated_rate_limit_answers_429_with_retry_after(
    make_env: EnvFactory,
) -> None:
    env = await make_env(sentinel={"max_requests_per_minute": 1})
    sink = await env.sink()
    assert (await sink.send(lines_of(sink, 1))).action is Action.DELIVERED
    result = await sink.send(lines_of(sink, 1))
    assert (result.action, result.status) == (Action.RETRY, 429)
    assert result.after is not None and 0 < result.after <= 60


@pytest.mark.parametrize(
    ("overrides", "fault", "status", "reason"),
    [
        ({}, 403, 403, REASON_403),
        ({"dcr_immutable_id": WRONG_DCR}, None, 404, REASON_404),
        ({"stream_name": "Custom-NoSuchStream_CL"}, None, 404, REASON_404),
    ],
    ids=["missing-role", "wrong-dcr", "wrong-stream"],
)
async def test_setup_mistakes_are_retried_with_the_fix_in_the_reason(
    env: Env, overrides: dict[str, Any], fault: int | None, status: int, reason: str
) -> None:
    sink = await env.sink(**overrides)
    if fault is not None:
        await env.faults({"path": "/dataCollectionRules/*", "status": fault, "count": 1})
    result = await sink.send(lines_of(sink, 1))
    assert (result.action, result.status, result.reason) == (Action.RETRY, status, reason)


async def test_other_client_errors_reject_with_the_destinations_message(env: Env) -> None:
    sink = await env.sink()
    body = {"error": {"code": "Conflict", "message": "the stream is being reconfigured"}}
    await env.faults({"path": "/dataCollectionRules/*", "status": 409, "count": 1, "body": body})
    result = await sink.send(lines_of(sink, 1))
    assert (result.action, result.status) == (Action.REJECT, 409)
    assert result.reason == "HTTP 409 Conflict: the stream is being reconfigured"


async def test_slow_destination_times_out_and_is_retried(env: Env) -> None:
    sink = await env.sink(timeout_secs=0.2)
    await env.faults({"path": "/dataCollectionRules/*", "status": None, "count": 1, "delay_secs": 1.0})
    result = await sink.send(lines_of(sink, 1))
    assert (result.action, result.status) == (Action.RETRY, None)
    assert "Timeout" in result.reason


async def test_unreachable_endpoint_is_retried(env: Env) -> None:
    sink = await env.sink(endpoint="https://127.0.0.1:9")  # discard port: nothing listens
    result = await sink.send(lines_of(sink, 1))
    assert result.action is Action.RETRY
    assert result.reason.startswith("request failed: ClientConnectorError")


async def test_token_failure_is_retried_with_the_entra_error_and_no_secret(env: Env) -> None:
    wrong = "not-the-secret-" + uuid.uuid4().hex
    auth = {**env.config().auth.model_dump(), "client_secret": Ref(wrong, "${env:WRONG}")}
    sink = await env.sink(auth=auth)
    result = await sink.send(lines_of(sink, 1))
    assert (result.action, result.status) == (Action.RETRY, None)
    assert "invalid_client" in result.reason and "AADSTS7000215" in result.reason
    assert wrong not in result.reason and env.entra.client_secret not in result.reason
    assert len(result.reason) <= 300


async def test_certificate_auth_delivers_end_to_end(env: Env, tmp_path: Path) -> None:
    problems: list[str] = []
    auth = resolve_refs(
        {
            "type": "certificate",
            "tenant_id": env.entra.tenant_id,
            "client_id": env.entra.client_id,
            "certificate": "${file:" + env.entra.credentials["certificate_file"] + "}",
        },
        tmp_path,
        problems,
    )
    assert problems == []
    sink = await env.sink(auth=auth)
    assert (await sink.send(lines_of(sink, 2))).action is Action.DELIVERED
    assert env.entra.tokens_issued["client_certificate"] == 1
    assert len(await env.rows()) == 2
    assert (await sink.healthcheck()).ok


async def test_healthcheck_passes_against_a_working_stream(env: Env) -> None:
    check = await (await env.sink()).healthcheck()
    assert check.ok, check.message
    assert await env.rows() == []


async def test_healthcheck_names_the_dcr_for_a_wrong_dcr(env: Env) -> None:
    check = await (await env.sink(dcr_immutable_id=WRONG_DCR)).healthcheck()
    assert not check.ok
    assert "check the endpoint URL, DCR immutable id and stream name" in check.message


async def test_healthcheck_names_token_scope_for_a_wrong_audience(env: Env) -> None:
    check = await (await env.sink(token_scope="https://monitor.azure.us/.default")).healthcheck()
    assert not check.ok
    assert "token_scope matches the cloud" in check.message
    assert "https://monitor.azure.us/.default" in check.message


async def test_healthcheck_asks_for_the_publisher_role_on_403(env: Env) -> None:
    sink = await env.sink()
    await env.faults({"path": "/dataCollectionRules/*", "status": 403, "count": 1})
    check = await sink.healthcheck()
    assert not check.ok
    assert "Monitoring Metrics Publisher" in check.message


async def test_healthcheck_reports_an_unreachable_identity_provider(env: Env) -> None:
    check = await (await env.sink(authority_host="https://127.0.0.1:9")).healthcheck()
    assert not check.ok
    assert check.message.startswith("cannot get a token")


async def test_request_carries_the_documented_headers_and_path(env: Env) -> None:
    """A plain-http loopback capture server stands in for the API to show the request itself."""
    seen: list[web.Request] = []
    bodies: list[bytes] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append(request)
        bodies.append(await request.read())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/dataCollectionRules/{dcr}/streams/{stream}", capture)
    async with serve_app(app) as url:
        sink = await env.sink(endpoint=url)
        assert (await sink.send(lines_of(sink, 2))).action is Action.DELIVERED
    [req] = seen
    assert (
        req.path == f"/dataCollectionRules/{env.sentinel.options.dcr_id}/streams/Custom-meshStackEventLogs_CL"
    )
    assert req.query["api-version"] == "2023-01-01"
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Content-Encoding"] == "gzip"
    assert req.headers["Authorization"].startswith("Bearer ")
    uuid.UUID(req.headers["x-ms-client-request-id"])
    assert len(orjson.loads(bodies[0])) == 2  # aiohttp inflated the gzip body


async def test_sink_refuses_to_send_a_token_over_plain_http_to_a_remote_host(env: Env) -> None:
    cfg = env.config().model_copy(update={"endpoint": "http://dce.example.com"})
    with pytest.raises(ConfigError, match="plain http"):
        SentinelSink("sentinel", cfg, env.ctx.session())
