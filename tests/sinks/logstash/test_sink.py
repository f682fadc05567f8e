"""The ``logstash`` sink against the Beats simulator over real sockets: ACKs, hosts, TLS, compression."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from logferry.core.sink import Action, SourceAwareSink
from logferry.sim.beats import BeatsSim
from logferry.sim.peers import free_port
from logferry.sim.tls import make_self_signed
from logferry.sinks.logstash.encoder import fingerprint
from tests.sinks.logstash.conftest import BuildSink, address, records


async def test_events_arrive_beats_shaped_with_a_stable_id(sim: BeatsSim, build_sink: BuildSink) -> None:
    sink = await build_sink([address(sim)], index="filebeat")
    assert isinstance(sink, SourceAwareSink)  # the pipeline passes the source name to encode_from
    recs = records(3)
    lines = sink.encode_from("o365", recs)
    assert (await sink.send(lines)).action is Action.DELIVERED
    assert [e["id"] for e in sim.events] == ["r-0", "r-1", "r-2"]
    first = sim.events[0]
    assert first["@metadata"]["beat"] == "filebeat" and first["@metadata"]["source"] == "o365"
    assert first["@timestamp"].endswith("Z")
    # The same record encoded again (a re-fetch by the source) gets the same id; another does not.
    again = sink.encode(recs[:1])[0]
    assert f'"_id":"{first["@metadata"]["_id"]}"'.encode() in again
    assert len({e["@metadata"]["_id"] for e in sim.events}) == 3


async def test_a_record_with_its_own_timestamp_and_metadata_keeps_them(
    sim: BeatsSim, build_sink: BuildSink
) -> None:
    sink = await build_sink([address(sim)])
    rec = {"@timestamp": "2026-01-02T03:04:05.000Z", "@metadata": {"pipeline": "p1"}, "x": 1}
    assert (await sink.send(sink.encode([rec]))).action is Action.DELIVERED
    event = sim.events[0]
    assert event["@timestamp"] == "2026-01-02T03:04:05.000Z"
    assert event["@metadata"]["pipeline"] == "p1" and event["@metadata"]["beat"] == "logferry"


async def test_message_and_line_keep_their_meaning_through_the_beats_input(
    sim: BeatsSim, build_sink: BuildSink
) -> None:
    # The simulator applies the beats input's extract_target_field: without the shaping, the first
    # message would arrive as "{text=login failed, code=4625}" and the second `line` as message "42".
    sink = await build_sink([address(sim)])
    recs: list[dict[str, Any]] = [
        {"message": {"text": "login failed", "code": 4625}},
        {"file": "a.c", "line": 42},
        {"message": 7, "message_data": "the record's own"},
        {"message": "as it is", "line": 3},
        {"message": None, "line": 5},
    ]
    assert (await sink.send(sink.encode(recs))).action is Action.DELIVERED
    got = [{k: v for k, v in e.items() if not k.startswith("@")} for e in sim.events]
    assert got[0] == {
        "message": '{"text":"login failed","code":4625}',
        "message_data": {"text": "login failed", "code": 4625},
    }
    assert got[1]["line"] == 42 and json.loads(got[1]["message"]) == recs[1]
    assert got[2] == {"message": "7", "message_data": "the record's own"}
    assert got[3] == recs[3]
    assert got[4]["line"] == 5 and json.loads(got[4]["message"]) == recs[4]
    # The id is the fingerprint of the record as the source gave it.
    assert [e["@metadata"]["_id"] for e in sim.events] == [fingerprint(orjson.dumps(r)) for r in recs]


@pytest.mark.parametrize("level", [0, 3])
async def test_compression_on_and_off(sim: BeatsSim, build_sink: BuildSink, level: int) -> None:
    sink = await build_sink([address(sim)], compression_level=level)
    lines = sink.encode(records(500))
    assert (await sink.send(lines)).action is Action.DELIVERED
    assert sim.received == 500
    raw = sum(len(line) + 10 for line in lines) + 6
    assert sim.bytes_received == raw if level == 0 else sim.bytes_received < raw / 3


async def test_slow_start_grows_the_window(sim: BeatsSim, build_sink: BuildSink) -> None:
    sink = await build_sink([address(sim)], slow_start=True)
    assert (await sink.send(sink.encode(records(100)))).action is Action.DELIVERED
    assert sim.windows == 4  # 10 + 20 + 40 + the remaining 30
    assert sim.received == 100


async def test_partial_acks_are_followed_to_the_final_one(sim: BeatsSim, build_sink: BuildSink) -> None:
    sim.behave(partial_ack_every=7)
    sink = await build_sink([address(sim)])
    assert (await sink.send(sink.encode(records(100)))).action is Action.DELIVERED
    assert sim.received == 100


async def test_a_retry_resends_only_what_was_not_acked(sim: BeatsSim, build_sink: BuildSink) -> None:
    sim.behave(partial_ack_every=10, cut_windows=1, cut_after_events=25)
    sink = await build_sink([address(sim)], compression_level=0)
    lines = sink.encode(records(100))
    first = await sink.send(lines)
    assert first.action is Action.RETRY and "closed the connection" in first.reason
    assert sim.received == 20  # two partial ACKs before the connection dropped
    assert (await sink.send(lines)).action is Action.DELIVERED
    assert [e["n"] for e in sim.events] == list(range(100))  # no duplicates, nothing lost


async def test_no_ack_is_a_retry_and_the_resend_arrives_again(sim: BeatsSim, build_sink: BuildSink) -> None:
    sim.behave(ack=False)
    sink = await build_sink([address(sim)], timeout_secs=0.3)
    lines = sink.encode(records(5))
    result = await sink.send(lines)
    assert result.action is Action.RETRY and "no ACK" in result.reason
    assert sim.received == 5  # processed, but the ACK never came
    sim.behave(ack=True)
    assert (await sink.send(lines)).action is Action.DELIVERED
    ids = [e["@metadata"]["_id"] for e in sim.events]
    assert len(ids) == 10 and len(set(ids)) == 5  # duplicates, each with its original id


async def test_keepalive_acks_hold_the_connection_while_logstash_is_busy(
    sim: BeatsSim, build_sink: BuildSink
) -> None:
    # Margins for a loaded runner: keepalives 12x as often as timeout_secs, busy for twice of it.
    sim.behave(busy_secs=1.2, keepalive_secs=0.05)
    sink = await build_sink([address(sim)], timeout_secs=0.6)
    assert (await sink.send(sink.encode(records(3)))).action is Action.DELIVERED
    assert sim.keepalives >= 5
    sim.behave(keepalive_secs=0)  # busy without keepalives: the wait times out
    result = await sink.send(sink.encode(records(3)))
    assert result.action is Action.RETRY and f"no ACK from {address(sim)} within 0.6 s" in result.reason


async def test_a_pooled_connection_the_server_dropped_is_replaced_without_a_retry(
    sim: BeatsSim, build_sink: BuildSink
) -> None:
    sink = await build_sink([address(sim)])
    assert (await sink.send(sink.encode(records(2)))).action is Action.DELIVERED
    await sim.refuse_connections()  # drops the open connection, as Logstash's idle timeout does
    await sim.accept_connections()
    assert (await sink.send(sink.encode(records(2, "s")))).action is Action.DELIVERED
    assert sim.received == 4 and sim.connections == 2


async def test_failover_moves_to_the_next_host_and_stays_there(build_sink: BuildSink) -> None:
    async with BeatsSim() as first, BeatsSim() as second:
        sink = await build_sink([address(first), address(second)])
        assert (await sink.send(sink.encode(records(3)))).action is Action.DELIVERED
        await first.refuse_connections()  # drops the open connection and refuses new ones
        assert (await sink.send(sink.encode(records(3, "b")))).action is Action.DELIVERED
        await first.accept_connections()
        assert (await sink.send(sink.encode(records(3, "c")))).action is Action.DELIVERED
        assert (first.received, second.received) == (3, 6)


async def test_a_host_that_refuses_connections_is_skipped_within_the_request(build_sink: BuildSink) -> None:
    async with BeatsSim() as up:
        down = f"127.0.0.1:{free_port()}"
        sink = await build_sink([down, address(up)])
        assert (await sink.send(sink.encode(records(3)))).action is Action.DELIVERED
        assert up.received == 3
        check = await sink.healthcheck()
        assert check.ok and check.message.startswith(f"{address(up)} accepts") and down in check.message


async def test_loadbalance_takes_turns(build_sink: BuildSink) -> None:
    async with BeatsSim() as a, BeatsSim() as b:
        sink = await build_sink([address(a), address(b)], loadbalance=True)
        for i in range(4):
            assert (await sink.send(sink.encode(records(5, str(i))))).action is Action.DELIVERED
        assert (a.received, b.received) == (10, 10)
        await a.refuse_connections()
        for i in range(2):
            result = await sink.send(sink.encode(records(5, f"x{i}")))
            assert result.action is Action.DELIVERED, result.reason
        assert b.received == 20


async def test_all_hosts_down_is_a_retry_and_an_unhealthy_check(build_sink: BuildSink) -> None:
    ports = [free_port(), free_port()]
    sink = await build_sink([f"127.0.0.1:{p}" for p in ports])
    result = await sink.send(sink.encode(records(1)))
    assert result.action is Action.RETRY
    assert all(f"127.0.0.1:{p}" in result.reason for p in ports)
    check = await sink.healthcheck()
    assert not check.ok and all(f"cannot connect to 127.0.0.1:{p}" in check.message for p in ports)


async def test_tls_verifies_the_server_certificate(build_sink: BuildSink) -> None:
    sim = BeatsSim()
    await sim.start(tls=True)
    try:
        trusted = await build_sink([address(sim)], tls={"ca_file": sim.ca_file})
        assert (await trusted.send(trusted.encode(records(2)))).action is Action.DELIVERED
        untrusted = await build_sink([address(sim)], tls={"enabled": True})
        result = await untrusted.send(untrusted.encode(records(2)))
        assert result.action is Action.RETRY and "certificate verify failed" in result.reason
        assert sim.received == 2
    finally:
        await sim.stop()


async def test_mutual_tls_needs_the_client_certificate(build_sink: BuildSink, tmp_path: Path) -> None:
    client = make_self_signed("logferry-client")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(client.cert_pem)
    key.write_bytes(client.key_pem)
    sim = BeatsSim(require_client_cert=True, client_ca_file=str(cert))
    await sim.start(tls=True)
    try:
        tls = {"ca_file": sim.ca_file, "server_name": "localhost"}
        with_cert = await build_sink(
            [address(sim)], tls={**tls, "cert_file": str(cert), "key_file": str(key)}
        )
        assert (await with_cert.send(with_cert.encode(records(2)))).action is Action.DELIVERED
        without = await build_sink([address(sim)], tls=tls)
        result = await without.send(without.encode(records(2)))
        assert result.action is Action.RETRY and "refused the TLS session" in result.reason, result
        assert "set tls.cert_file and tls.key_file" in result.reason
        assert sim.received == 2
    finally:
        await sim.stop()


async def test_close_ends_the_connections(sim: BeatsSim, build_sink: BuildSink) -> None:
    sink = await build_sink([address(sim)])
    assert (await sink.send(sink.encode(records(1)))).action is Action.DELIVERED
    assert len(sim._open) == 1
    await sink.close()
    for _ in range(100):
        if not sim._open:
            break
        await asyncio.sleep(0.01)
    assert not sim._open
