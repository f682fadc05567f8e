"""The HEC simulator against an independent HEC client (splunk-data-sender, sync ``requests``).

It builds bodies its own way (events concatenated with no separator, gzip, ``time`` from
``time.time()``), passes the channel in the query or in the header, polls acks and asks for health;
the simulator must accept all of it, or our sink and simulator could agree on a private dialect.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import requests
import splunk_data_sender  # type: ignore[import-untyped]  # no type hints published
from yarl import URL

from logferry.sim.hec import DEFAULT_TOKEN, HecSim
from tests.conftest import wait_for
from tests.sinks.http.conftest import StartHec, stored


def client(sim: HecSim, **options: Any) -> Any:
    url = URL(sim.url)
    return splunk_data_sender.SplunkSender(
        endpoint=url.host,
        port=str(url.port),
        token=DEFAULT_TOKEN,
        protocol="https",
        verify=sim.ca_file,
        index="main",
        source_type="_json",
        retry_count=0,
        **options,
    )


@pytest.mark.parametrize("channel_in", ["url", "header"])
async def test_splunk_data_sender_sends_gzip_batches_and_polls_acks(
    start_hec: StartHec, channel_in: str
) -> None:
    sim = await start_hec(ack=True, ack_delay_secs=0.1)
    sender = client(sim, channel=str(uuid.uuid4()), channel_in=channel_in, compress=True, max_buf_size=0)
    records = [{"user": f"u{i}", "action": "login", "n": i} for i in range(3)]
    assert await asyncio.to_thread(sender.get_health) is True
    answer = await asyncio.to_thread(sender.send_data, records)
    assert (answer["code"], answer["ackId"]) == (0, 0)

    async def acked() -> bool:
        acks = await asyncio.to_thread(sender.send_acks, [answer["ackId"]])
        return bool(acks["acks"]["0"])

    await wait_for(acked, timeout=5)
    events = await stored(sim, "main")
    assert [e["event"] for e in events] == records
    assert [e["fields"] for e in events] == records  # sourcetype _json sends the record as indexed fields too
    assert sim.stats()["gzip_requests"] == 1


async def test_splunk_data_sender_is_refused_without_a_channel_when_ack_is_on(start_hec: StartHec) -> None:
    sim = await start_hec(ack=True)
    sender = client(sim, compress=False)
    with pytest.raises(requests.HTTPError, match="400 Client Error"):
        await asyncio.to_thread(sender.send_data, [{"a": 1}])
    assert await stored(sim) == []
