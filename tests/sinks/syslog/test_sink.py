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
from pydantic import ValidationError

from logferry.core.batcher import pack, request_size
from logferry.core.errors import ConfigError
from logferry.core.sink import Action
from logferry.formats.cef import parse_cef
from logferry.formats.leef import encode_leef, parse_leef
from logferry.formats.mapping import MappingFile, RecordMapper
from logferry.formats.syslog import SyslogParser
from logferry.sim.peers import free_port
from tests.conftest import wait_for
from tests.sinks.syslog.conftest import build_sink
from tests.sources.syslog.conftest import TLSFiles, receiver


def problems(tmp_path: Path, **sink: Any) -> str:
    with pytest.raises(ConfigError) as exc:
        build_sink(tmp_path, **{"host": "127.0.0.1", **sink})
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
        ({"host": "collector..example.com"}, "sinks.dst.host: 'collector..example.com' is not a host name"),
        ({"host": "a" * 64 + ".example.com"}, "none over 63 characters"),
        ({"protocol": "tls", "framing": "lf"}, "RFC 5425 syslog over TLS is octet-counted only"),
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


def test_a_space_as_leef_delimiter_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("format: leef\nvendor: V\nproduct: P\nversion: '1'\ndelimiter: ' '\n")
    assert "delimiter: Value error, must be a tab or one printable ASCII character" in problems(
        tmp_path, body="leef", mapping=str(path)
    )


@settings(max_examples=60, deadline=None)
@given(
    st.characters(exclude_categories=["Cs"]),
    st.dictionaries(st.text(max_size=5), st.text(max_size=8) | st.integers(), max_size=4),
)
def test_leef_encoding_never_fails_whatever_delimiter_the_mapping_accepts(
    delimiter: str, record: dict[str, Any]
) -> None:
    """Encoding runs inside the outbox commit: a mapping that validates must encode every record."""
    try:
        mapping = MappingFile.model_validate(
            {"format": "leef", "vendor": "V", "product": "P", "version": "1", "delimiter": delimiter,
             "default": {"signature_id": "id", "extensions": {"k": "v"}, "all_fields": True}}
        )  # fmt: skip
    except ValidationError:
        return
    line = encode_leef(RecordMapper(mapping)({**record, "id": f"a{delimiter}b|c", "v": f"x{delimiter}y"}))
    parsed = parse_leef(line)
    assert parsed["delimiter"] == delimiter and parsed["attributes"]["k"] == "x y"


def test_all_fields_keeps_an_object_of_which_the_header_shows_one_member(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "format: cef\nvendor: V\nproduct: P\nversion: '1'\n"
        "default: {signature_id: metadata.eventType, severity: event.Severity, name: title, all_fields: true}\n"
    )
    sink = build_sink(tmp_path, host="127.0.0.1", body="cef", mapping=str(path))
    record = {
        "metadata": {"eventType": "E", "offset": 9},
        "event": {"Severity": 4, "Id": "inc:1"},
        "title": "T",
    }
    [line] = sink.encode([record])
    cef = parse_cef(SyslogParser().parse(line, received=datetime.now(UTC))["message"])
    assert (cef["signature_id"], cef["name"], cef["severity"]) == ("E", "T", "4")
    # `title` is the header's Name, so it is not repeated; the objects are written whole.
    assert cef["extensions"] == {
        "metadata": '{"eventType":"E","offset":9}',
        "event": '{"Severity":4,"Id":"inc:1"}',
    }


@pytest.mark.parametrize(
    ("sink", "limit"),
    [
        ({"protocol": "tcp"}, 8096),
        ({"protocol": "tls", "tls": {"verify": False}}, 8096),
        ({"protocol": "udp"}, 2048),
        ({"protocol": "udp", "header": "rfc3164"}, 1024),
    ],
)
async def test_default_message_limits(tmp_path: Path, sink: dict[str, Any], limit: int) -> None:
    built = build_sink(tmp_path, host="127.0.0.1", port=free_port(), **sink)
    [probe] = built.encode([{"m": ""}])
    fits, over = built.encode([{"m": "x" * (limit - len(probe))}, {"m": "x" * (limit + 1 - len(probe))}])
    assert len(fits) == limit and len(over) == limit + 1
    rejected = await built.send([over])
    assert rejected.action is Action.REJECT and f"exceeds max_message_bytes {limit}" in rejected.reason
    await built.close()


@pytest.mark.parametrize("protocol", ["tcp", "udp"])
def test_every_message_max_message_bytes_allows_fits_one_request(tmp_path: Path, protocol: str) -> None:
    """The delivery loop dead-letters a line over the sink's max_bytes: that must not contradict the
    configured max_message_bytes."""
    largest = 65_507 if protocol == "udp" else 16 * 1024 * 1024
    sink = build_sink(tmp_path, host="127.0.0.1", protocol=protocol, max_message_bytes=largest)
    [probe] = sink.encode([{"m": ""}])
    [line] = sink.encode([{"m": "x" * (largest - len(probe))}])
    assert len(line) == largest
    assert list(pack(sink.limits, [line])) == [(0, 1)]
    assert request_size(sink.limits, [line]) <= sink.limits.max_bytes
