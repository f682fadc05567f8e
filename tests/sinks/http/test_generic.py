"""The generic HTTP sink against the simulator's /ingest endpoint: conformance, formats, auth, errors."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from logferry.core.delivery import DeliveryLoop
from logferry.core.errors import ConfigError
from logferry.core.sink import Action
from logferry.net.retry import Backoff
from logferry.observe.metrics import Metrics
from logferry.observe.redact import redact
from logferry.sim.hec import INGEST_INDEX, HecSim
from logferry.sim.peers import free_port
from tests.conformance.sink import SinkCase, SinkConformance
from tests.conftest import secret_ref
from tests.sinks.http.conftest import StartHec, built_sink, harness, stored
from tests.sinks.test_conformance import mesh_records

PASSWORD = "ingest-password-1"


def http_entry(sim: HecSim, **overrides: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "url": f"{sim.url}/ingest",
        "auth": {"type": "basic", "user": "logferry", "password": secret_ref("HTTP_TEST_PASSWORD", PASSWORD)},
        "tls": {"ca_file": sim.ca_file},
        **overrides,
    }


def ingest_case(sim: HecSim, entry: dict[str, Any]) -> SinkCase:
    async def arrived() -> int:
        return len(await stored(sim, INGEST_INDEX))

    async def outage() -> None:
        await harness(sim, "POST", "/sim/outage", {"seconds": 3600, "status": 503})

    async def recover() -> None:
        await harness(sim, "DELETE", "/sim/outage")

    return SinkCase(entry, mesh_records(2500), arrived, outage, recover)


class TestHttpJsonArrayConformance(SinkConformance):
    @pytest.fixture
    async def case(self, start_hec: StartHec) -> SinkCase:
        sim = await start_hec()
        return ingest_case(sim, http_entry(sim, batch={"max_bytes": 200_000}))


class TestHttpNdjsonConformance(SinkConformance):
    @pytest.fixture
    async def case(self, start_hec: StartHec) -> SinkCase:
        sim = await start_hec(tls=False)
        entry = http_entry(
            sim,
            format="ndjson",
            compression="none",
            auth={"type": "bearer", "token": secret_ref("HTTP_TEST_BEARER", "ingest-bearer-token-1")},
        )
        del entry["tls"]
        return ingest_case(sim, entry)


@pytest.fixture
async def sim(start_hec: StartHec) -> HecSim:
    return await start_hec()


AUTHS = {
    "basic": {"type": "basic", "user": "logferry", "password": "${env:HTTP_TEST_SECRET}"},
    "bearer": {"type": "bearer", "token": "${env:HTTP_TEST_SECRET}"},
    "header": {"type": "header", "name": "X-Api-Key", "value": "${env:HTTP_TEST_SECRET}"},
}
SECRETS = {"basic": PASSWORD, "bearer": "ingest-bearer-token-1", "header": "ingest-api-key-1"}


@pytest.mark.parametrize("style", sorted(AUTHS))
async def test_every_auth_style_delivers_and_a_wrong_secret_is_never_shown(
    sim: HecSim, tmp_path: Path, style: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HTTP_TEST_SECRET", SECRETS[style])
    async with built_sink(http_entry(sim, auth=AUTHS[style]), tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 1}]))
        assert result.action is Action.DELIVERED, result.reason
    wrong = f"wrong-{style}-secret-value"
    monkeypatch.setenv("HTTP_TEST_SECRET", wrong)
    caplog.set_level(logging.DEBUG)
    async with built_sink(http_entry(sim, auth=AUTHS[style]), tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 2}]))
        check = await sink.healthcheck()
    assert (result.action, result.status) == (Action.RETRY, 401)
    assert "check auth" in result.reason and not check.ok
    assert wrong not in result.reason + check.message + caplog.text
    assert [e["event"] for e in await stored(sim, INGEST_INDEX)] == [{"n": 1}]


async def test_a_secret_echoed_in_an_error_body_is_redacted(
    sim: HecSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HTTP_TEST_SECRET", "ingest-api-key-1")
    caplog.set_level(logging.DEBUG)
    echo = {"path": "/ingest", "status": 400, "body": {"error": "bad request from key ingest-api-key-1"}}
    await harness(sim, "POST", "/sim/faults", [echo])
    async with built_sink(http_entry(sim, auth=AUTHS["header"]), tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 1}]))
    assert result.action is Action.REJECT and "bad request from key" in result.reason
    assert "ingest-api-key-1" not in result.reason + caplog.text


async def test_one_bad_record_is_split_out_and_dead_lettered(sim: HecSim, tmp_path: Path) -> None:
    records: list[dict[str, Any]] = [{"n": i} for i in range(8)]
    records[5] = {"n": 5, "sim_reject": True}
    async with built_sink(http_entry(sim), tmp_path) as sink:
        loop = DeliveryLoop("dst", sink, None, Metrics(), 1.0, on_freed=None)  # type: ignore[arg-type]
        rejected = await loop._deliver(sink.encode(records), Backoff(initial_secs=0.01, max_secs=0.01))
    assert rejected is not None and len(rejected) == 1
    reason, line = rejected[0]
    assert b"sim_reject" in line and reason.startswith("HTTP 400")
    assert sorted(e["event"]["n"] for e in await stored(sim, INGEST_INDEX)) == [0, 1, 2, 3, 4, 6, 7]


async def test_busy_collector_is_retried_after_its_retry_after(sim: HecSim, tmp_path: Path) -> None:
    await harness(sim, "POST", "/sim/faults", [{"path": "/ingest", "status": 503, "retry_after": 7}])
    async with built_sink(http_entry(sim), tmp_path) as sink:
        lines = sink.encode([{"n": 1}])
        busy = await sink.send(lines)
        again = await sink.send(lines)
    assert (busy.action, busy.after, busy.status) == (Action.RETRY, 7.0, 503)
    assert again.action is Action.DELIVERED
    assert len(await stored(sim, INGEST_INDEX)) == 1


@pytest.mark.parametrize(
    ("status", "advice"), [(405, "method not allowed: check the URL"), (415, "content type")]
)
async def test_a_collector_refusing_the_method_or_encoding_keeps_the_data(
    sim: HecSim, tmp_path: Path, status: int, advice: str
) -> None:
    await harness(sim, "POST", "/sim/faults", [{"path": "/ingest", "status": status}])
    async with built_sink(http_entry(sim), tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": i} for i in range(100)]))
    assert (result.action, result.status) == (Action.RETRY, status) and advice in result.reason


async def test_gzip_bodies_arrive_intact(sim: HecSim, tmp_path: Path) -> None:
    records = mesh_records(300)
    async with built_sink(http_entry(sim, compression="gzip", gzip_level=6), tmp_path) as sink:
        assert (await sink.send(sink.encode(records))).action is Action.DELIVERED
    assert sim.stats()["gzip_requests"] == 1
    assert [e["event"] for e in await stored(sim, INGEST_INDEX)] == records


async def test_extra_headers_and_success_statuses(sim: HecSim, tmp_path: Path) -> None:
    entry = http_entry(sim, headers={"X-Api-Key": secret_ref("HTTP_TEST_HEADER", "ingest-api-key-1")})
    entry["auth"] = {"type": "none"}
    async with built_sink({**entry, "success_statuses": [202]}, tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 1}]))
    # The collector answered 200, which this configuration does not count as success: keep the data.
    assert (result.action, result.reason) == (Action.RETRY, "unexpected HTTP 200")
    async with built_sink(entry, tmp_path) as sink:
        assert (await sink.send(sink.encode([{"n": 1}]))).action is Action.DELIVERED


async def test_unreachable_collector_is_retried(tmp_path: Path) -> None:
    entry = {"type": "http", "url": f"http://127.0.0.1:{free_port()}/ingest", "timeout_secs": 2}
    async with built_sink(entry, tmp_path) as sink:
        result = await sink.send(sink.encode([{"n": 1}]))
        check = await sink.healthcheck()
    assert result.action is Action.RETRY and "request failed" in result.reason
    assert not check.ok


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ({"url": "http://collector.example.com/ingest"}, "sinks.dst.url: "),
        ({"url": "ftp://127.0.0.1/x"}, "sinks.dst.url: "),
        (
            {"auth": {"type": "bearer", "token": "literal-token"}},
            "sinks.dst.auth.token: a secret must not be written inline",
        ),
        ({"headers": {"Authorization": "Bearer x"}}, "use auth for credentials"),
        (
            {"headers": {"X-Tenant": "acme\r\n"}},
            "X-Tenant contains a control character (a trailing newline?)",
        ),
        ({"url": "http://logferry:pw@127.0.0.1:9/ingest"}, "sinks.dst.url: url must not contain credentials"),
        ({"method": "PUT"}, "sinks.dst.method: unknown key"),
        ({"success_statuses": [200, 302]}, "only 2xx"),
        ({"format": "xml"}, "sinks.dst.format"),
    ],
)
async def test_bad_config_names_the_field(
    sim: HecSim, tmp_path: Path, override: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        async with built_sink(http_entry(sim, **override), tmp_path):
            pass
    assert any(problem in p for p in exc.value.problems), exc.value.problems


@pytest.mark.parametrize("style", sorted(AUTHS))
async def test_a_secret_with_a_trailing_newline_is_refused_naming_the_field(
    sim: HecSim, tmp_path: Path, style: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Kubernetes secret or an env file often ends in a newline; in a header it fails every request.
    monkeypatch.setenv("HTTP_TEST_SECRET", SECRETS[style] + "\n")
    field = {"basic": "password", "bearer": "token", "header": "value"}[style]
    with pytest.raises(ConfigError) as exc:
        async with built_sink(http_entry(sim, auth=AUTHS[style]), tmp_path):
            pass
    assert exc.value.problems == [
        f"sinks.dst.auth.{field}: {field} contains a control character (a trailing newline?): "
        "remove it from the value"
    ]


async def test_a_secret_header_with_a_newline_is_refused(sim: HecSim, tmp_path: Path) -> None:
    entry = http_entry(sim, headers={"X-Collector-Key": secret_ref("HTTP_TEST_HEADER_NL", "k3y-value\n")})
    with pytest.raises(ConfigError) as exc:
        async with built_sink(entry, tmp_path):
            pass
    assert any("X-Collector-Key contains a control character" in p for p in exc.value.problems)
    assert "k3y-value" not in str(exc.value.problems)


async def test_messages_show_no_query_and_a_url_by_reference_only_its_origin(
    sim: HecSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_TEST_SECRET", "wrong-bearer-token")
    bearer = AUTHS["bearer"]
    async with built_sink(
        http_entry(sim, url=f"{sim.url}/ingest?key=K3yInTheQuery", auth=bearer), tmp_path
    ) as sink:
        check = await sink.healthcheck()
    assert not check.ok and check.message.startswith(f"{sim.url}/ingest: credentials refused")
    assert "K3yInTheQuery" not in check.message
    # A collector URL that carries its key in the path (Sumo Logic's HTTP source), given by reference.
    secret_url = f"{sim.url}/receiver/v1/http/ZaVnC4dhaV2ZZ0fZ1vKHkQ0vFq0u"
    entry = http_entry(sim, url=secret_ref("HTTP_TEST_URL", secret_url), auth=bearer)
    async with built_sink(entry, tmp_path) as sink:
        check = await sink.healthcheck()
    assert not check.ok and check.message.startswith(f"{sim.url}: not found")
    assert "ZaVnC4" not in check.message
    assert redact(f"POST {secret_url} failed") == "POST *** failed"
