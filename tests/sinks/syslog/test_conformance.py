"""The syslog sink passes the shared sink conformance suite against logferry's own syslog input.

TCP and TLS take the outage test: the receiver is stopped (its connections close) and started again on
the same port. UDP cannot: a datagram to a stopped receiver is accepted by the kernel and lost, which
is what UDP syslog is (docs/destinations/syslog.md).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from logferry.sim.peers import free_port
from tests.conformance.sink import SinkCase, SinkConformance
from tests.conftest import read_ndjson
from tests.sinks.syslog.conftest import receiver_idle, settled
from tests.sinks.test_conformance import mesh_records
from tests.sources.syslog.conftest import Receiver, TLSFiles, receiver


@contextlib.asynccontextmanager
async def syslog_case(
    tmp_path: Path, protocol: str, *, outage: bool, certs: TLSFiles | None = None
) -> AsyncIterator[SinkCase]:
    port = free_port()
    source: dict[str, Any] = {"protocol": protocol, "listen": f"127.0.0.1:{port}", "flush_secs": 0.02}
    sink: dict[str, Any] = {"type": "syslog", "host": "127.0.0.1", "port": port, "protocol": protocol}
    if certs is not None:
        source["tls"] = {"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}
        sink.update(host="localhost", tls={"ca_file": str(certs.server_cert)})
    out = tmp_path / "out.ndjson"
    stack = contextlib.AsyncExitStack()
    current: list[Receiver] = []

    async def up() -> None:
        current[:] = [await stack.enter_async_context(receiver(tmp_path, **source))]

    async def down() -> None:
        await stack.aclose()
        current.clear()

    async def arrived() -> int:
        return await settled(
            lambda: len(read_ndjson(out)) if out.exists() else 0, lambda: receiver_idle(current[0])
        )

    await up()
    try:
        yield SinkCase(sink, mesh_records(2500), arrived, down if outage else None, up if outage else None)
    finally:
        await stack.aclose()


class TestSyslogTcpConformance(SinkConformance):
    @pytest.fixture
    async def case(self, tmp_path: Path) -> AsyncIterator[SinkCase]:
        async with syslog_case(tmp_path, "tcp", outage=True) as c:
            yield c


class TestSyslogTlsConformance(SinkConformance):
    @pytest.fixture
    async def case(self, tmp_path: Path, certs: TLSFiles) -> AsyncIterator[SinkCase]:
        async with syslog_case(tmp_path, "tls", outage=True, certs=certs) as c:
            yield c


class TestSyslogUdpConformance(SinkConformance):
    # A datagram to a stopped receiver is simply lost: UDP has no outage a sender can notice.
    test_outage_is_retried_and_recovery_delivers_everything = None  # type: ignore[assignment]

    @pytest.fixture
    async def case(self, tmp_path: Path) -> AsyncIterator[SinkCase]:
        async with syslog_case(tmp_path, "udp", outage=False) as c:
            yield c
