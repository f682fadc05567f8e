"""The base every simulator builds on: binding, TLS, request statistics and fault injection.

A simulator subclasses :class:`SimServer`, declares an options dataclass (a subclass of
:class:`SimOptions`) and adds its vendor routes. It runs in the caller's event loop, so a test can
drive a client and the simulator side by side::

    async with MeshStackSim(live_rate=0) as sim:     # start(host="127.0.0.1", port=0, tls=False)
        ...  # sim.url, sim.credentials, sim.ca_file

Every simulator also serves ``/sim/*`` for the harness (never counted, never faulted):
``GET /sim/stats``, ``GET|POST|DELETE /sim/faults`` and ``POST|DELETE /sim/outage``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, ClassVar, Generic, Self, TypeVar, cast

import orjson
from aiohttp import web

from .faults import Fault, FaultInjector, FaultRule, parse_rules
from .tls import shared_server_certificate

__all__ = [
    "HTTPError",
    "SimOptions",
    "SimServer",
    "decode_basic",
    "format_secs",
    "json_response",
    "read_json",
    "retry_headers",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, kw_only=True)
class SimOptions:
    """Options every simulator accepts."""

    faults: tuple[FaultRule, ...] = dataclasses.field(
        default=(),
        metadata={"help": "fault rules active from the start, the JSON list POST /sim/faults takes"},
    )

    def __post_init__(self) -> None:
        # Accept the JSON form (dicts) too, so tests and the CLI can pass rules as plain data.
        raw: Any = self.faults
        object.__setattr__(self, "faults", tuple(parse_rules(raw if isinstance(raw, Mapping) else list(raw))))


OptionsT = TypeVar("OptionsT", bound=SimOptions)


class HTTPError(Exception):
    """Raised by a handler to answer with a ready, vendor-shaped error response."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def json_response(
    data: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers, content_type=content_type)


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, or a 400 the harness can read."""
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc}") from None


def decode_basic(header: str) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic ...`` header value, or None if it is not one."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def format_secs(secs: float) -> str:
    """A seconds value for Retry-After: an integer when it is one."""
    return str(int(secs)) if float(secs).is_integer() else f"{secs:g}"


class SimServer(ABC, Generic[OptionsT]):
    """One simulated vendor API: an aiohttp application with a start/stop life cycle."""

    #: Registry name, set by :func:`logferry.sim.registry.register`.
    name: ClassVar[str] = ""
    #: The options dataclass; ``logferry sim NAME --help`` is derived from it.
    options_type: ClassVar[type[SimOptions]] = SimOptions
    #: Largest request body aiohttp will read for this simulator.
    max_body_bytes: ClassVar[int] = 1 << 20
    #: Whether aiohttp inflates gzip request bodies before the handler sees them.
    auto_decompress: ClassVar[bool] = True

    def __init__(self, options: OptionsT | None = None, **overrides: Any) -> None:
        base = options if options is not None else cast(OptionsT, self.options_type())
        self.options: OptionsT = dataclasses.replace(base, **overrides) if overrides else base
        self.faults = FaultInjector(self.options.faults)
        self.requests: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None
        self._ca_file: str | None = None
        #: Where ``start`` bound (simulators that start helpers, like Sentinel's Entra, reuse these).
        self.host = "127.0.0.1"
        self.tls = False

    # --- what a simulator provides -------------------------------------------------------------

    @abstractmethod
    def add_routes(self, app: web.Application) -> None:
        """Add the vendor API routes (and any sim-specific ``/sim/`` routes)."""

    @property
    @abstractmethod
    def credentials(self) -> dict[str, Any]:
        """What a client needs to authenticate (printed by ``logferry sim``)."""

    @abstractmethod
    def generated(self) -> int:
        """The simulator's main count for ``/sim/stats`` (events that exist, rows accepted, ...)."""

    def extra_stats(self) -> dict[str, Any]:
        """Simulator-specific counters merged into ``/sim/stats``."""
        return {}

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        """An error in the vendor's shape; used for injected faults and the simulator's own errors."""
        body = {"error": {"code": code or _reason(status).replace(" ", ""), "message": message}}
        return json_response(body, status, retry_headers(retry_after))

    async def on_start(self) -> None:
        """Called once the listener is bound (``self.url`` is known)."""

    async def on_stop(self) -> None:
        """Called before the listener closes."""

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0, tls: bool = False) -> None:
        """Bind ``host:port`` (0 = any free port), optionally with a self-signed TLS certificate."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self.host, self.tls = host, tls
        runner = web.AppRunner(
            self._build_app(),
            access_log=None,
            shutdown_timeout=1.0,
            auto_decompress=self.auto_decompress,
        )
        await runner.setup()
        ssl_context = None
        if tls:
            cert = shared_server_certificate()
            ssl_context = cert.ssl_context()
            self._ca_file = cert.cert_file
        try:
            await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        bound_port = runner.addresses[0][1]
        url_host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        url_host = f"[{url_host}]" if ":" in url_host else url_host
        self._url = f"{'https' if tls else 'http'}://{url_host}:{bound_port}"
        try:
            await self.on_start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the listener; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        try:
            await self.on_stop()
        finally:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._url

    @property
    def ca_file(self) -> str | None:
        """PEM file clients use as their CA bundle when the simulator runs with TLS."""
        return self._ca_file

    @property
    def started(self) -> bool:
        return self._runner is not None

    def stats(self) -> dict[str, Any]:
        return {
            "sim": self.name,
            "generated": self.generated(),
            "requests": dict(sorted(self.requests.items())),
            "faults_injected": self.faults.injected,
            **self.extra_stats(),
        }

    # --- plumbing ------------------------------------------------------------------------------

    def _build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._count_middleware(), self._fault_middleware()],
            client_max_size=self.max_body_bytes,
        )
        app.router.add_get("/sim/stats", self._handle_stats)
        app.router.add_get("/sim/faults", self._handle_get_faults)
        app.router.add_post("/sim/faults", self._handle_set_faults)
        app.router.add_delete("/sim/faults", self._handle_clear_faults)
        app.router.add_post("/sim/outage", self._handle_start_outage)
        app.router.add_delete("/sim/outage", self._handle_end_outage)
        self.add_routes(app)
        return app

    def _count_middleware(self) -> Any:
        requests = self.requests

        @web.middleware
        async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
            harness = _is_harness(request)
            try:
                response = await handler(request)
            except HTTPError as exc:
                response = exc.response
            except web.HTTPException as exc:
                if not harness:
                    requests[str(exc.status)] += 1
                raise
            except Exception:
                if not harness:
                    requests["500"] += 1
                raise
            if not harness:
                requests[str(response.status)] += 1
            return response

        return count

    def _fault_middleware(self) -> Any:
        @web.middleware
        async def inject(request: web.Request, handler: Handler) -> web.StreamResponse:
            if _is_harness(request):
                return await handler(request)
            fault = self.faults.check(request.path, asyncio.get_running_loop().time())
            if fault is None:
                return await handler(request)
            if fault.delay_secs:
                await asyncio.sleep(fault.delay_secs)
            if fault.status is None:
                return await handler(request)
            return self._fault_response(fault)

        return inject

    def _fault_response(self, fault: Fault) -> web.Response:
        assert fault.status is not None
        if fault.body is not None:
            return json_response(fault.body, fault.status, retry_headers(fault.retry_after))
        return self.error_response(
            fault.status, f"simulated fault: {_reason(fault.status)}", retry_after=fault.retry_after
        )

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return json_response(self.stats())

    async def _handle_get_faults(self, request: web.Request) -> web.Response:
        return json_response(self.faults.describe(asyncio.get_running_loop().time()))

    async def _handle_set_faults(self, request: web.Request) -> web.Response:
        try:
            rules = parse_rules(await read_json(request))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        self.faults.set_rules(rules)
        return json_response({"rules": len(rules)})

    async def _handle_clear_faults(self, request: web.Request) -> web.Response:
        self.faults.set_rules(())
        return json_response({"rules": 0})

    async def _handle_start_outage(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        try:
            seconds = float(body["seconds"])
            status = int(body.get("status", 503))
            retry_after = body.get("retry_after")
            retry_after = None if retry_after is None else float(retry_after)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise web.HTTPBadRequest(
                text='expected {"seconds": s, "status": 503, "retry_after": null}'
            ) from None
        self.faults.start_outage(asyncio.get_running_loop().time(), seconds, status, retry_after)
        return json_response({"seconds": seconds, "status": status})

    async def _handle_end_outage(self, request: web.Request) -> web.Response:
        self.faults.end_outage()
        return json_response({"seconds": 0})


def _is_harness(request: web.Request) -> bool:
    return request.path.startswith("/sim/")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def retry_headers(retry_after: float | None) -> dict[str, str] | None:
    return None if retry_after is None else {"Retry-After": format_secs(retry_after)}
