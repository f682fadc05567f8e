"""The ``syslog`` source: a listener, and the loop that commits what it received in batches.

The listener only frames (see :mod:`~logferry.sources.syslog.intake`); this loop takes a batch every
``flush_secs`` (sooner when ``batch_events`` are waiting), parses it, waits for room in the outbox and
commits it in one transaction, then dead-letters the messages that did not parse, with the reason and
the sender. Health turns green with every committed batch; a listener that receives nothing for
``stale_after_secs`` (default one hour) turns red: a firewall that stopped sending is exactly the
silent failure this must show. A port that cannot be bound is reported and retried with backoff.

Syslog has no acknowledgements: what the kernel accepted and logferry has not committed yet (at most
``flush_secs`` of traffic, plus unread socket buffers) is lost if the process is killed. On an orderly
stop the listener closes first and everything already read is committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections import defaultdict
from datetime import UTC, datetime

from logferry.config.base import BuildContext
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.core.types import Record
from logferry.net.retry import Backoff
from logferry.net.sockets import dual_stack_socket, udp_socket
from logferry.observe.events import (
    ReceiverConnectionsChanged,
    ReceiverMessagesCounted,
    ReceiverMessagesDropped,
)
from logferry.observe.logging import log_event
from logferry.observe.metrics import Metrics
from logferry.sources.syslog.config import SyslogConfig
from logferry.sources.syslog.intake import Chunk, Intake
from logferry.sources.syslog.listeners import (
    Counters,
    SenderPolicy,
    TcpReceiver,
    UdpReceiver,
    kernel_udp_drops,
    server_tls_context,
)
from logferry.sources.syslog.messages import MessageReader, Reject

__all__ = ["MAX_SENDER_LABELS", "SyslogSource"]

#: Senders named in metrics per source; UDP sender addresses can be spoofed, so the label set is capped.
MAX_SENDER_LABELS = 1000
DEFAULT_STALE_AFTER_SECS = 3600.0
# How often drops (and the kernel's UDP drop count) are turned into metrics.
_REPORT_DROPS_SECS = 1.0
_HIGH_BYTES = 64 * 1024 * 1024


class SyslogSource:
    def __init__(self, name: str, cfg: SyslogConfig, ctx: BuildContext) -> None:
        self.name = name
        self.cfg = cfg
        self._metrics: Metrics = ctx.metrics
        self._stale_after = cfg.stale_after_secs or DEFAULT_STALE_AFTER_SECS
        self._reader = MessageReader(cfg)
        self._intake = Intake(batch=cfg.batch_events, high_water=4 * cfg.batch_events, high_bytes=_HIGH_BYTES)
        self._policy = SenderPolicy(cfg.allowed_senders)
        self._counters = Counters()
        self._senders: set[str] = set()
        self._server: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_sock: socket.socket | None = None
        self._kernel_drops = 0
        #: The bound address (the port is known only after binding when the config says 0).
        self.address: tuple[str, int] | None = None

    @property
    def stale_after_secs(self) -> float:
        return self._stale_after

    @property
    def pending(self) -> int:
        """Messages received and not committed yet."""
        return self._intake.pending

    async def check(self) -> CheckResult:
        host, port = self.cfg.address
        if self.cfg.tls is not None:
            try:
                server_tls_context(self.cfg.tls)
            except ValueError as exc:
                return CheckResult(False, str(exc))
            who = (
                "senders need a certificate from tls.client_ca_file"
                if self.cfg.tls.client_ca_file
                else ("any sender may connect (no client_ca_file)")
            )
        elif self.cfg.allowed_senders:
            who = f"senders from {', '.join(self.cfg.allowed_senders)} only"
        else:
            who = "any sender may send (no allowed_senders)"
        return CheckResult(True, f"listens on {self.cfg.protocol} {host}:{port}; {who}")

    async def close(self) -> None:
        self._close_listener()

    async def run(self, ctx: SourceContext) -> None:
        if not await self._listen(ctx):
            return
        assert self.address is not None
        log_event(
            ctx.logger, logging.INFO, "syslog_listening", source=self.name, protocol=self.cfg.protocol,
            address=f"{self.address[0]}:{self.address[1]}", format=self.cfg.format,
        )  # fmt: skip
        reporter = asyncio.create_task(self._report_drops_every(ctx))
        try:
            while not ctx.stopping.is_set():
                chunks = await self._intake.next_batch(self.cfg.flush_secs, ctx.stopping)
                await self._commit(ctx, chunks)
        finally:
            reporter.cancel()
            # Stop taking data first (the listening socket and every connection: a sender whose
            # connection closes keeps what it has not sent and reconnects later), then commit what was
            # already read.
            self._report_drops()
            self._close_listener()
            await self._commit(ctx, self._intake.take())

    async def _listen(self, ctx: SourceContext) -> bool:
        backoff = Backoff(initial_secs=1.0, max_secs=60.0)
        host, port = self.cfg.address
        while not ctx.stopping.is_set():
            try:
                await self._bind(host, port)
                return True
            except (OSError, ValueError) as exc:
                # ValueError: an ssl key/cert that does not load is a config fault worth the same red health.
                reason = _why(exc)
                ctx.poll_failed(
                    f"cannot listen on {self.cfg.protocol} {host}:{port}: {reason}", type(exc).__name__
                )
                if not await ctx.sleep(backoff.next_delay()):
                    break
        return False

    async def _bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        if cfg.protocol == "udp":
            sock = udp_socket(host, port, cfg.udp_receive_buffer_bytes)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: UdpReceiver(cfg, self._intake, self._policy, self._counters), sock=sock
            )
            self._udp, self._udp_sock = transport, sock
            self._kernel_drops = 0  # a new socket counts from zero
            self.address = sock.getsockname()[:2]
            return
        tls = server_tls_context(cfg.tls) if cfg.tls is not None else None
        dual_stack = dual_stack_socket(host, port)

        def receiver() -> TcpReceiver:
            return TcpReceiver(cfg, self._intake, self._policy, self._counters, self._connections_changed)

        handshake = 30.0 if tls else None
        if dual_stack is not None:
            self._server = await loop.create_server(
                receiver, sock=dual_stack, ssl=tls, ssl_handshake_timeout=handshake
            )
        else:
            self._server = await loop.create_server(
                receiver, host, port, ssl=tls, ssl_handshake_timeout=handshake
            )
        self.address = self._server.sockets[0].getsockname()[:2]

    def _connections_changed(self, open_now: int, peer: str) -> None:
        ReceiverConnectionsChanged(self.name, open_now, peer).emit(self._metrics)

    def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for connection in list(self._counters.connections):
            connection.close()
        if self._udp is not None:
            self._udp.close()
            self._udp = self._udp_sock = None

    async def _commit(self, ctx: SourceContext, chunks: list[Chunk]) -> None:
        if not chunks:
            return
        records: list[Record] = []
        rejects: list[Reject] = []
        per_sender: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])
        read = self._reader.read
        for sender, at, frames in chunks:
            before = len(records)
            filtered = read(frames, sender, datetime.fromtimestamp(at, UTC), records, rejects)
            counts = per_sender[sender]
            counts[0] += len(records) - before
            counts[1] += filtered
        if records:
            await ctx.wait_capacity()
            await ctx.emit(records, None)
        await ctx.dead_letters(rejects)
        for sender, (messages, filtered) in per_sender.items():
            ReceiverMessagesCounted(self.name, self._label(sender), messages, filtered).emit(self._metrics)
        ctx.poll_succeeded()

    def _label(self, sender: str) -> str:
        if sender in self._senders:
            return sender
        if len(self._senders) < MAX_SENDER_LABELS:
            self._senders.add(sender)
            return sender
        return "other"

    async def _report_drops_every(self, ctx: SourceContext) -> None:
        # Its own task: drops happen exactly while the commit loop waits for room in the outbox.
        while await ctx.sleep(_REPORT_DROPS_SECS):
            self._report_drops()

    def _report_drops(self) -> None:
        c = self._counters
        for reason in ("queue_full", "denied", "too_many_connections"):
            n = getattr(c, reason)
            if n:
                setattr(c, reason, 0)
                ReceiverMessagesDropped(self.name, reason, n).emit(self._metrics)
        if self._udp_sock is not None:
            with contextlib.suppress(OSError, ValueError):
                total = kernel_udp_drops(self._udp_sock)
                if total is not None and total > self._kernel_drops:
                    ReceiverMessagesDropped(self.name, "kernel", total - self._kernel_drops).emit(
                        self._metrics
                    )
                    self._kernel_drops = total


def _why(exc: Exception) -> str:
    """asyncio words a failed bind as "error while attempting to bind on address (…): address already in
    use"; the reason only needs the system's words (and the file, for a certificate that is missing)."""
    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, ssl.SSLError):
        text = os.strerror(exc.errno)
        return f"{text}: {exc.filename}" if exc.filename else text
    return str(exc)
