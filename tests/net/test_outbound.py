"""Outbound stream connections: what a sink is told when one cannot be opened, over real sockets."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from logferry.config.base import ClientTLSConfig
from logferry.net.outbound import ConnectFailed, host_problem, open_stream
from logferry.sim.peers import free_port
from logferry.sim.tls import make_self_signed, shared_server_certificate


async def _echo_nothing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()


@pytest.fixture
async def mtls_server() -> AsyncIterator[int]:
    """A TLS 1.3 server that requires a client certificate nobody here has."""
    ctx = shared_server_certificate().ssl_context()
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=make_self_signed("some-ca").cert_pem.decode())
    server = await asyncio.start_server(_echo_nothing, "127.0.0.1", 0, ssl=ctx)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_a_refused_connection_says_connection_refused() -> None:
    port = free_port()
    with pytest.raises(ConnectFailed) as exc:
        await open_stream("127.0.0.1", port, ssl_context=None, timeout=5)
    assert str(exc.value) == f"cannot connect to 127.0.0.1:{port}: Connection refused"


async def test_a_name_that_cannot_be_encoded_is_a_connect_failure_not_a_unicode_error() -> None:
    with pytest.raises(ConnectFailed) as exc:
        await open_stream("collector..example.com", 514, ssl_context=None, timeout=5)
    assert (
        str(exc.value)
        == "cannot connect to collector..example.com:514: 'collector..example.com' is not a valid host name"
    )


async def test_a_name_that_does_not_resolve_says_so() -> None:
    with pytest.raises(ConnectFailed) as exc:
        await open_stream("no-such-host.invalid", 514, ssl_context=None, timeout=5)
    assert str(exc.value).startswith(
        "cannot connect to no-such-host.invalid:514: cannot resolve no-such-host.invalid ("
    )
    assert "Unknown error" not in str(exc.value)


async def test_a_tls13_server_refusing_the_client_is_noticed_before_any_data(mtls_server: int) -> None:
    ctx = ClientTLSConfig(ca_file=shared_server_certificate().cert_file).client_context()
    with pytest.raises(ConnectFailed) as exc:
        await open_stream(
            "127.0.0.1", mtls_server, ssl_context=ctx, timeout=5, refused_hint="set tls.cert_file"
        )
    message = str(exc.value)
    assert message.startswith(
        f"cannot connect to 127.0.0.1:{mtls_server}: the server refused the TLS session ("
    )
    assert message.endswith("; set tls.cert_file")


def test_host_problem_accepts_names_and_addresses_and_refuses_what_dns_cannot_carry() -> None:
    for good in ("logstash", "siem.example.com", "127.0.0.1", "::1", "bücher.example"):
        assert host_problem(good) is None, good
    assert host_problem("a..b") is not None
    assert host_problem("x" * 64 + ".example.com") is not None
    assert host_problem("") is not None


def test_an_encrypted_client_key_without_a_password_is_an_error_not_a_prompt(tmp_path: Path) -> None:
    bundle = make_self_signed("client")
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_bytes(bundle.cert_pem)
    key.write_bytes(
        bundle.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass-1"),
        )
    )
    tls = ClientTLSConfig(cert_file=str(cert), key_file=str(key))
    with pytest.raises(ValueError) as exc:
        tls.client_context()
    assert str(exc.value) == (
        f"tls.cert_file {cert} / tls.key_file {key}: the key is encrypted and no passphrase is set; "
        "check tls.cert_file, tls.key_file and tls.key_password"
    )


def test_a_missing_ca_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as exc:
        ClientTLSConfig(ca_file=str(tmp_path / "nope.pem")).client_context()
    assert str(exc.value).startswith(f"tls.ca_file {tmp_path / 'nope.pem'}: ")


async def test_a_server_without_session_tickets_is_accepted_within_a_short_timeout() -> None:
    # rsyslog's GnuTLS driver sends no TLS 1.3 session ticket: the verdict wait must end (as an
    # acceptance) within the connect timeout rather than fail every connection.
    ctx = shared_server_certificate().ssl_context()
    ctx.num_tickets = 0
    server = await asyncio.start_server(_echo_nothing, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    client = ClientTLSConfig(ca_file=shared_server_certificate().cert_file).client_context()
    try:
        _, writer = await open_stream("127.0.0.1", port, ssl_context=client, timeout=0.8)
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        writer.transport.abort()
    finally:
        server.close()
