"""The ``logstash`` sink passes the shared sink conformance suite against the Beats simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from logferry.sim.beats import BeatsSim
from tests.conformance.sink import SinkCase, SinkConformance
from tests.sinks.logstash.conftest import address, records


class TestLogstashConformance(SinkConformance):
    @pytest.fixture
    async def case(self) -> AsyncIterator[SinkCase]:
        sim = BeatsSim()
        await sim.start(tls=True)

        async def arrived() -> int:
            return sim.received

        config = {"type": "logstash", "hosts": [address(sim)], "tls": {"ca_file": sim.ca_file}}
        try:
            yield SinkCase(
                config,
                records(5000),
                arrived,
                outage=sim.refuse_connections,
                recover=sim.accept_connections,
            )
        finally:
            await sim.stop()
