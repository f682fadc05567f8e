"""rsyslog, an independent receiver, takes the sink's messages over TCP and TLS byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from logferry.core.sink import Action
from logferry.sim.peers import free_port
from tests.conftest import wait_for
from tests.sinks.syslog.conftest import build_sink
from tests.sources.syslog.conftest import TLSFiles, rsyslogd

RECORDS: list[dict[str, Any]] = [
    {"user": "alice|bob", "cmd": "a=b c\\d", "text": "two\nlines", "uni": "Grüße 🚀", "n": i}
    for i in range(20)
]

# rsyslog writes exactly the message it parsed (without the octet count or the LF of the framing).
_TO_FILE = """
template(name="exact" type="string" string="%rawmsg%\\n")
if $inputname == "imtcp" then action(type="omfile" file="{out}" template="exact")
"""


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.exists() else []


@pytest.mark.parametrize(("framing", "body"), [("octet_counted", "cef"), ("lf", "json")])
async def test_rsyslog_receives_over_tcp(tmp_path: Path, framing: str, body: str) -> None:
    port, out = free_port(), tmp_path / "out.log"
    conf = f'module(load="imtcp")\ninput(type="imtcp" port="{port}" address="127.0.0.1")\n'
    sink = build_sink(tmp_path, host="127.0.0.1", port=port, framing=framing, body=body)
    lines = sink.encode(RECORDS)
    with rsyslogd(conf + _TO_FILE.format(out=out), tmp_path, port):
        try:
            result = await sink.send(lines)
            assert result.action is Action.DELIVERED, result.reason
            await wait_for(lambda: len(_lines(out)) >= len(lines), timeout=10)
        finally:
            await sink.close()
    assert _lines(out) == lines


async def test_rsyslog_receives_over_tls_with_a_client_certificate(tmp_path: Path, certs: TLSFiles) -> None:
    f = certs
    port, out = free_port(), tmp_path / "out.log"
    # rsyslog verifies the sender's certificate against its CA file: the (self-signed) client cert.
    conf = f"""
global(DefaultNetstreamDriverCAFile="{f.client_cert}" DefaultNetstreamDriverCertFile="{f.server_cert}"
       DefaultNetstreamDriverKeyFile="{f.server_key}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/certvalid")
input(type="imtcp" port="{port}" address="127.0.0.1")
"""
    tls = {"ca_file": str(f.server_cert), "cert_file": str(f.client_cert), "key_file": str(f.client_key)}
    sink = build_sink(tmp_path, host="localhost", port=port, protocol="tls", body="leef", tls=tls)
    lines = sink.encode(RECORDS)
    with rsyslogd(conf + _TO_FILE.format(out=out), tmp_path, port):
        try:
            result = await sink.send(lines)
            assert result.action is Action.DELIVERED, result.reason
            await wait_for(lambda: len(_lines(out)) >= len(lines), timeout=10)
        finally:
            await sink.close()
    # rsyslog shows control characters as #ooo (EscapeControlCharactersOnReceive): LEEF's tab delimiter.
    assert _lines(out) == [line.replace(b"\t", b"#011") for line in lines]


async def test_rsyslog_takes_the_longest_message_the_default_allows_and_no_longer_one_is_sent(
    tmp_path: Path,
) -> None:
    """rsyslog's default maxMessageSize cuts longer messages (and reads the rest as another message);
    the sink's default limit must let through only what arrives whole, and dead-letter the rest."""
    port, out = free_port(), tmp_path / "out.log"
    conf = f'module(load="imtcp")\ninput(type="imtcp" port="{port}" address="127.0.0.1")\n'
    sink = build_sink(tmp_path, host="127.0.0.1", port=port, body="cef")  # every limit at its default
    [probe] = sink.encode([{"msg": ""}])
    longest, too_long = sink.encode([{"msg": "A" * (8096 - len(probe))}, {"msg": "A" * (8300 - len(probe))}])
    assert len(longest) == 8096
    with rsyslogd(conf + _TO_FILE.format(out=out), tmp_path, port):
        try:
            rejected = await sink.send([too_long])
            assert rejected.action is Action.REJECT and "not truncated" in rejected.reason
            result = await sink.send([longest])
            assert result.action is Action.DELIVERED, result.reason
            await wait_for(lambda: len(_lines(out)) >= 1, timeout=10)
        finally:
            await sink.close()
    assert _lines(out) == [longest]
