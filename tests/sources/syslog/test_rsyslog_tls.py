"""rsyslog forwarding to logferry (octet-counted TCP and TLS with a client certificate), and TLS refusals."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest

from logferry.sim.peers import free_port
from tests.conftest import wait_for
from tests.sources.syslog.conftest import logger, receiver, rsyslogd, tls_files


def _forward_conf(in_port: int, out_port: int, tls: str = "") -> str:
    """rsyslog takes messages on imtcp ``in_port`` and forwards them RFC 5424, octet-counted."""
    return f"""
module(load="imtcp")
input(type="imtcp" port="{in_port}" address="127.0.0.1")
action(type="omfwd" target="127.0.0.1" port="{out_port}" protocol="tcp" TCP_Framing="octet-counted"
       template="RSYSLOG_SyslogProtocol23Format" {tls}
       action.resumeRetryCount="-1" action.resumeInterval="1")
"""


async def test_rsyslog_forwarding_octet_counted(tmp_path: Path) -> None:
    async with receiver(tmp_path) as rx:
        in_port = free_port()
        with rsyslogd(_forward_conf(in_port, rx.port), tmp_path, in_port):
            for i in range(50):
                await logger("--server", "127.0.0.1", "--port", str(in_port), "--tcp", "-t", "relay", f"m{i}")
            recs = await rx.wait_records(50)
    assert sorted(r["message"] for r in recs) == sorted(f"m{i}" for i in range(50))
    assert {r["syslog_format"] for r in recs} == {"rfc5424"}
    assert {r["app_name"] for r in recs} == {"relay"}


async def test_rsyslog_forwarding_over_tls_with_a_client_certificate(tmp_path: Path) -> None:
    f = tls_files(tmp_path)
    tls = {
        "cert_file": str(f.server_cert),
        "key_file": str(f.server_key),
        "client_ca_file": str(f.client_cert),
    }
    async with receiver(tmp_path, protocol="tls", tls=tls) as rx:
        in_port = free_port()
        driver = (
            f'StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" '
            f'StreamDriverPermittedPeers="localhost" StreamDriver.CAFile="{f.server_cert}" '
            f'StreamDriver.CertFile="{f.client_cert}" StreamDriver.KeyFile="{f.client_key}"'
        )
        with rsyslogd(_forward_conf(in_port, rx.port, driver), tmp_path, in_port):
            await logger("--server", "127.0.0.1", "--port", str(in_port), "--tcp", "-t", "relay", "over tls")
            [rec] = await rx.wait_records(1)
    assert rec["message"] == "over tls"


def _client_context(ca: Path, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


@pytest.mark.parametrize("who", ["none", "stranger"])
async def test_tls_refuses_senders_without_a_trusted_certificate(tmp_path: Path, who: str) -> None:
    f = tls_files(tmp_path)
    tls = {
        "cert_file": str(f.server_cert),
        "key_file": str(f.server_key),
        "client_ca_file": str(f.client_cert),
    }
    async with receiver(tmp_path, protocol="tls", tls=tls) as rx:
        cert = (None, None) if who == "none" else (f.other_cert, f.other_key)
        ctx = _client_context(f.server_cert, *cert)
        # TLS 1.3 reports the refused client certificate on the first read, not at the handshake.
        with pytest.raises((ssl.SSLError, ConnectionResetError, asyncio.IncompleteReadError)):
            reader, writer = await asyncio.open_connection("localhost", rx.port, ssl=ctx)
            writer.write(b"<13>should not arrive\n")
            await writer.drain()
            await reader.readexactly(1)
        good = _client_context(f.server_cert, f.client_cert, f.client_key)
        _, writer = await asyncio.open_connection("localhost", rx.port, ssl=good)
        writer.write(b"<13>trusted\n")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        await wait_for(lambda: len(rx.records()) >= 1, timeout=10)
        await asyncio.sleep(0.3)
        assert [r["message"] for r in rx.records()] == ["trusted"]
