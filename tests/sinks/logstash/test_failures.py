"""How the ``logstash`` sink fails: what it says, which host it tries next, and what it leaves behind.

Every broken connection must be dropped at once (a graceful close waits on a peer that may never
read, and keeps the socket and the unsent window), and ``send`` must end even when Logstash only
sends keepalives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from logferry.core.sink import Action
from logferry.sim.beats import BeatsSim
from logferry.sim.tls import make_self_signed
from tests.conftest import wait_for
from tests.sinks.logstash.conftest import BuildSink, address, records

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

#: More than the kernel's socket buffers take from a peer that does not read (4 MiB send buffer).
STALLING_LINES = [b'{"x":"' + b"a" * 4000 + b'"}'] * 2000


def sockets_to(port: int) -> int:
    """This process's TCP sockets connected to 127.0.0.1:``port``: the sink's side of its connections."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[2].split(":")[1], 16) == port and fields[9] in inodes:
            count += 1
    return count


@contextlib.asynccontextmanager
async def tcp_peer(handler: Handler, rcvbuf: int | None = None) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 running ``handler`` per connection; yields its port."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # accepted sockets inherit it
    sock.bind(("127.0.0.1", 0))
    served: list[tuple[asyncio.StreamWriter, asyncio.Task[object]]] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        served.append((writer, task))
        await handler(reader, writer)

    server = await asyncio.start_server(serve, sock=sock)
    try:
        yield sock.getsockname()[1]
    finally:
        server.close()
        for writer, _ in served:
            writer.transport.abort()
        await asyncio.gather(*(task for _, task in served))


async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await writer.wait_closed()  # Logstash stuck in a GC pause, or with autoread off


async def speaks_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    await writer.wait_closed()


async def test_a_peer_that_stops_reading_is_a_write_stall_and_leaves_no_socket(build_sink: BuildSink) -> None:
    async with tcp_peer(never_reads, rcvbuf=4096) as port:
        sink = await build_sink([f"127.0.0.1:{port}"], timeout_secs=0.3, compression_level=0)
        for _ in range(3):
            result = await sink.send(STALLING_LINES)
            assert result.action is Action.RETRY
            assert f"write to 127.0.0.1:{port} stalled: no data taken for 0.3 s" in result.reason, result
        # A graceful close would have kept each socket (and its unsent window) open for ever.
        await wait_for(lambda: sockets_to(port) == 0, timeout=5)


async def test_a_peer_that_is_not_lumberjack_is_named_and_dropped(build_sink: BuildSink) -> None:
    async with tcp_peer(speaks_http) as port:
        sink = await build_sink([f"127.0.0.1:{port}"])
        result = await sink.send(sink.encode(records(2)))
        assert result.action is Action.RETRY
        assert f"127.0.0.1:{port} is not speaking Lumberjack v2" in result.reason, result
        await wait_for(lambda: sockets_to(port) == 0, timeout=5)


async def test_a_send_cancelled_mid_window_drops_the_connection(sim: BeatsSim, build_sink: BuildSink) -> None:
    sim.behave(busy_secs=3600, keepalive_secs=0.05)
    sink = await build_sink([address(sim)])
    task = asyncio.ensure_future(sink.send(sink.encode(records(2))))
    await wait_for(lambda: sim.keepalives > 0, timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_for(lambda: sim.stats()["open_connections"] == 0, timeout=5)


async def test_keepalives_alone_end_the_wait_after_max_ack_wait(build_sink: BuildSink) -> None:
    # A pipeline blocked for good: keepalives 10x faster than timeout_secs, for ever.
    async with BeatsSim(busy_secs=3600, keepalive_secs=0.05) as blocked, BeatsSim() as healthy:
        sink = await build_sink([address(blocked), address(healthy)], timeout_secs=0.5, max_ack_wait_secs=1)
        lines = sink.encode(records(3))
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = await sink.send(lines)
        waited = loop.time() - began
        assert result.action is Action.RETRY, result
        assert f"{address(blocked)} sent only keepalive ACKs for 1 s (max_ack_wait_secs)" in result.reason
        assert 1.0 <= waited < 10, waited
        assert blocked.keepalives >= 5
        await wait_for(lambda: blocked.stats()["open_connections"] == 0, timeout=5)  # aborted
        # The retry goes to the other host first: the blocked one rests like a failed host.
        assert (await sink.send(lines)).action is Action.DELIVERED
        assert (healthy.received, blocked.received) == (3, 0)


async def test_an_unresolvable_host_says_so(build_sink: BuildSink) -> None:
    sink = await build_sink(["no-such-host.invalid:5044"])
    result = await sink.send(sink.encode(records(1)))
    assert result.action is Action.RETRY
    assert "cannot connect to no-such-host.invalid:5044: cannot resolve no-such-host.invalid" in result.reason
    check = await sink.healthcheck()
    assert not check.ok and "cannot resolve no-such-host.invalid" in check.message


async def test_the_healthcheck_sees_a_mutual_tls_refusal(build_sink: BuildSink, tmp_path: Path) -> None:
    client_ca = tmp_path / "client-ca.pem"
    client_ca.write_bytes(make_self_signed("logferry-client").cert_pem)
    sim = BeatsSim(require_client_cert=True, client_ca_file=str(client_ca))
    await sim.start(tls=True)
    try:
        sink = await build_sink([address(sim)], tls={"ca_file": sim.ca_file, "server_name": "localhost"})
        check = await sink.healthcheck()
        assert not check.ok, check
        assert (
            "refused the TLS session" in check.message
            and "set tls.cert_file and tls.key_file" in check.message
        )
    finally:
        await sim.stop()


async def test_slow_start_halves_the_window_after_an_error(sim: BeatsSim, build_sink: BuildSink) -> None:
    sink = await build_sink([address(sim)], slow_start=True)
    assert (await sink.send(sink.encode(records(100)))).action is Action.DELIVERED
    assert sim.windows == 4  # 10 + 20 + 40 + 30; the next window may hold 160
    # Cut twice: the first cut looks like a pooled connection gone stale and gets one fresh try.
    sim.behave(cut_windows=2)
    lines = sink.encode(records(100, "b"))
    assert (await sink.send(lines)).action is Action.RETRY
    before = sim.windows
    assert (await sink.send(lines)).action is Action.DELIVERED
    assert sim.windows - before == 2  # 80 + 20: halved from 160, else one window of 100
