"""``logferry sim beats`` checked independently of our sink: pylogbeat's client, raw bytes, the harness."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path
from typing import Any

import aiohttp
import pylogbeat  # type: ignore[import-untyped]  # no type hints published
import pytest

from logferry.sim import run_standalone
from logferry.sim.beats import BeatsSim
from logferry.sim.tls import make_self_signed
from logferry.sinks.logstash.protocol import encode_ack, encode_window
from tests.conftest import wait_for


def pylogbeat_send(sim: BeatsSim, events: list[dict[str, Any]], **tls: Any) -> None:
    with pylogbeat.PyLogBeatClient("127.0.0.1", sim.lumberjack_port, **tls) as client:
        client.send(events)


async def test_pylogbeat_events_arrive_exactly(sim: BeatsSim) -> None:
    events = [{"message": f"line {i}", "nested": {"i": i, "u": "é✓"}} for i in range(50)]
    await asyncio.to_thread(pylogbeat_send, sim, events)
    assert sim.events == events
    assert sim.stats()["windows"] == 1


async def test_message_or_line_is_taken_out_and_stringified_like_the_beats_input(sim: BeatsSim) -> None:
    events: list[dict[str, Any]] = [
        {"message": {"text": "login failed", "code": 4625, "ok": False, "to": ["a", None]}},
        {"file": "a.c", "line": 42},
        {"message": None, "line": 1.5},  # the remaining null message is set over the codec's
        {"message": "kept", "line": 7},
        {"message": None, "line": None, "x": 1},
    ]
    await asyncio.to_thread(pylogbeat_send, sim, events)
    assert sim.events == [
        {"message": "{text=login failed, code=4625, ok=false, to=[a, null]}"},
        {"file": "a.c", "message": "42"},
        {"message": None},
        {"message": "kept", "line": 7},
        {"message": None, "line": None, "x": 1},
    ]


async def test_pylogbeat_over_tls() -> None:
    sim = BeatsSim()
    await sim.start(tls=True)
    try:
        await asyncio.to_thread(pylogbeat_send, sim, [{"a": 1}], ssl_enable=True, ca_certs=sim.ca_file)
        assert sim.events == [{"a": 1}]
    finally:
        await sim.stop()


async def raw_exchange(sim: BeatsSim, data: bytes, answer: int | None = None) -> bytes:
    """Send ``data``; read ``answer`` bytes, or everything until the simulator closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.lumberjack_port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read() if answer is None else reader.readexactly(answer), 5)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "garbage",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"2W\x00\x00\x00\x01" + b"2X" + b"\x00" * 8,
        b"2W\x00\x00\x00\x01" + b"2J" + struct.pack(">II", 1, 7) + b"[1,2,3]",
        b"2J" + struct.pack(">II", 1, 2) + b"{}",
    ],
)
async def test_malformed_frames_close_the_connection_and_the_sim_serves_on(
    sim: BeatsSim, garbage: bytes
) -> None:
    assert await raw_exchange(sim, garbage) == b""
    assert sim.stats()["protocol_errors"] == 1
    assert await raw_exchange(sim, encode_window([b'{"ok":1}']), answer=6) == encode_ack(1)
    assert sim.events == [{"ok": 1}]


async def test_an_empty_window_gets_ack_zero(sim: BeatsSim) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.lumberjack_port)
    writer.write(encode_window([]))
    assert await asyncio.wait_for(reader.readexactly(6), 5) == encode_ack(0)
    writer.close()


async def test_harness_routes(sim: BeatsSim) -> None:
    async with aiohttp.ClientSession() as http:
        await asyncio.to_thread(pylogbeat_send, sim, [{"a": 1}])
        async with http.get(f"{sim.url}/sim/events") as r:
            assert await r.json() == [{"a": 1}]
        async with http.post(f"{sim.url}/sim/beats/behaviour", json={"ack": False}) as r:
            assert r.status == 200 and (await r.json())["ack"] is False
        for wrong in ({"no_such": 1}, {"ack": "no"}, {"partial_ack_every": 1.5}, {"busy_secs": -1}, [1]):
            async with http.post(f"{sim.url}/sim/beats/behaviour", json=wrong) as r:
                assert r.status == 400, (wrong, await r.text())
        assert sim.options.ack is False and sim.options.partial_ack_every == 0
        async with http.post(f"{sim.url}/sim/beats/behaviour", json={"busy_secs": 2}) as r:
            assert r.status == 200 and sim.options.busy_secs == 2
        async with http.post(f"{sim.url}/sim/beats/outage") as r:
            assert r.status == 200
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", sim.lumberjack_port)
        async with http.delete(f"{sim.url}/sim/beats/outage") as r:
            assert r.status == 200
        _, writer = await asyncio.open_connection("127.0.0.1", sim.lumberjack_port)
        writer.close()
        async with http.get(f"{sim.url}/sim/stats") as r:
            stats = json.loads(await r.text())
        assert stats["generated"] == 1 and stats["listening"] is True
        async with http.delete(f"{sim.url}/sim/events") as r:
            assert r.status == 200
        await wait_for(lambda: not sim.events)


async def test_require_client_cert_without_tls_is_an_error(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(make_self_signed("client").cert_pem)
    argv = ["--require-client-cert", "--client-ca-file", str(ca)]
    with pytest.raises(ValueError, match="require_client_cert needs TLS: start the simulator with --tls"):
        await run_standalone("beats", "127.0.0.1", 0, False, argv)
    with pytest.raises(ValueError, match="require_client_cert needs client_ca_file"):
        BeatsSim(require_client_cert=True)
    async with BeatsSim() as plain:
        with pytest.raises(ValueError, match="needs TLS"):
            plain.behave(require_client_cert=True, client_ca_file=str(ca))
