"""A Beats (Lumberjack v2) server that behaves like Logstash's beats input, for tests and benchmarks.

The Lumberjack listener runs next to the usual HTTP port, which serves the ``/sim/*`` harness:
``GET /sim/stats``, ``GET|DELETE /sim/events`` (the events processed so far, as JSON objects),
``POST /sim/beats/behaviour`` (change the options below at run time) and
``POST|DELETE /sim/beats/outage`` (refuse connections and drop open ones / listen again on the
same port). With ``tls`` both listeners use the simulators' self-signed certificate.

Like the beats input (logstash-input-beats ``BeatsParser``/``BeatsHandler``), a window is processed
once all its events have arrived and is then ACKed with its highest sequence number; ``A 0`` is sent
as a keepalive while a window is still being processed; bytes that are not v2 framing, and data
that is not a JSON object, close the connection; and, as the beats input does with its default
``plain`` codec, ``message`` (or ``line`` when ``message`` is missing or null) is taken out of
each event and put back as ``message`` in text form (see :func:`as_beats_input_keeps`).
Options add what a busy or broken Logstash does:
partial ACKs, slow processing, no ACK at all, a connection dropped mid-window. An event counts as
received once processed; with partial ACKs, once ACKed::

    async with BeatsSim(partial_ack_every=100) as sim:
        host, port = sim.lumberjack_host, sim.lumberjack_port
        ...
        sim.events   # what arrived, in order
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ssl
import typing
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from logferry.sinks.logstash.protocol import Data, FrameParser, ProtocolError, Window, encode_ack

from .options import opt
from .registry import register
from .server import SimOptions, SimServer, json_response, read_json
from .tls import shared_server_certificate

__all__ = ["BeatsOptions", "BeatsSim", "as_beats_input_keeps"]

_READ_BYTES = 256 * 1024


@dataclass(frozen=True, kw_only=True)
class BeatsOptions(SimOptions):
    lumberjack_port: int = opt(0, "port of the Lumberjack listener (0 = any free port)")
    store_events: bool = opt(True, "keep received events for /sim/events (off: count only, for benchmarks)")
    partial_ack_every: int = opt(0, "also ACK every N events before the window's final ACK (0 = final only)")
    busy_secs: float = opt(0.0, "process each window this long before ACKing it, sending keepalive ACKs")
    keepalive_secs: float = opt(1.0, "interval of keepalive ACKs (seq 0) while busy")
    ack: bool = opt(True, "ACK windows (false: process them but never ACK, to test ACK timeouts)")
    cut_windows: int = opt(0, "close the connection in the middle of the next N windows")
    cut_after_events: int = opt(1, "events of a cut window read (and partially ACKed) before closing")
    require_client_cert: bool = opt(False, "with --tls: demand a client certificate signed by client_ca_file")
    client_ca_file: str | None = opt(None, "PEM bundle that signs the client certificates accepted")

    def __post_init__(self) -> None:
        super().__post_init__()
        # POST /sim/beats/behaviour passes JSON values straight through: check what they are.
        for name, hint in typing.get_type_hints(BeatsOptions).items():
            value = getattr(self, name)
            if hint is bool:
                ok, want = isinstance(value, bool), "true or false"
            elif hint is int:
                ok, want = type(value) is int and value >= 0, "a whole number >= 0"
            elif hint is float:
                ok, want = type(value) in (int, float) and value >= 0, "a number of seconds >= 0"
            elif hint == str | None:
                ok, want = value is None or isinstance(value, str), "a path or null"
            else:
                continue  # faults: SimOptions parses them
            if not ok:
                raise ValueError(f"{name} must be {want}, not {value!r}")
        if self.lumberjack_port > 65535:
            raise ValueError(f"lumberjack_port must be at most 65535, not {self.lumberjack_port}")
        if self.require_client_cert and not self.client_ca_file:
            raise ValueError(
                "require_client_cert needs client_ca_file (the CA of accepted client certificates)"
            )


@register("beats")
class BeatsSim(SimServer[BeatsOptions]):
    """Logstash's beats input: a Lumberjack v2 listener that records what it processes."""

    options_type = BeatsOptions

    def __init__(self, options: BeatsOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self.events: list[dict[str, Any]] = []
        self.received = 0
        self.windows = 0
        self.connections = 0
        self.protocol_errors = 0
        self.keepalives = 0
        self.bytes_received = 0
        self.lumberjack_host = "127.0.0.1"
        self.lumberjack_port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    # --- SimServer -----------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/sim/events", self._handle_events)
        app.router.add_delete("/sim/events", self._handle_clear_events)
        app.router.add_post("/sim/beats/behaviour", self._handle_behaviour)
        app.router.add_post("/sim/beats/outage", self._handle_outage)
        app.router.add_delete("/sim/beats/outage", self._handle_recover)

    @property
    def credentials(self) -> dict[str, Any]:
        return {
            "host": self.lumberjack_host,
            "port": self.lumberjack_port,
            "hosts": [f"{_bracketed(self.lumberjack_host)}:{self.lumberjack_port}"],
            "tls": self.tls,
        }

    def generated(self) -> int:
        return self.received

    def extra_stats(self) -> dict[str, Any]:
        return {
            "events_received": self.received,
            "windows": self.windows,
            "connections": self.connections,
            "open_connections": len(self._open),
            "protocol_errors": self.protocol_errors,
            "keepalives_sent": self.keepalives,
            "bytes_received": self.bytes_received,
            "listening": self._server is not None,
        }

    async def on_start(self) -> None:
        self._check_tls(self.options)
        self.lumberjack_host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        self.lumberjack_port = self.options.lumberjack_port
        await self.accept_connections()

    async def on_stop(self) -> None:
        await self.refuse_connections()

    # --- what tests drive ----------------------------------------------------------------------

    def behave(self, **changes: Any) -> None:
        """Change options (``ack``, ``partial_ack_every``, ``cut_windows`` ...) from now on.

        ``TypeError`` for an unknown option, ``ValueError`` for a value of the wrong type.
        """
        options = dataclasses.replace(self.options, **changes)
        if self.started:
            self._check_tls(options)
        self.options = options

    async def refuse_connections(self) -> None:
        """An outage: stop listening and drop every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._open):
            writer.close()
        self._open.clear()
        if server is not None:
            await server.wait_closed()

    async def accept_connections(self) -> None:
        """Listen (again) on the Lumberjack port; the first start picks the port."""
        if self._server is not None:
            return
        # Bind where the HTTP side bound; lumberjack_host is the address clients are told to use.
        self._server = await asyncio.start_server(
            self._serve, self.host, self.lumberjack_port, ssl=self._ssl_context()
        )
        self.lumberjack_port = self._server.sockets[0].getsockname()[1]

    def clear(self) -> None:
        self.events.clear()
        self.received = 0

    # --- the Lumberjack side -------------------------------------------------------------------

    def _check_tls(self, options: BeatsOptions) -> None:
        if options.require_client_cert and not self.tls:
            raise ValueError("require_client_cert needs TLS: start the simulator with --tls")

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = shared_server_certificate().ssl_context()
        if self.options.require_client_cert and self.options.client_ca_file:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.options.client_ca_file)
        return ctx

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._open.add(writer)
        try:
            await self._read_windows(reader, writer)
        except ProtocolError:
            # Logstash logs the exception and closes the channel; the client reconnects.
            self.protocol_errors += 1
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        finally:
            self._open.discard(writer)
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def _read_windows(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = FrameParser()
        size: int | None = None
        batch: list[Data] = []
        done = 0  # events of the current window already processed (partial ACKs)
        while True:
            data = await reader.read(_READ_BYTES)
            if not data:
                if parser.pending:
                    raise ProtocolError("connection closed in the middle of a frame")
                return
            self.bytes_received += len(data)
            parser.feed(data)
            for frame in parser:
                if isinstance(frame, Window):
                    if size is not None:
                        raise ProtocolError("window frame before the previous window was complete")
                    if frame.size == 0:
                        await _write(writer, encode_ack(0))
                        continue
                    size, batch, done = frame.size, [], 0
                    continue
                if not isinstance(frame, Data):
                    raise ProtocolError("a client sent an ACK frame")
                if size is None:
                    raise ProtocolError("data frame before any window frame")
                batch.append(frame)
                opts = self.options
                every = opts.partial_ack_every
                if every and len(batch) % every == 0 and len(batch) < size:
                    self._process(batch[done:])
                    done = len(batch)
                    await _write(writer, encode_ack(frame.seq))
                if opts.cut_windows and len(batch) >= opts.cut_after_events:
                    self.behave(cut_windows=opts.cut_windows - 1)
                    return
                if len(batch) == size:
                    await self._finish(writer, batch[done:], frame.seq)
                    size = None

    async def _finish(self, writer: asyncio.StreamWriter, rest: list[Data], last_seq: int) -> None:
        busy = self.options.busy_secs
        loop = asyncio.get_running_loop()
        until = loop.time() + busy
        every = self.options.keepalive_secs
        while busy and loop.time() < until:
            await asyncio.sleep(min(every, until - loop.time()) if every > 0 else until - loop.time())
            if every > 0:
                await _write(writer, encode_ack(0))
                self.keepalives += 1
        self._process(rest)
        self.windows += 1
        if self.options.ack:
            await _write(writer, encode_ack(last_seq))

    def _process(self, frames: list[Data]) -> None:
        events = []
        for f in frames:
            try:
                event = orjson.loads(f.payload)
            except orjson.JSONDecodeError as exc:
                raise ProtocolError(f"event {f.seq} is not JSON: {exc}") from None
            if not isinstance(event, dict):
                raise ProtocolError(f"event {f.seq} is not a JSON object")
            events.append(as_beats_input_keeps(event))
        self.received += len(events)
        if self.options.store_events:
            self.events.extend(events)

    # --- harness routes ------------------------------------------------------------------------

    async def _handle_events(self, request: web.Request) -> web.Response:
        return json_response(self.events)

    async def _handle_clear_events(self, request: web.Request) -> web.Response:
        self.clear()
        return json_response({"events": 0})

    async def _handle_behaviour(self, request: web.Request) -> web.Response:
        changes = await read_json(request)
        if not isinstance(changes, dict):
            raise web.HTTPBadRequest(text='expected a JSON object of options, e.g. {"ack": false}')
        try:
            self.behave(**changes)
        except (TypeError, ValueError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return json_response(dataclasses.asdict(self.options) | {"faults": []})

    async def _handle_outage(self, request: web.Request) -> web.Response:
        await self.refuse_connections()
        return json_response({"listening": False})

    async def _handle_recover(self, request: web.Request) -> web.Response:
        await self.accept_connections()
        return json_response({"listening": True})


def as_beats_input_keeps(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as the beats input passes it on with the ``plain`` codec.

    logstash-input-beats (``message_listener.rb``) deletes ``message`` from the decoded event, or
    ``line`` when ``message`` is missing or null, calls ``to_s`` on it (on the Java objects its JSON
    parser made) and hands that text to the codec, whose event gets the remaining fields set on it:
    a structured ``message`` ends up as Java's ``toString``, a ``line`` ends up as ``message``, and
    a null ``message`` left next to an extracted ``line`` overwrites it.
    """
    for key in ("message", "line"):
        if event.get(key) is not None:
            text = _java_string(event.pop(key))
            return {"message": text, **event}
    return event


def _java_string(value: Any) -> str:
    # What Java's toString gives for what Jackson parses JSON into (LinkedHashMap, ArrayList,
    # Integer/Long, Double, Boolean); floats only approximately (Java writes 1.0E21 for 1e+21).
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java_string(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_java_string(v) for v in value) + "]"
    return repr(value)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(data)
    await writer.drain()
