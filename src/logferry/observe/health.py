"""Liveness, readiness, status and metrics over HTTP.

``/healthz`` answers while the event loop runs (a wedged loop is what a liveness probe should
catch), ``/readyz`` answers 200 only when the pipeline is started and every component is healthy,
``/status`` shows why, and ``/metrics`` is for Prometheus. The pipeline supplies a ``status()``
callable that builds a :class:`Status` on demand, so the server keeps no state of its own.

Usage::

    server = HealthServer(port=0, status=pipeline.status, metrics=pipeline.metrics)
    await server.start()
    print(server.url)  # http://127.0.0.1:54321
    ...
    await server.stop()
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Self

import orjson
from aiohttp import web

from logferry.observe.metrics import CONTENT_TYPE, Metrics
from logferry.observe.redact import redact

__all__ = ["ComponentHealth", "HealthServer", "Status"]

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class ComponentHealth:
    """One source or sink as the pipeline sees it right now.

    ``reason`` says what is wrong (and ideally what to fix) when ``healthy`` is false. ``details``
    carries numbers for humans, e.g. ``{"outbox_events": 1200, "last_success_at": 1718000000.0}``.
    """

    name: str
    kind: Literal["source", "sink"]
    healthy: bool
    reason: str | None = None
    details: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Status:
    """The pipeline's state: ``ready`` once started, ``healthy`` when every component is."""

    ready: bool
    healthy: bool
    started_at: float
    components: list[ComponentHealth] = field(default_factory=list)

    @classmethod
    def of(cls, *, ready: bool, started_at: float, components: list[ComponentHealth]) -> Status:
        """Build a status whose ``healthy`` is derived from the components."""
        return cls(
            ready=ready,
            healthy=all(c.healthy for c in components),
            started_at=started_at,
            components=components,
        )

    def problems(self) -> list[str]:
        """Why the pipeline is not ready, one line per cause."""
        out = [] if self.ready else ["pipeline not ready"]
        if not self.healthy and all(c.healthy for c in self.components):
            out.append("pipeline unhealthy")
        out += [f"{c.kind} {c.name}: {c.reason or 'unhealthy'}" for c in self.components if not c.healthy]
        return out

    def to_json(self) -> bytes:
        """The status as JSON, redacted: reasons often quote vendor error text."""
        return _json(self)


def _json(payload: object) -> bytes:
    # orjson serialises dataclasses natively; default=str covers odd values in ``details``.
    return redact(orjson.dumps(payload, default=str).decode()).encode()


def _json_response(payload: object, status: int = 200) -> web.Response:
    return web.Response(body=_json(payload), status=status, content_type="application/json")


class HealthServer:
    """aiohttp server for ``/healthz``, ``/readyz``, ``/status`` and ``/metrics``.

    Binds to 127.0.0.1 by default: ``/status`` describes the deployment, so exposing it beyond the
    host (or pod) is a choice the operator makes explicitly. ``port=0`` picks a free port.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8686,
        *,
        status: Callable[[], Status],
        metrics: Metrics,
    ) -> None:
        self._host = host
        self._port = port
        self._status = status
        self._metrics = metrics
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None

    @property
    def url(self) -> str:
        """Base URL of the running server, with the actual port when 0 was requested."""
        if self._bound_port is None:
            raise RuntimeError("HealthServer is not started")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._bound_port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("HealthServer is already started")
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        app.router.add_get("/status", self._status_handler)
        app.router.add_get("/metrics", self._metrics_handler)
        # Probes hit these endpoints every few seconds; access lines would drown the real logs.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._bound_port = _bound_port(runner, fallback=self._port)

    async def stop(self) -> None:
        runner, self._runner, self._bound_port = self._runner, None, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _healthz(self, request: web.Request) -> web.Response:
        return _json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        status = self._current_status()
        if status is None:
            return _json_response({"status": "not_ready", "reasons": ["status unavailable"]}, 503)
        if status.ready and status.healthy:
            return _json_response({"status": "ready"})
        return _json_response({"status": "not_ready", "reasons": status.problems()}, 503)

    async def _status_handler(self, request: web.Request) -> web.Response:
        status = self._current_status()
        if status is None:
            return _json_response({"error": "status unavailable"}, 500)
        return web.Response(body=status.to_json(), content_type="application/json")

    async def _metrics_handler(self, request: web.Request) -> web.Response:
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def _current_status(self) -> Status | None:
        try:
            return self._status()
        # A bug in the status callback must turn into a 503/500, not kill the probe endpoint.
        except Exception:
            _log.exception("status_callback_failed")
            return None


def _bound_port(runner: web.AppRunner, fallback: int) -> int:
    for address in runner.addresses:
        # (host, port) for IPv4, (host, port, flowinfo, scope_id) for IPv6
        if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[1], int):
            return address[1]
    return fallback
