"""Round trip through logferry's own syslog input: {rfc5424, rfc3164} x {json, cef, leef} x {udp, tcp, tls}.

One receiver service (a listener per protocol and body format, each into its own file) serves the whole
module; every case sends the same awkward records and checks that the parsed fields equal what was sent.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from logferry.core.sink import Action
from logferry.formats.leef import leef_text
from logferry.formats.mapping import value_text
from logferry.service import Service
from logferry.sources.syslog.source import SyslogSource
from tests.conftest import read_ndjson, running, wait_for
from tests.sinks.syslog.conftest import build_sink
from tests.sources.syslog.conftest import TLSFiles

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROTOCOLS = ("udp", "tcp", "tls")
BODIES = {"json": "syslog", "cef": "cef", "leef": "leef"}
HEADERS = ("rfc5424", "rfc3164")
# Whole milliseconds, an hour ago: RFC 3164 stamps carry no year, and the receiver picks the year of
# arrival for a stamp that is not in the future.
WHEN = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=123_000)

RECORDS: list[dict[str, Any]] = [
    {
        "user": "alice|bob",
        "cmd": "net user x=y /add",
        "path": "C:\\Windows\\System32\\",
        "text": "line one\nline two\r\nline three\rend",
        "uni": "Grüße, 日本, 🚀",
        "n": 42,
        "ok": True,
        "nested": {"k": [1, "x|y=z"]},
        "sev": "err",
        "at": WHEN.isoformat(),
    },
    {
        "eq": "=",
        "pipe": "|",
        "bs": "\\",
        "esc": "\\n is not a newline",
        "sev": "High",
        "at": WHEN.isoformat(),
    },
]


@dataclass
class Receivers:
    service: Service
    dir: Path
    tls: TLSFiles

    def port(self, protocol: str, body: str) -> int:
        """The listener's port; 0 until it is bound."""
        src = self.service.pipeline.sources[f"{protocol}_{body}"].source
        assert isinstance(src, SyslogSource)
        return src.address[1] if src.address is not None else 0

    def records(self, protocol: str, body: str, app: str) -> list[dict[str, Any]]:
        path = self.dir / f"{protocol}_{body}.ndjson"
        out = read_ndjson(path) if path.exists() else []
        return [r for r in out if r.get("app_name", r.get("syslog", {}).get("app_name")) == app]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rx(tmp_path_factory: pytest.TempPathFactory, certs: TLSFiles) -> AsyncIterator[Receivers]:
    d = tmp_path_factory.mktemp("roundtrip")
    sources: dict[str, Any] = {}
    sinks: dict[str, Any] = {}
    for protocol, body in itertools.product(PROTOCOLS, BODIES):
        name = f"{protocol}_{body}"
        sources[name] = {
            "type": "syslog",
            "protocol": protocol,
            "listen": "127.0.0.1:0",
            "format": BODIES[body],
            "flush_secs": 0.02,
        }
        if protocol == "tls":
            sources[name]["tls"] = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}
        sinks[name] = {"type": "file", "inputs": [name], "path": str(d / f"{name}.ndjson"), "fsync": "never"}
    async with running({"sources": sources, "sinks": sinks}, d) as service:
        rcv = Receivers(service, d, certs)
        await wait_for(
            lambda: all(rcv.port(p, b) for p, b in itertools.product(PROTOCOLS, BODIES)), timeout=10
        )
        yield rcv


def expected_pairs(record: dict[str, Any], body: str) -> dict[str, str]:
    if body == "cef":
        # The only loss CEF has: trailing spaces of an extension value.
        return {k: value_text(v).rstrip(" ") for k, v in record.items()}
    # LEEF has no escapes: line breaks (and the delimiter) become spaces.
    return {k: leef_text(value_text(v), "\t") for k, v in record.items()}


@pytest.mark.parametrize("header", HEADERS)
@pytest.mark.parametrize("body", list(BODIES))
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_parsed_fields_equal_the_original(
    rx: Receivers, tmp_path: Path, protocol: str, body: str, header: str
) -> None:
    app = f"rt-{protocol}-{body}-{header[3:]}"
    extra: dict[str, Any] = {"tls": {"ca_file": str(rx.tls.server_cert)}} if protocol == "tls" else {}
    sink = build_sink(
        tmp_path,
        host="localhost" if protocol == "tls" else "127.0.0.1",
        port=rx.port(protocol, body),
        protocol=protocol,
        header=header,
        body=body,
        app_name=app,
        hostname="sender-01",
        facility="local4",
        severity_field="sev",
        severity_map={"High": "crit"},
        timestamp_field="at",
        **extra,
    )
    try:
        result = await sink.send(sink.encode(RECORDS))
        assert result.action is Action.DELIVERED, result.reason
        await wait_for(lambda: len(rx.records(protocol, body, app)) >= len(RECORDS), timeout=10)
    finally:
        await sink.close()
    got = rx.records(protocol, body, app)
    assert len(got) == len(RECORDS)
    for sent, rec in zip(RECORDS, got, strict=True):
        head = rec if body == "json" else rec["syslog"]
        assert head["syslog_format"] == header
        assert head["hostname"] == "sender-01"
        assert head["facility_name"] == "local4"
        assert head["severity_name"] == {"err": "err", "High": "crit"}[sent["sev"]]
        stamp = WHEN.strftime("%Y-%m-%dT%H:%M:%S") + (".123Z" if header == "rfc5424" else "Z")
        assert head["timestamp"] == stamp
        if body == "json":
            assert json.loads(rec["message"]) == sent
        elif body == "cef":
            assert rec["device_vendor"] == "logferry" and rec["signature_id"] == "event"
            assert rec["extensions"] == expected_pairs(sent, body)
        else:
            assert rec["event_id"] == "event" and rec["delimiter"] == "\t"
            assert rec["attributes"] == expected_pairs(sent, body)
