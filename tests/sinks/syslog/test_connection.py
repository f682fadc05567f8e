"""What "delivered" means on a stream, a collector that closes or stalls, and UDP name lookups."""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

import logferry.sinks.syslog.transport as transport_module
from logferry.core.sink import Action
from logferry.sim.peers import free_port
from tests.conftest import wait_for
from tests.sinks.syslog.conftest import build_sink
from tests.sources.syslog.conftest import TLSFiles


def small_buffer_socket() -> socket.socket:
    """A listening socket with a small receive buffer, so a collector that does not read fills fast."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited by accepted connections
    sock.bind(("127.0.0.1", 0))
    return sock


class StallingCollector(asyncio.Protocol):
    """Stops reading after the first bytes until ``resume`` is set, then keeps every byte, also of
    connections that break (a stream reader would drop its buffer when the sink aborts a TLS one)."""

    resume: asyncio.Event
    received: set[int]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.data = bytearray()

    def data_received(self, data: bytes) -> None:
        self.data += data
        if not self.resume.is_set() and self.transport.is_reading():
            self.transport.pause_reading()
            asyncio.ensure_future(self.resume.wait()).add_done_callback(self._resume)

    def _resume(self, _: object) -> None:
        if not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.received.update(int(n) for n in re.findall(rb'"seq":(\d+)', self.data))


@pytest.mark.parametrize("protocol", ["tcp", "tls"])
async def test_delivered_means_no_byte_is_left_in_asyncio_buffers(
    tmp_path: Path, certs: TLSFiles, protocol: str
) -> None:
    """A collector stops reading for longer than timeout_secs, then resumes. The sink drops the stalled
    connection and retries; whatever it reported delivered before must still reach the collector, so
    nothing it called delivered may have been waiting in a user-space buffer that the drop threw away."""

    class Collector(StallingCollector):
        resume = asyncio.Event()
        received: set[int] = set()

    tls: ssl.SSLContext | None = None
    options: dict[str, Any] = {"host": "127.0.0.1", "protocol": protocol, "timeout_secs": 0.3}
    if protocol == "tls":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(certs.server_cert, certs.server_key)
        options.update(host="localhost", tls={"ca_file": str(certs.server_cert)})
    sock = small_buffer_socket()
    server = await asyncio.get_running_loop().create_server(Collector, sock=sock, ssl=tls)
    sink = build_sink(tmp_path, port=sock.getsockname()[1], **options)
    delivered: set[int] = set()
    retries = 0
    seq = 0
    try:
        # Like the delivery loop: a retried request is sent again whole, until delivered.
        while retries < 3 or len(delivered) < 2000:
            batch = range(seq, seq + 20)
            seq += 20
            lines = sink.encode([{"seq": n, "pad": "x" * 400} for n in batch])
            while (await sink.send(lines)).action is not Action.DELIVERED:
                retries += 1
                if retries == 3:
                    Collector.resume.set()
                # A collector that reads again takes every request (at most one retry each).
                assert retries < 3 + len(delivered) // 20 + 2, "sends keep failing after resume"
            delivered.update(batch)
    finally:
        await sink.close()
        server.close()
    await wait_for(lambda: delivered <= Collector.received, timeout=5)


@pytest.mark.parametrize("farewell", [b"", b"421 closing idle connection\n"])
async def test_a_connection_the_collector_closed_is_replaced_before_writing(
    tmp_path: Path, farewell: bytes
) -> None:
    """Writing into a connection the peer has closed would "succeed" and lose the data, also when the
    peer wrote something before closing (which the sink never asked for and never reads)."""
    received: list[bytes] = []
    first_closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not first_closed.is_set():
            writer.write(farewell)
            received.append(await reader.readuntil(b"\n"))
            writer.close()  # a graceful close: FIN, as a collector restarting does
            await writer.wait_closed()
            first_closed.set()
            return
        received.append(await reader.read())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        sink = build_sink(tmp_path, host="127.0.0.1", port=server.sockets[0].getsockname()[1], framing="lf")
        one, two = sink.encode([{"n": 1}, {"n": 2}])
        try:
            assert (await sink.send([one])).action is Action.DELIVERED
            await wait_for(first_closed.is_set, timeout=5)
            # The close reaches the sink a moment later; until then a write would go to the old socket.
            await wait_for(lambda: not sink._transport._alive(), timeout=5)  # type: ignore[attr-defined]
            assert (await sink.send([two])).action is Action.DELIVERED
        finally:
            await sink.close()
        await wait_for(lambda: len(received) == 2, timeout=5)
    assert received == [one + b"\n", two + b"\n"]


async def test_udp_looks_the_collector_up_again_periodically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No connection breaks when a collector's address changes, so the name must be looked up again."""
    loop = asyncio.get_running_loop()
    lookups: list[str] = []
    real = loop.getaddrinfo

    async def counting(host: Any, *args: Any, **kwargs: Any) -> Any:
        lookups.append(host)
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counting)
    sink = build_sink(tmp_path, host="localhost", port=free_port(), protocol="udp")
    lines = sink.encode([{"a": 1}])
    try:
        await sink.send(lines)
        await sink.send(lines)
        assert lookups == ["localhost"]  # not once per request
        monkeypatch.setattr(transport_module, "RESOLVE_EVERY_SECS", 0.0)
        await sink.send(lines)
        assert lookups == ["localhost", "localhost"]
    finally:
        await sink.close()


async def test_udp_keeps_sending_to_the_old_address_while_dns_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo
    dns_up = True

    async def flaky(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not dns_up:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", flaky)
    collector = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    collector.bind(("127.0.0.1", 0))
    collector.settimeout(5)
    sink = build_sink(tmp_path, host="127.0.0.1", port=collector.getsockname()[1], protocol="udp")
    lines = sink.encode([{"a": 1}])
    try:
        assert (await sink.send(lines)).action is Action.DELIVERED
        dns_up = False
        monkeypatch.setattr(transport_module, "RESOLVE_EVERY_SECS", 0.0)
        assert (await sink.send(lines)).action is Action.DELIVERED
        assert [collector.recv(65536) for _ in range(2)] == [lines[0], lines[0]]
    finally:
        await sink.close()
        collector.close()
