from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest

from logferry.observe import ComponentHealth, HealthServer, Metrics, Status, register_secret


@dataclass
class FakePipeline:
    """Stands in for the pipeline: tests flip its state and the server reads it on every request."""

    ready: bool = False
    components: list[ComponentHealth] = field(default_factory=list)
    broken: bool = False
    metrics: Metrics = field(default_factory=Metrics)

    def status(self) -> Status:
        if self.broken:
            raise RuntimeError("status callback bug")
        return Status.of(ready=self.ready, started_at=1_700_000_000.0, components=self.components)


@pytest.fixture
def pipeline() -> FakePipeline:
    return FakePipeline(
        components=[
            ComponentHealth(name="duo", kind="source", healthy=True, details={"last_success_at": 1.0}),
            ComponentHealth(name="sentinel", kind="sink", healthy=True, details={"outbox_events": 0}),
        ]
    )


@pytest.fixture
async def server(pipeline: FakePipeline) -> AsyncIterator[HealthServer]:
    async with HealthServer(port=0, status=pipeline.status, metrics=pipeline.metrics) as srv:
        yield srv


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_port_zero_binds_a_free_port_and_reports_it_in_url(server: HealthServer) -> None:
    assert server.url.startswith("http://127.0.0.1:")
    assert int(server.url.rsplit(":", 1)[1]) > 0


async def test_healthz_is_ok_even_when_not_ready(server: HealthServer, client: aiohttp.ClientSession) -> None:
    async with client.get(f"{server.url}/healthz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ok"}


async def test_readyz_goes_from_503_to_200_once_ready(
    server: HealthServer, client: aiohttp.ClientSession, pipeline: FakePipeline
) -> None:
    async with client.get(f"{server.url}/readyz") as resp:
        assert resp.status == 503
        assert await resp.json() == {"status": "not_ready", "reasons": ["pipeline not ready"]}

    pipeline.ready = True

    async with client.get(f"{server.url}/readyz") as resp:
        assert resp.status == 200
        assert await resp.json() == {"status": "ready"}


async def test_readyz_is_503_with_reasons_when_a_component_is_unhealthy(
    server: HealthServer, client: aiohttp.ClientSession, pipeline: FakePipeline
) -> None:
    pipeline.ready = True
    pipeline.components[0] = ComponentHealth(
        name="duo", kind="source", healthy=False, reason="no successful poll for 900s (stale_after 600s)"
    )

    async with client.get(f"{server.url}/readyz") as resp:
        assert resp.status == 503
        body = await resp.json()
    assert body["reasons"] == ["source duo: no successful poll for 900s (stale_after 600s)"]


async def test_status_returns_the_full_status_as_json(
    server: HealthServer, client: aiohttp.ClientSession, pipeline: FakePipeline
) -> None:
    pipeline.ready = True
    pipeline.components[1] = ComponentHealth(
        name="sentinel", kind="sink", healthy=False, reason="HTTP 403", details={"outbox_events": 1200}
    )

    async with client.get(f"{server.url}/status") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.json()

    assert body == {
        "ready": True,
        "healthy": False,
        "started_at": 1_700_000_000.0,
        "components": [
            {
                "name": "duo",
                "kind": "source",
                "healthy": True,
                "reason": None,
                "details": {"last_success_at": 1.0},
            },
            {
                "name": "sentinel",
                "kind": "sink",
                "healthy": False,
                "reason": "HTTP 403",
                "details": {"outbox_events": 1200},
            },
        ],
    }


async def test_status_redacts_secrets_quoted_in_reasons(
    server: HealthServer, client: aiohttp.ClientSession, pipeline: FakePipeline
) -> None:
    register_secret("status-secret-value")
    pipeline.components[0] = ComponentHealth(
        name="duo",
        kind="source",
        healthy=False,
        reason="token endpoint said: client_secret=status-secret-value is invalid",
        details={"last_request": "Authorization: Bearer xyz"},
    )

    for path in ("/status", "/readyz"):
        async with client.get(f"{server.url}{path}") as resp:
            text = await resp.text()
        assert "status-secret-value" not in text
        assert "Bearer xyz" not in text
        assert "***" in text


async def test_metrics_serves_prometheus_text_with_incremented_series(
    server: HealthServer, client: aiohttp.ClientSession, pipeline: FakePipeline
) -> None:
    pipeline.metrics.events_received.labels(source="duo").inc(17)
    pipeline.metrics.sink_requests.labels(sink="sentinel", status_class="2xx").inc()

    async with client.get(f"{server.url}/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()

    assert 'logferry_source_events_received_total{source="duo"} 17.0' in text
    assert 'logferry_sink_requests_total{sink="sentinel",status_class="2xx"} 1.0' in text


async def test_a_failing_status_callback_yields_503_and_500_not_a_crash(
    server: HealthServer, client: aiohttp.ClientSession, pipeline: FakePipeline
) -> None:
    pipeline.broken = True

    async with client.get(f"{server.url}/readyz") as resp:
        assert resp.status == 503
    async with client.get(f"{server.url}/status") as resp:
        assert resp.status == 500
    async with client.get(f"{server.url}/healthz") as resp:
        assert resp.status == 200


async def test_stop_closes_the_port(pipeline: FakePipeline, client: aiohttp.ClientSession) -> None:
    srv = HealthServer(port=0, status=pipeline.status, metrics=pipeline.metrics)
    await srv.start()
    url = srv.url
    await srv.stop()

    with pytest.raises(aiohttp.ClientConnectionError):
        async with client.get(f"{url}/healthz"):
            pass
    with pytest.raises(RuntimeError, match="not started"):
        _ = srv.url


async def test_start_twice_is_refused(server: HealthServer) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        await server.start()


def test_status_of_derives_healthy_from_components() -> None:
    ok = ComponentHealth(name="a", kind="source", healthy=True)
    bad = ComponentHealth(name="b", kind="sink", healthy=False, reason="outbox full")

    assert Status.of(ready=True, started_at=0.0, components=[ok]).healthy
    status = Status.of(ready=False, started_at=0.0, components=[ok, bad])
    assert not status.healthy
    assert status.problems() == ["pipeline not ready", "sink b: outbox full"]
