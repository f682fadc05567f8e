"""The syslog source receiving from util-linux ``logger`` and raw sockets, through to the file sink."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.sim.peers import free_port
from logferry.sources.syslog.source import SyslogSource
from tests.conftest import wait_for
from tests.sources.syslog.conftest import logger, receiver

SOPHOS_V19 = (
    '<30>Nov 16 00:25:00 sophos device_name="SFW" timestamp="2021-11-15T18:25:00-0600" device_model="XG230" '
    'device_serial_id="C01001BQC8TFFFF" log_id=010101600001 log_type="Firewall" log_component="Firewall Rule" '
    'log_subtype="Allowed" fw_rule_id=5 src_ip=10.0.0.5 dst_ip=192.0.2.1 src_port=51234 dst_port=443 '
    "bytes_sent=1234"
)
SOPHOS_LEGACY = (
    '<30>device="SFW" date=2020-05-18 time=14:38:48 timezone="CEST" device_name="XG230" '
    'device_id=1234567890123456 log_id=010302602002 log_type="Firewall" log_component="Appliance Access" '
    'log_subtype="Denied" status="Deny" priority=Information src_port=0'
)


async def send_tcp(host: str, port: int, data: bytes) -> None:
    _, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
@pytest.mark.parametrize("rfc", ["--rfc3164", "--rfc5424", "--rfc5424=notq"])
async def test_logger_messages_arrive_with_their_header_fields(
    tmp_path: Path, protocol: str, rfc: str
) -> None:
    async with receiver(tmp_path, protocol=protocol) as rx:
        await logger("--server", rx.host, "--port", str(rx.port), f"--{protocol}", rfc, "-p", "local4.warning",
                     "-t", "fw", "--id=4242", "hello from logger")  # fmt: skip
        [rec] = await rx.wait_records(1)
    assert rec["message"] == "hello from logger"
    assert (rec["facility_name"], rec["severity_name"], rec["app_name"], rec["procid"]) == (
        "local4",
        "warning",
        "fw",
        "4242",
    )
    assert rec["hostname"] == socket.gethostname()
    assert rec["sender"] == "127.0.0.1"
    assert rec["syslog_format"] == ("rfc3164" if rfc == "--rfc3164" else "rfc5424")
    assert rec["timestamp"].endswith("Z") and rec["received_at"].endswith("Z")
    assert ("timeQuality" in (rec["structured_data"] or {})) == (rfc == "--rfc5424")


async def test_logger_octet_counted_and_lf_framed_share_one_listener_over_ipv6(tmp_path: Path) -> None:
    async with receiver(tmp_path, ipv6=True) as rx:
        assert rx.host == "::1"
        await logger("--server", "::1", "--port", str(rx.port), "--tcp", "--rfc5424", "--octet-count",
                     "counted\nwith a newline inside")  # fmt: skip
        await logger("--server", "::1", "--port", str(rx.port), "--tcp", "--rfc3164", "lf framed")
        recs = await rx.wait_records(2)
    assert sorted(r["message"] for r in recs) == ["counted\nwith a newline inside", "lf framed"]
    assert {r["sender"] for r in recs} == {"::1"}


async def test_many_messages_on_one_connection_arrive_in_order_exactly_once(tmp_path: Path) -> None:
    n = 20_000
    lines = b"".join(b"<134>Nov 16 00:25:00 host app: message %d\n" % i for i in range(n))
    async with receiver(tmp_path, batch_events=1000) as rx:
        await send_tcp(rx.host, rx.port, lines)
        recs = await rx.wait_records(n)
        await asyncio.sleep(0.3)
        recs = rx.records()
        assert rx.metric('logferry_receiver_messages_total{sender="127.0.0.1",source="syslog"}') == n
    assert [r["message"] for r in recs] == [f"message {i}" for i in range(n)]


async def test_sophos_lines_both_formats_with_known_devices_and_timezone(tmp_path: Path) -> None:
    async with receiver(
        tmp_path,
        format="sophos",
        timezone="Europe/Berlin",
        known_devices={"C01001BQC8TFFFF": "fw1.example.com"},
        keep_raw=True,
    ) as rx:
        await send_tcp(rx.host, rx.port, (SOPHOS_V19 + "\n" + SOPHOS_LEGACY + "\n").encode())
        v19, legacy = await rx.wait_records(2)
    assert v19["device_hostname"] == "fw1.example.com"
    assert v19["event_time"] == "2021-11-16T00:25:00Z"
    assert (v19["src_port"], v19["bytes_sent"], v19["severity_code"]) == (51234, 1234, 6)
    assert v19["syslog"]["hostname"] == "sophos" and "message" not in v19["syslog"]
    assert v19["raw"] == SOPHOS_V19 and v19["sender"] == "127.0.0.1"
    assert legacy["sfos_format"] == "legacy"
    # CEST is ambiguous in general; the configured zone reads 14:38:48 as 12:38:48 UTC.
    assert legacy["event_time"] == "2020-05-18T12:38:48Z"
    assert legacy["device_hostname"] == "XG230"


@pytest.mark.parametrize(
    ("fmt", "body", "expect"),
    [
        ("cef", "CEF:0|Vendor|Product|1.0|100|Detected|5|src=10.0.0.1 msg=a b\\=c", {"name": "Detected"}),
        ("leef", "LEEF:2.0|Vendor|Product|1.0|42|^|src=10.0.0.1^usrName=bob", {"event_id": "42"}),
        ("kv", 'user=alice action="log in" result=ok', {"user": "alice", "action": "log in"}),
    ],
)
async def test_body_formats(tmp_path: Path, fmt: str, body: str, expect: dict[str, str]) -> None:
    async with receiver(tmp_path, format=fmt) as rx:
        await send_tcp(rx.host, rx.port, f"<13>Nov 16 00:25:00 host app: {body}\n".encode())
        [rec] = await rx.wait_records(1)
    for key, value in expect.items():
        assert rec[key] == value
    assert rec["syslog"]["app_name"] == "app"


async def test_unparsable_messages_are_dead_lettered_and_the_connection_goes_on(tmp_path: Path) -> None:
    async with receiver(tmp_path, format="sophos", max_message_bytes=1024) as rx:
        big = b"<13>" + b"x" * 5000
        await send_tcp(rx.host, rx.port, b"<13>Nov 16 00:25:00 host not key value\n" + big + b"\n<999>bad pri\n"
                       + SOPHOS_V19.encode() + b"\n")  # fmt: skip
        [rec] = await rx.wait_records(1)
        await wait_for(lambda: rx.dead_letters(), timeout=10)
        await wait_for(lambda: _count(rx.dead_letters(), 3), timeout=10)
        dead = await rx.dead_letters()
    assert rec["log_id"] == "010101600001"
    reasons = sorted(r for r, _ in dead)
    assert any("expected key=value" in r for r in reasons)
    assert any("exceeds 1024 bytes" in r for r in reasons)
    assert any("invalid PRI" in r for r in reasons)
    assert all(r.endswith("(from 127.0.0.1)") for r in reasons)
    assert any(p == b"<999>bad pri" for _, p in dead)


async def _count(coro: object, n: int) -> bool:
    assert asyncio.iscoroutine(coro)
    return len(await coro) >= n


async def test_facility_and_severity_filters_count_what_they_leave_out(tmp_path: Path) -> None:
    async with receiver(tmp_path, protocol="udp", facilities=["local4"], severity="warning") as rx:
        for pri in ("local4.err", "local4.info", "user.err", "local4.warning"):
            await logger("--server", rx.host, "--port", str(rx.port), "--udp", "-p", pri, pri)
        recs = await rx.wait_records(2)
        await wait_for(
            lambda: rx.metric('logferry_receiver_filtered_total{source="syslog"}') == 2, timeout=10
        )
    assert sorted(r["message"] for r in recs) == ["local4.err", "local4.warning"]


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_senders_outside_allowed_senders_are_refused_and_counted(tmp_path: Path, protocol: str) -> None:
    async with receiver(tmp_path, protocol=protocol, allowed_senders=["10.0.0.0/8"]) as rx:
        # logger cannot tell: TCP connects before the receiver closes it, UDP never answers.
        await logger("--server", rx.host, "--port", str(rx.port), f"--{protocol}", "not allowed")
        await wait_for(
            lambda: rx.metric('logferry_receiver_dropped_total{reason="denied",source="syslog"}') >= 1,
            timeout=10,
        )
        assert rx.records() == []


async def test_silent_listener_turns_red_and_a_message_turns_it_green(tmp_path: Path) -> None:
    async with receiver(tmp_path, stale_after_secs=1.0) as rx:
        await wait_for(lambda: not rx.service.pipeline.status().healthy, timeout=10)
        [comp] = [c for c in rx.service.pipeline.status().components if c.name == "syslog"]
        assert comp.reason is not None and "no successful poll since start" in comp.reason
        await send_tcp(rx.host, rx.port, b"<13>hello\n")
        await wait_for(lambda: rx.service.pipeline.status().healthy, timeout=10)


async def test_bind_failure_reason_then_recovery(tmp_path: Path) -> None:
    from tests.conftest import running

    port = free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    out = tmp_path / "out.ndjson"
    config = {
        "sources": {"syslog": {"type": "syslog", "protocol": "tcp", "listen": f"127.0.0.1:{port}"}},
        "sinks": {"out": {"type": "file", "inputs": ["syslog"], "path": str(out)}},
    }
    async with running(config, tmp_path) as service:
        rt = service.pipeline.runtimes["syslog"]
        await wait_for(lambda: rt.last_error is not None, timeout=10)
        assert f"cannot listen on tcp 127.0.0.1:{port}: Address already in use" == rt.last_error
        blocker.close()
        src = service.pipeline.sources["syslog"].source
        assert isinstance(src, SyslogSource)
        await wait_for(lambda: src.address is not None, timeout=30)
        await send_tcp("127.0.0.1", port, b"<13>after the port came free\n")
        await wait_for(lambda: out.exists() and b"after the port came free" in out.read_bytes(), timeout=10)


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ({"protocol": "tls"}, "protocol 'tls' needs a 'tls' block"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"listen": "514"}, "must be HOST:PORT"),
        ({"listen": "syslog.example:514"}, "is not an IP address"),
        ({"facilities": ["local9"]}, "unknown facilities ['local9']"),
        ({"severity": "loud"}, "unknown severity 'loud'"),
        ({"allowed_senders": ["10.0.0.300/8"]}, "is not a network"),
        ({"format": "json"}, "format"),
    ],
)
def test_config_errors_name_the_field_and_the_fix(
    tmp_path: Path, source: dict[str, object], needle: str
) -> None:
    config = {
        "sources": {"s": {"type": "syslog", **source}},
        "sinks": {"out": {"type": "file", "inputs": ["s"], "path": str(tmp_path / "o")}},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(config, tmp_path)
    assert needle in str(err.value)
    assert "sources.s" in str(err.value)


async def test_an_orderly_stop_commits_everything_already_read(tmp_path: Path) -> None:
    n = 5000
    lines = b"".join(b"<13>Nov 16 00:25:00 host app: line %d\n" % i for i in range(n))
    # Batches that never fill and a flush that never comes: only the stop can commit these lines.
    async with receiver(tmp_path, batch_events=100_000, flush_secs=60) as rx:
        await send_tcp(rx.host, rx.port, lines)
        gauge = 'logferry_receiver_connections{source="syslog"}'
        await wait_for(lambda: rx.metric(gauge) == 0 and rx.source.pending == n, timeout=10)
        assert rx.records() == []
    # The service stopped; the same state and sink, started again, deliver what the stop committed.
    async with receiver(tmp_path) as rx:
        recs = await rx.wait_records(n)
    assert [r["message"] for r in recs] == [f"line {i}" for i in range(n)]


async def test_a_line_the_body_parser_cannot_convert_costs_that_line_only(tmp_path: Path) -> None:
    # Year 1 in Berlin is before year 1 in UTC: the conversion overflows. Neighbours must not suffer.
    poison = b'<30>device="SFW" date=0001-01-01 time=00:00:00 device_id=1 log_id=010302602002'
    async with receiver(tmp_path, format="sophos", timezone="Europe/Berlin") as rx:
        await send_tcp(
            rx.host, rx.port, SOPHOS_V19.encode() + b"\n" + poison + b"\n" + SOPHOS_LEGACY.encode() + b"\n"
        )
        recs = await rx.wait_records(2)
        await wait_for(lambda: _count(rx.dead_letters(), 1), timeout=10)
        [(reason, payload)] = await rx.dead_letters()
    assert [r["sfos_format"] for r in recs] == ["v19", "legacy"]
    assert payload == poison and "out of range in UTC" in reason


async def test_listen_on_all_ipv6_addresses_also_takes_ipv4_senders(tmp_path: Path) -> None:
    async with receiver(tmp_path, listen="[::]:0") as rx:
        await send_tcp("127.0.0.1", rx.port, b"<13>over ipv4\n")
        await send_tcp("::1", rx.port, b"<13>over ipv6\n")
        recs = await rx.wait_records(2)
    assert sorted((r["message"], r["sender"]) for r in recs) == [
        ("over ipv4", "127.0.0.1"),
        ("over ipv6", "::1"),
    ]


async def test_a_missing_certificate_names_the_option_in_health_and_check(tmp_path: Path) -> None:
    from tests.conftest import running

    missing = tmp_path / "nope.crt"
    tls = {"cert_file": str(missing), "key_file": str(missing)}
    config = {
        "sources": {"syslog": {"type": "syslog", "protocol": "tls", "listen": "127.0.0.1:0", "tls": tls}},
        "sinks": {"out": {"type": "file", "inputs": ["syslog"], "path": str(tmp_path / "out.ndjson")}},
    }
    async with running(config, tmp_path) as service:
        rt = service.pipeline.runtimes["syslog"]
        await wait_for(lambda: rt.last_error is not None, timeout=10)
        assert rt.last_error == f"cannot listen on tls 127.0.0.1:0: tls.cert_file {missing}: no such file"
        check = await service.pipeline.sources["syslog"].source.check()
    assert not check.ok and check.message == f"tls.cert_file {missing}: no such file"


async def test_cisco_secure_email_syslog_push(tmp_path: Path) -> None:
    # ESA's syslog push: no hostname in the header, the log subscription name as the TAG.
    lines = (
        b"<166>Mar 17 18:24:37 mail_logs: Info: Start MID 101 ICID 7\n"
        b"<166>Mar 17 18:24:37 mail_logs: Info: MID 101 ICID 7 From: <alice@example.net>\n"
    )
    async with receiver(tmp_path, format="esa", timezone="Europe/Berlin") as rx:
        await send_tcp(rx.host, rx.port, lines)
        start, sender = await rx.wait_records(2)
    assert (start["event"], start["mid"], start["icid"], start["log_name"]) == (
        "message_start",
        101,
        7,
        "mail_logs",
    )
    assert (sender["event"], sender["mail_from"]) == ("mail_from", "alice@example.net")
    assert start["timestamp"].endswith("T17:24:37Z")  # 18:24:37 in Berlin (CET in March)
    assert start["syslog"]["facility_name"] == "local4"


async def test_a_flood_of_garbage_is_dead_lettered_in_batches_and_counted(tmp_path: Path) -> None:
    garbage = b"".join(b"<13>Nov 16 00:25:00 host app: no pairs here %d\n" % i for i in range(2000))
    async with receiver(tmp_path, format="kv") as rx:
        await send_tcp(rx.host, rx.port, garbage + b"<13>Nov 16 00:25:00 host app: ok=1\n")
        [rec] = await rx.wait_records(1)
        key = 'logferry_dead_letters_total{component="syslog",stage="source"}'
        await wait_for(lambda: rx.metric(key) == 2000, timeout=20)
        dead = await rx.dead_letters()
    assert rec["ok"] == "1"
    assert len(dead) == 2000
    assert all(p.startswith(b"<13>Nov 16 00:25:00 host app: no pairs here ") for _, p in dead)


async def test_every_batch_counts_as_a_success_but_the_log_says_so_once_a_minute(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="logferry.events")
    async with receiver(tmp_path) as rx:
        for i in range(3):
            await send_tcp(rx.host, rx.port, b"<13>batch %d\n" % i)
            await rx.wait_records(i + 1)
        polls = rx.metric('logferry_source_polls_total{outcome="ok",source="syslog"}')
    logged = [r for r in caplog.records if getattr(r, "msg", "") == "source_poll_succeeded"]
    assert polls >= 3
    assert len(logged) == 1
