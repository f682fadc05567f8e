"""Delivery to Logstash: one request = the lines of one batch, sent as windows, done when all are ACKed.

``send`` never raises for destination errors. A host that cannot be connected to is skipped for
the next one within the same request; a connection that breaks, stops reading or stays silent
for ``timeout_secs``, sends only keepalives for ``max_ack_wait_secs`` or answers something other
than an ACK is aborted (only ``close`` ends connections gracefully) and ends the request with a
retry, and the next attempt goes to the next host. Events a host already acknowledged (partial
ACKs) are not sent again when the same request is retried; the rest of it is, which is how
Filebeat behaves, so delivery is at-least-once: a window whose ACK was lost arrives twice (see
``encoder`` for the ``@metadata._id`` that lets Logstash overwrite the copy).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Sequence

from isal import isal_zlib

from logferry.core.sink import BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.net.outbound import ConnectFailed
from logferry.observe.logging import log_event
from logferry.observe.redact import redact
from logferry.sinks.bodies import OFFLOAD_MIN_BYTES, isal_level
from logferry.sinks.logstash.client import AckWaitExceeded, BeatsConnection, WindowSize, WriteStalled
from logferry.sinks.logstash.config import LogstashConfig
from logferry.sinks.logstash.encoder import BeatsEncoder
from logferry.sinks.logstash.pool import Host, HostPool
from logferry.sinks.logstash.protocol import ProtocolError, encode_window

__all__ = ["LogstashSink"]


class _Broken(Exception):
    """The connection failed after the request started; ``str()`` is the retry reason."""


class _Progress:
    """How much of the request being retried a host already acknowledged.

    The delivery loop retries a request with exactly the same lines, so the lines themselves
    identify it; comparing them costs nothing next to sending them again.
    """

    def __init__(self) -> None:
        self._lines: list[bytes] | None = None
        self.done = 0

    def start(self, lines: list[bytes]) -> None:
        if lines is not self._lines and lines != self._lines:
            self._lines, self.done = lines, 0

    def finish(self) -> None:
        self._lines, self.done = None, 0


class LogstashSink:
    """Sends to the hosts of one ``logstash`` sink; built by ``LogstashConfig.build``."""

    def __init__(self, name: str, config: LogstashConfig, *, logger: logging.Logger | None = None) -> None:
        self.name = name
        self.config = config
        # Lumberjack frames add 10 bytes per event and no brackets; max_bytes counts the documents.
        self.limits = BatchLimits(
            max_bytes=config.batch.max_bytes,
            max_events=config.batch.max_events,
            prefix=b"",
            separator=b"",
            suffix=b"",
        )
        self._log = logger or logging.getLogger(f"logferry.sink.{name}")
        self._encoder = BeatsEncoder(config.index)
        self._ssl = config.ssl_context(name)
        self._server_name = config.tls.server_name if config.tls is not None else None
        self._pool = HostPool(config.addresses, loadbalance=config.loadbalance)
        self._window = WindowSize(config.batch.max_events, config.slow_start)
        self._progress = _Progress()
        level = config.compression_level
        self._compress: Callable[[bytes], bytes] | None = (
            functools.partial(isal_zlib.compress, level=isal_level(level)) if level else None
        )

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return self._encoder.encode("", records)

    def encode_from(self, source: str, records: Sequence[Record]) -> list[bytes]:
        return self._encoder.encode(source, records)

    async def start(self) -> None:
        """Nothing to do: hosts are connected on first use, so a host that is down only delays delivery."""

    async def close(self) -> None:
        await self._pool.close()

    async def send(self, lines: list[bytes]) -> Resolution:
        if not lines:
            return Resolution.delivered()
        self._progress.start(lines)
        refused: list[str] = []
        for host in self._pool.order():
            try:
                await self._send_to(host, lines)
            except ConnectFailed as exc:
                self._failed(host, str(exc))
                refused.append(str(exc))
                continue
            except _Broken as exc:
                self._failed(host, str(exc))
                self._window.shrink()
                return Resolution.retry(str(exc))
            self._pool.succeeded(host)
            self._progress.finish()
            return Resolution.delivered()
        return Resolution.retry(redact("; ".join(refused)))

    async def healthcheck(self) -> CheckResult:
        """Connect to every host (TLS handshake included); OK if any accepts, naming those that do not."""
        up: list[str] = []
        down: list[str] = []
        for host in self._pool.hosts:
            try:
                conn = await self._open(host)
            except ConnectFailed as exc:
                down.append(redact(str(exc)))
                continue
            await conn.close()
            up.append(host.label)
        if not up:
            return CheckResult(False, "; ".join(down))
        message = f"{', '.join(up)} accept{'s' if len(up) == 1 else ''} connections"
        return CheckResult(True, "; ".join([message, *down]))

    # -- one host ---------------------------------------------------------------------------

    async def _send_to(self, host: Host, lines: list[bytes]) -> None:
        for attempt in (1, 2):
            conn = await self._connection(host)
            heard = conn.acks
            reused = conn.windows > 0
            try:
                await self._send_windows(conn, lines)
                return
            except BaseException as exc:
                # After a failure (or a cancellation) mid-window the stream's state is unknown, and a
                # graceful close would wait on a peer that may never read: drop it at once.
                host.abort()
                closed = isinstance(exc, (ConnectionError, asyncio.IncompleteReadError))
                if closed and reused and conn.acks == heard and attempt == 1:
                    continue  # a pooled connection the peer had just closed: one fresh try
                if not isinstance(exc, Exception):
                    raise
                raise _Broken(redact(self._reason(host, exc))) from None

    def _reason(self, host: Host, exc: Exception) -> str:
        config, where = self.config, host.label
        if isinstance(exc, WriteStalled):
            return (
                f"write to {where} stalled: no data taken for {config.timeout_secs:g} s "
                "(Logstash is not reading: overloaded, or its pipeline is blocked)"
            )
        if isinstance(exc, AckWaitExceeded):
            return (
                f"{where} sent only keepalive ACKs for {config.max_ack_wait_secs:g} s "
                "(max_ack_wait_secs): its pipeline is blocked; the other hosts are tried first"
            )
        if isinstance(exc, TimeoutError):
            return (
                f"no ACK from {where} within {config.timeout_secs:g} s, not even a keepalive "
                "(Logstash is hung, in a long GC pause, or badly overloaded)"
            )
        if isinstance(exc, ProtocolError):
            return f"{where} is not speaking Lumberjack v2: {exc}"
        if isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
            return f"{where} closed the connection: {_why(exc)}"
        return f"connection to {where} failed: {_why(exc)}"

    async def _connection(self, host: Host) -> BeatsConnection:
        if host.conn is not None and not host.conn.usable():
            host.abort()
        if host.conn is None:
            host.conn = await self._open(host)
            log_event(self._log, logging.DEBUG, "logstash_connected", sink=self.name, host=host.label)
        return host.conn

    async def _open(self, host: Host) -> BeatsConnection:
        return await BeatsConnection.open(
            host.host,
            host.port,
            ssl_context=self._ssl,
            server_name=self._server_name,
            connect_secs=self.config.connect_timeout_secs,
        )

    async def _send_windows(self, conn: BeatsConnection, lines: list[bytes]) -> None:
        progress = self._progress
        while progress.done < len(lines):
            start = progress.done
            chunk = lines[start : start + self._window.size]
            frames = await self._frames(chunk)

            def acked(seq: int, start: int = start) -> None:
                progress.done = start + seq

            await conn.send_window(
                frames,
                len(chunk),
                ack_secs=self.config.timeout_secs,
                max_wait_secs=self.config.max_ack_wait_secs,
                on_ack=acked,
            )
            self._window.grow()

    async def _frames(self, chunk: list[bytes]) -> bytes:
        if self._compress is not None and sum(map(len, chunk)) >= OFFLOAD_MIN_BYTES:
            # ISA-L releases the GIL: a large window compresses without stalling the event loop.
            return await asyncio.to_thread(encode_window, chunk, self._compress)
        return encode_window(chunk, self._compress)

    def _failed(self, host: Host, reason: str) -> None:
        self._pool.failed(host)
        log_event(
            self._log, logging.WARNING, "logstash_host_failed", sink=self.name, host=host.label, reason=reason
        )


def _why(exc: Exception) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed while waiting for an ACK"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
