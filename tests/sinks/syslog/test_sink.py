"""Configuration errors, user mapping files, message limits, failures and health of the syslog sink."""

from __future__ import annotations

import asyncio
import json
import ssl
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logferry.core.errors import ConfigError
from logferry.core.sink import Action
from logferry.formats.cef import parse_cef
from logferry.formats.leef import parse_leef
from logferry.formats.syslog import SyslogParser
from logferry.sim.peers import free_port
from tests.conftest import wait_for
from tests.sinks.syslog.conftest import build_sink
from tests.sources.syslog.conftest import TLSFiles, receiver


def problems(tmp_path: Path, **sink: Any) -> str:
    with pytest.raises(ConfigError) as exc:
        build_sink(tmp_path, host="127.0.0.1", **sink)
    return "\n".join(exc.value.problems)


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        ({"body": "leef", "mapping": "falcon_cef"}, "writes CEF, but body is 'leef'"),
        ({"body": "json", "mapping": "generic_cef"}, "mapping applies to body cef or leef"),
        ({"protocol": "udp", "framing": "lf"}, "framing applies to tcp and tls only"),
        ({"tls": {"verify": False}}, "a 'tls' block is only used with protocol: tls"),
        ({"header": "rfc3164", "msgid": "x"}, "msgid exists only in rfc5424 headers"),
        ({"header": "rfc3164", "app_name": "a:b"}, "app_name: an rfc3164 TAG"),
        ({"app_name": "has space"}, "sinks.dst.app_name: must be 1 to 48 printable ASCII"),
        ({"facility": "local9"}, "unknown facility 'local9'"),
        ({"severity_map": {"High": "urgent"}}, "unknown severities ['urgent']"),
        ({"protocol": "tls", "tls": {"cert_file": "/c.pem"}}, "cert_file and key_file go together"),
        ({"protocol": "udp", "max_message_bytes": 70000}, "a UDP datagram holds at most 65507 bytes"),
        ({"body": "cef", "mapping": "/nonexistent/m.yaml"}, "cannot read mapping file '/nonexistent/m.yaml'"),
    ],
)
def test_bad_config_names_the_field_and_the_fix(tmp_path: Path, sink: dict[str, Any], expected: str) -> None:
    assert expected in problems(tmp_path, **sink)


def test_a_bad_mapping_file_names_the_file_and_the_entry(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "format: cef\nvendor: V\nproduct: P\nversion: '1'\ndefault:\n  extensions: {'bad key': x}\n"
    )
    text = problems(tmp_path, body="cef", mapping=str(path))
    assert f"mapping file {str(path)!r}: default.extensions" in text and "'bad key'" in text


def test_a_user_leef_mapping_with_sections_and_a_caret_delimiter(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        """
format: leef
vendor: Acme|Corp
product: Gate
version: "2.1"
delimiter: "^"
event_type: kind
events:
  login:
    signature_id: "'Login'"
    extensions: {usrName: user.name, src: ip, sev: "'3'"}
default:
  signature_id: kind
"""
    )
    sink = build_sink(tmp_path, host="127.0.0.1", body="leef", mapping=str(path))
    records: list[dict[str, Any]] = [
        {"kind": "login", "user": {"name": "a^b\nc"}, "ip": "10.0.0.1"},
        {"kind": "other", "x": 1},
    ]
    parsed = [
        parse_leef(SyslogParser().parse(line, received=datetime.now(UTC))["message"])
        for line in sink.encode(records)
    ]
    assert parsed[0]["device_vendor"] == "Acme Corp" and parsed[0]["delimiter"] == "^"
    assert parsed[0]["event_id"] == "Login"
    assert parsed[0]["attributes"] == {"usrName": "a b c", "src": "10.0.0.1", "sev": "3"}
    assert parsed[1]["event_id"] == "other" and parsed[1]["attributes"] == {}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def test_encode_gives_one_line_for_any_record(tmp_path: Path) -> None:
    sinks = [
        build_sink(tmp_path, host="127.0.0.1", body=body, severity_field="s", timestamp_field="t")
        for body in ("json", "cef", "leef")
    ]
    parser = SyslogParser()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.dictionaries(st.text(string.printable + "é|=\\\n", max_size=8), json_values, max_size=6))
    def check(record: dict[str, Any]) -> None:
        for sink in sinks:
            [line] = sink.encode([record])
            assert b"\n" not in line and b"\r" not in line
            parser.parse(line, received=datetime.now(UTC))

    check()


async def test_a_message_over_the_limit_is_dead_lettered_not_truncated(tmp_path: Path) -> None:
    sink = build_sink(tmp_path, host="127.0.0.1", port=free_port(), protocol="udp", max_message_bytes=600)
    small, big = sink.encode([{"a": "x"}, {"a": "x" * 700}])
    assert (await sink.send([small, big])).action is Action.SPLIT
    rejected = await sink.send([big])
    assert rejected.action is Action.REJECT and "exceeds max_message_bytes 600" in rejected.reason


async def test_tcp_to_a_closed_port_is_retried_and_unhealthy(tmp_path: Path) -> None:
    port = free_port()
    sink = build_sink(tmp_path, host="127.0.0.1", port=port)
    result = await sink.send(sink.encode([{"a": 1}]))
    assert result.action is Action.RETRY
    assert result.reason == f"cannot connect to 127.0.0.1:{port}: Connection refused"
    health = await sink.healthcheck()
    assert not health.ok and f"127.0.0.1:{port}" in health.message


async def test_udp_notices_a_refusing_port_on_a_later_send(tmp_path: Path) -> None:
    sink = build_sink(tmp_path, host="127.0.0.1", port=free_port(), protocol="udp")
    lines = sink.encode([{"a": 1}])
    health = await sink.healthcheck()
    assert health.ok and "cannot confirm delivery" in health.message
    try:
        # The first datagram is handed to the kernel (and lost); the ICMP error fails a later send.
        assert (await sink.send(lines)).action is Action.DELIVERED
        results: list[Action] = []

        async def refused() -> bool:
            result = await sink.send(lines)
            results.append(result.action)
            return result.action is Action.RETRY and "Connection refused" in result.reason

        await wait_for(refused, timeout=5)
    finally:
        await sink.close()


async def test_an_untrusted_server_certificate_is_refused(tmp_path: Path, certs: TLSFiles) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(certs.server_cert, certs.server_key)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    sink = build_sink(tmp_path, host="localhost", port=port, protocol="tls")
    try:
        result = await sink.send(sink.encode([{"a": 1}]))
        assert result.action is Action.RETRY and "certificate verify failed" in result.reason
        health = await sink.healthcheck()
        assert not health.ok and "set tls.ca_file" in health.message
    finally:
        await sink.close()
        server.close()
        await server.wait_closed()


async def test_a_connection_the_collector_closed_is_replaced_before_writing(tmp_path: Path) -> None:
    """Writing into a connection the peer has closed would "succeed" and lose the data."""
    received: list[bytes] = []
    first_closed = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not first_closed.is_set():
            received.append(await reader.readuntil(b"\n"))
            writer.close()  # a graceful close: FIN, as a collector restarting does
            await writer.wait_closed()
            first_closed.set()
            return
        received.append(await reader.read())
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = build_sink(tmp_path, host="127.0.0.1", port=port, framing="lf")
    one, two = sink.encode([{"n": 1}, {"n": 2}])
    try:
        assert (await sink.send([one])).action is Action.DELIVERED
        await wait_for(first_closed.is_set, timeout=5)
        await wait_for(lambda: sink._transport._reader.at_eof(), timeout=5)  # type: ignore[attr-defined]
        assert (await sink.send([two])).action is Action.DELIVERED
    finally:
        await sink.close()
    await wait_for(lambda: len(received) == 2, timeout=5)
    server.close()
    await server.wait_closed()
    assert received == [one + b"\n", two + b"\n"]


async def test_a_collector_refusing_the_client_certificate_is_a_retry_not_a_loss(
    tmp_path: Path, certs: TLSFiles
) -> None:
    """TLS 1.3 refuses a client after the handshake; data written before the refusal would vanish."""
    tls = {
        "cert_file": str(certs.server_cert),
        "key_file": str(certs.server_key),
        "client_ca_file": str(certs.client_cert),
    }
    async with receiver(tmp_path, protocol="tls", tls=tls) as rx:
        server_only = {"ca_file": str(certs.server_cert)}
        refused = build_sink(tmp_path, host="localhost", port=rx.port, protocol="tls", tls=server_only)
        accepted = build_sink(
            tmp_path,
            host="localhost",
            port=rx.port,
            protocol="tls",
            tls={**server_only, "cert_file": str(certs.client_cert), "key_file": str(certs.client_key)},
        )
        try:
            result = await refused.send(refused.encode([{"who": "refused"}]))
            assert result.action is Action.RETRY and "refused the TLS session" in result.reason
            assert "set tls.cert_file" in (await refused.healthcheck()).message
            result = await accepted.send(accepted.encode([{"who": "accepted"}]))
            assert result.action is Action.DELIVERED, result.reason
            [record] = await rx.wait_records(1)
        finally:
            await refused.close()
            await accepted.close()
    assert json.loads(record["message"]) == {"who": "accepted"}


async def test_an_unreadable_client_certificate_is_a_retry_naming_the_files(tmp_path: Path) -> None:
    tls = {"cert_file": str(tmp_path / "none.crt"), "key_file": str(tmp_path / "none.key")}
    sink = build_sink(tmp_path, host="localhost", port=free_port(), protocol="tls", tls=tls)
    result = await sink.send(sink.encode([{"a": 1}]))
    assert result.action is Action.RETRY
    assert result.reason.startswith(f"cannot load the client certificate {tmp_path / 'none.crt'}")
    assert "No such file or directory" in result.reason


def test_cef_header_fields_from_the_record_are_escaped(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("format: cef\nvendor: A|B\nproduct: C\\D\nversion: '1'\ndefault: {name: title}\n")
    sink = build_sink(tmp_path, host="127.0.0.1", body="cef", mapping=str(path))
    [line] = sink.encode([{"title": "two\nlines | and \\ more"}])
    message = SyslogParser().parse(line, received=datetime.now(UTC))["message"]
    assert message.startswith("CEF:0|A\\|B|C\\\\D|1|event|two lines \\| and \\\\ more|5|")
    cef = parse_cef(message)
    assert (cef["device_vendor"], cef["device_product"]) == ("A|B", "C\\D")
    assert cef["name"] == "two lines | and \\ more"
