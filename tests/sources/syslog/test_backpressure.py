"""When the outbox is full, TCP senders are held back by the kernel and UDP drops are counted exactly."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from tests.conftest import wait_for
from tests.sources.syslog.conftest import Receiver, receiver

BLOCKED_SINK = {"outbox_max_bytes": 32 * 1024, "max_backoff_secs": 0.2}


def _block(tmp_path: Path) -> tuple[Path, dict[str, object]]:
    """A file sink that cannot write: its directory is a regular file until the test removes it."""
    blocker = tmp_path / "blocked"
    blocker.write_text("not a directory")
    return blocker, {**BLOCKED_SINK, "path": str(blocker / "out.ndjson")}


def _send_until_blocked(host: str, port: int, limit: int) -> int:
    """Send numbered lines until a send makes no progress for 2 s; returns how many went out whole."""
    with socket.create_connection((host, port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        s.settimeout(2.0)
        sent = 0
        while sent < limit:
            line = b"<13>Nov 16 00:25:00 host app: seq=%08d %s\n" % (sent, b"x" * 150)
            try:
                s.sendall(line)
            except TimeoutError:
                # sendall may have written part of the line: end it so the receiver sees a short line.
                s.settimeout(None)
                s.sendall(b"\n")
                return sent
            sent += 1
        return sent


async def test_tcp_sender_is_held_back_then_everything_arrives(tmp_path: Path) -> None:
    blocker, sink = _block(tmp_path)
    limit = 2_000_000
    async with receiver(tmp_path, batch_events=200, sink=sink) as rx:
        sent = await asyncio.to_thread(_send_until_blocked, rx.host, rx.port, limit)
        # The outbox holds ~32 KiB and the receiver 4 batches: the rest waited in kernel buffers.
        assert 0 < sent < limit
        assert rx.service.pipeline.outbox_bytes["out"] >= BLOCKED_SINK["outbox_max_bytes"]
        blocker.unlink()
        rx.out = tmp_path / "blocked" / "out.ndjson"
        await wait_for(lambda: len(_seqs(rx)) >= sent, timeout=120)
        seqs = _seqs(rx)
        assert rx.metric('logferry_backpressure_wait_seconds_total{source="syslog"}') > 0
    assert seqs[:sent] == list(range(sent))
    assert len(seqs) <= sent + 1  # the partial line cut by the timeout, at most


def _seqs(rx: Receiver) -> list[int]:
    out = []
    for r in rx.records():
        msg = r["message"]
        if msg.startswith("seq=") and len(msg) == 4 + 8 + 1 + 150:
            out.append(int(msg[4:12]))
    return out


async def test_udp_overflow_is_counted_so_received_plus_dropped_equals_sent(tmp_path: Path) -> None:
    blocker, sink = _block(tmp_path)
    n = 5000
    async with receiver(tmp_path, protocol="udp", batch_events=100, sink=sink) as rx:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(n):
                s.sendto(b"<13>Nov 16 00:25:00 host app: udp %d" % i, (rx.host, rx.port))
                if i % 200 == 0:
                    await asyncio.sleep(0.01)  # let the receiver read: drops should come from the full queue

        def dropped(reason: str) -> float:
            return rx.metric(f'logferry_receiver_dropped_total{{reason="{reason}",source="syslog"}}')

        await wait_for(lambda: dropped("queue_full") > 0, timeout=30)
        blocker.unlink()
        rx.out = tmp_path / "blocked" / "out.ndjson"

        def balanced() -> bool:
            return len(rx.records()) + dropped("queue_full") + dropped("kernel") == n

        await wait_for(balanced, timeout=60)
        received = rx.records()
        assert rx.metric('logferry_receiver_messages_total{sender="127.0.0.1",source="syslog"}') == len(
            received
        )
    assert len({r["message"] for r in received}) == len(received)
    assert dropped("queue_full") > 0
