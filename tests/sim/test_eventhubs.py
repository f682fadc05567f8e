"""The Event Hubs simulator against Microsoft's own ``azure-eventhub`` SDK, sync and async, unchanged."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import signal
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus, urlencode

import aiohttp
import pytest
from azure.eventhub import EventData, EventHubProducerClient, TransportType
from azure.eventhub.aio import EventHubProducerClient as AsyncProducer
from azure.eventhub.exceptions import AuthenticationError, ConnectError, EventDataSendError, EventHubError

from logferry.sim.amqp.cbs import InvalidToken, SasKey
from logferry.sim.amqp.codec import (
    Array,
    DecodeError,
    Described,
    Long,
    Symbol,
    Timestamp,
    UInt,
    ULong,
    decode,
    encode,
)
from logferry.sim.eventhubs import EventHubsSim
from logferry.sim.faults import FaultRule
from tests.conftest import wait_for
from tests.sim.conftest import Starter, announcement

# Negative tests must fail fast: the SDK otherwise retries three times with backoff.
NO_RETRY: dict[str, Any] = {"retry_total": 0}


@pytest.fixture
async def hub(start_sim: Starter) -> EventHubsSim:
    sim: EventHubsSim = await start_sim(EventHubsSim(partitions=4))
    return sim


def producer(sim: EventHubsSim, **kwargs: Any) -> EventHubProducerClient:
    return EventHubProducerClient.from_connection_string(sim.credentials["connection_string"], **kwargs)


async def events(sim: EventHubsSim, partition: str | None = None) -> list[dict[str, Any]]:
    query = "" if partition is None else f"?partition={partition}"
    tls: ssl.SSLContext | bool = ssl.create_default_context(cafile=sim.ca_file) if sim.ca_file else True
    async with aiohttp.ClientSession() as http, http.get(f"{sim.url}/sim/events{query}", ssl=tls) as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return list(body["events"])


def _event(body: str, **properties: Any) -> EventData:
    props: dict[str | bytes, Any] = {k: v for k, v in properties.items()}
    event = EventData(body)
    event.properties = props
    return event


async def test_sync_producer_batches_arrive_exactly_with_keys_and_partitions(hub: EventHubsSim) -> None:
    def send() -> dict[str, Any]:
        with producer(hub) as client:
            plain = client.create_batch()
            for i in range(20):
                plain.add(_event(f'{{"n": {i}}}', n=i, source="duo"))
            client.send_batch(plain)
            for i in range(2):  # the same key twice must land on the same partition
                keyed = client.create_batch(partition_key="tenant-a")
                keyed.add(_event(f"keyed {i}"))
                client.send_batch(keyed)
            client.send_batch([_event("pinned")], partition_id="3")
            props: dict[str, Any] = client.get_partition_properties("3")
            return props

    partition_3 = await asyncio.to_thread(send)
    got = await events(hub)
    assert len(got) == 23 == hub.generated()
    plain = [e for e in got if e["body"].startswith("{")]
    assert [e["body"] for e in plain] == [f'{{"n": {i}}}' for i in range(20)]
    assert [e["properties"] for e in plain] == [{"n": i, "source": "duo"} for i in range(20)]
    assert len({e["partition"] for e in plain}) == 1, "a batch without a key stays together"
    assert [e["sequence_number"] for e in plain] == list(range(20))
    keyed = [e for e in got if e["body"].startswith("keyed")]
    assert {e["partition_key"] for e in keyed} == {"tenant-a"}
    assert len({e["partition"] for e in keyed}) == 1
    pinned = [e for e in got if e["body"] == "pinned"]
    assert [e["partition"] for e in pinned] == ["3"]
    assert partition_3["last_enqueued_sequence_number"] == len(await events(hub, "3")) - 1
    assert partition_3["is_empty"] is False
    assert hub.stats()["auth_failures"] == 0


async def test_async_producer_over_tls_with_the_simulator_ca(start_sim: Starter) -> None:
    sim: EventHubsSim = await start_sim(EventHubsSim(), tls=True)
    creds = sim.credentials
    assert "UseDevelopmentEmulator" not in creds["connection_string"]
    client = AsyncProducer.from_connection_string(
        creds["connection_string"],
        custom_endpoint_address=creds["custom_endpoint_address"],
        transport_type=TransportType.Amqp,
        connection_verify=sim.ca_file,
    )
    async with client:
        assert await client.get_partition_ids() == ["0", "1"]
        batch = await client.create_batch(partition_key="k")
        for i in range(50):
            batch.add(EventData(f"tls {i}"))
        await client.send_batch(batch)
    got = await events(sim)
    assert [e["body"] for e in got] == [f"tls {i}" for i in range(50)]
    assert {e["partition_key"] for e in got} == {"k"}


async def test_tls_refuses_a_client_that_does_not_trust_the_certificate(start_sim: Starter) -> None:
    sim: EventHubsSim = await start_sim(EventHubsSim(), tls=True)
    creds = sim.credentials
    client = AsyncProducer.from_connection_string(
        creds["connection_string"],
        custom_endpoint_address=creds["custom_endpoint_address"],
        transport_type=TransportType.Amqp,
        **NO_RETRY,
    )
    async with client:
        with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get_partition_ids()


async def test_wrong_key_is_an_authentication_error_and_nothing_arrives(hub: EventHubsSim) -> None:
    wrong = hub.credentials["connection_string"].replace(hub.sas.key, base64.b64encode(b"x" * 32).decode())

    def send() -> None:
        with EventHubProducerClient.from_connection_string(wrong, **NO_RETRY) as client:
            client.send_batch([EventData("never")])

    with pytest.raises(AuthenticationError, match="401"):
        await asyncio.to_thread(send)
    assert hub.stats()["auth_failures"] >= 1
    assert hub.generated() == 0


async def test_the_sdk_sizes_batches_by_the_link_max_message_size(start_sim: Starter) -> None:
    sim: EventHubsSim = await start_sim(EventHubsSim(max_message_size=200_000))

    def send() -> int:
        with producer(sim) as client:
            batch = client.create_batch()
            with pytest.raises(ValueError, match="size limit"):
                batch.add(EventData(b"x" * 200_001))
            while True:  # fill the batch: about 180 KB go out in several 64 KB frames
                try:
                    batch.add(EventData(b"y" * 30_000))
                except ValueError:
                    break
            client.send_batch(batch)
            return len(batch)

    sent = await asyncio.to_thread(send)
    got = await events(sim)
    assert sent == len(got) == 6
    assert all(base64.b64decode(e["body_base64"]) == b"y" * 30_000 for e in got)


async def test_a_message_over_the_link_limit_is_rejected_by_the_hub(start_sim: Starter) -> None:
    sim: EventHubsSim = await start_sim(EventHubsSim(max_message_size=100_000))

    def send() -> None:
        with producer(sim, **NO_RETRY) as client:
            client.create_batch()  # learns the limit from our attach
            # A client that ignores the limit (the SDK's own check is what this switches off):
            client._max_message_size_on_link = 1 << 20
            batch = client.create_batch(max_size_in_bytes=1 << 20)
            batch.add(EventData(b"z" * 150_000))
            client.send_batch(batch)

    with pytest.raises(EventDataSendError, match="LinkMessageSizeExceeded"):
        await asyncio.to_thread(send)
    assert sim.generated() == 0


async def test_throttling_rejects_with_server_busy_and_the_sdk_retry_delivers(start_sim: Starter) -> None:
    sim: EventHubsSim = await start_sim(
        EventHubsSim(faults=[{"path": "/logferry*", "status": 503, "count": None}])
    )

    def send() -> None:
        with producer(sim, **NO_RETRY) as client:
            # Even with retry_total=0 the SDK tries a throttled send twice before it gives up.
            with pytest.raises(EventDataSendError, match=r"com\.microsoft:server-busy"):
                client.send_batch([EventData("throttled")])
            assert sim.generated() == 0
            sim.faults.set_rules([FaultRule(path="/logferry*", status=503, count=1)])
            client.send_batch([EventData("retried")])

    await asyncio.to_thread(send)
    assert [e["body"] for e in await events(sim)] == ["retried"]
    assert sim.stats()["rejected"] == 3


async def test_a_slow_hub_settles_late_while_it_serves_other_senders(start_sim: Starter) -> None:
    sim: EventHubsSim = await start_sim(
        EventHubsSim(faults=[{"path": "/logferry", "status": None, "count": 1, "delay_secs": 1.0}])
    )
    slow = AsyncProducer.from_connection_string(sim.credentials["connection_string"], **NO_RETRY)
    fast = AsyncProducer.from_connection_string(sim.credentials["connection_string"], **NO_RETRY)
    async with slow, fast:
        started = time.monotonic()
        pending = asyncio.create_task(slow.send_batch([EventData("slow")]))
        await wait_for(lambda: sim.faults.injected == 1, timeout=5)
        await fast.send_batch([EventData("fast")])
        assert not pending.done()
        await pending
        assert time.monotonic() - started >= 1.0
    assert [e["body"] for e in await events(sim)] == ["fast", "slow"]


async def test_outage_closes_and_refuses_connections_until_it_ends(hub: EventHubsSim) -> None:
    client = AsyncProducer.from_connection_string(
        hub.credentials["connection_string"], retry_backoff_factor=0.01, **NO_RETRY
    )
    async with client, aiohttp.ClientSession() as http:
        await client.send_batch([EventData("before")])
        async with http.post(f"{hub.url}/sim/outage", json={"seconds": 60}) as resp:
            assert resp.status == 200
        with pytest.raises(EventHubError):
            await client.send_batch([EventData("during")])
        stats = hub.stats()
        assert stats["outage_closes"] == 1, "the open connection is closed"
        assert stats["refused"] >= 1, "and the SDK's new connection is refused"
        async with http.delete(f"{hub.url}/sim/outage") as resp:
            assert resp.status == 200
        await client.send_batch([EventData("after")])
    assert [e["body"] for e in await events(hub)] == ["before", "after"]


async def test_restart_keeps_the_amqp_port_and_drops_open_connections(hub: EventHubsSim) -> None:
    client = AsyncProducer.from_connection_string(
        hub.credentials["connection_string"], retry_backoff_factor=0.01
    )
    port = hub.credentials["amqp_port"]
    async with client:
        await client.send_batch([EventData("before")])
        await hub.stop()
        await hub.start()
        assert hub.credentials["amqp_port"] == port
        await client.send_batch([EventData("after restart")])  # the SDK reconnects
    # The hub keeps what it held, as the service does across a connection loss.
    assert [e["body"] for e in await events(hub)] == ["before", "after restart"]


@pytest.mark.parametrize(
    "value",
    [
        None, True, False, 0, -1, 127, -129, 1 << 40, 2.5, "", "ü" * 300, b"\x00" * 300,
        Symbol("amqp:not-found"), Timestamp(1_700_000_000_000), uuid.UUID(int=7),
        [], list(range(300)), {"a": [1, {"b": b"c"}]}, {Symbol(f"k{i}"): i for i in range(200)},
        Described(ULong(0x75), b"data"),
    ],
)  # fmt: skip
def test_codec_round_trips_small_and_large_encodings(value: Any) -> None:
    encoded = encode(value)
    assert decode(encoded) == (value, len(encoded))


def test_codec_typed_integers_and_arrays() -> None:
    assert encode(UInt(0)) == b"\x43" and encode(UInt(300)) == b"\x70\x00\x00\x01\x2c"
    assert encode(ULong(5)) == b"\x53\x05" and encode(Long(5)) == b"\x55\x05"
    assert decode(encode(Array("sym", ["PLAIN", "ANONYMOUS"])))[0] == ["PLAIN", "ANONYMOUS"]
    with pytest.raises(DecodeError, match="0x99"):
        decode(b"\x99")
    with pytest.raises(DecodeError, match="past the end"):
        decode(b"\xa1\x05ab")


def _token(key: SasKey, resource: str, expiry: int, name: str | None = None) -> str:
    sig = hmac.new(key.key.encode(), f"{quote_plus(resource)}\n{expiry}".encode(), hashlib.sha256).digest()
    fields = {
        "sr": resource,
        "sig": base64.b64encode(sig).decode(),
        "se": str(expiry),
        "skn": name or key.name,
    }
    return "SharedAccessSignature " + urlencode(fields)


def test_sas_tokens_are_checked_for_signature_key_name_expiry_and_audience() -> None:
    key = SasKey("send", "c2VjcmV0")
    later = int(time.time()) + 60
    assert key.verify(_token(key, "sb://ns/hub", later), "hub").path == "hub"
    assert key.verify(_token(key, "sb://ns/", later), "hub").path == "hub"  # namespace-wide token
    for token, reason in [
        (_token(SasKey("send", "other"), "sb://ns/hub", later), "InvalidSignature"),
        (_token(key, "sb://ns/hub", later, name="listen"), "key name"),
        (_token(key, "sb://ns/hub", int(time.time()) - 1), "ExpiredToken"),
        (_token(key, "sb://ns/otherhub", later), "InvalidAudience"),
        ("Bearer abc", "not a SharedAccessSignature"),
    ]:
        with pytest.raises(InvalidToken, match=reason):
            key.verify(token, "hub")


async def test_events_route_rejects_an_unknown_partition(hub: EventHubsSim) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/sim/events?partition=9") as resp:
        assert resp.status == 404


@pytest.fixture
async def standalone(launch: Any) -> AsyncIterator[dict[str, Any]]:
    proc = launch("event_hubs", False, "--partitions", "3", "--hub", "audit")
    yield await asyncio.to_thread(announcement, proc)
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 10) == 0


async def test_standalone_announces_a_connection_string_for_its_amqp_port(standalone: dict[str, Any]) -> None:
    creds = standalone["credentials"]
    assert creds["eventhub_name"] == "audit"
    assert creds["partition_ids"] == ["0", "1", "2"]
    assert creds["connection_string"] == (
        f"Endpoint=sb://127.0.0.1:{creds['amqp_port']}/;SharedAccessKeyName={creds['shared_access_key_name']};"
        f"SharedAccessKey={creds['shared_access_key']};EntityPath=audit;UseDevelopmentEmulator=true"
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", creds["amqp_port"])
    writer.write(b"AMQP\x03\x01\x00\x00")  # the SASL protocol header, as every client starts
    assert await reader.readexactly(8) == b"AMQP\x03\x01\x00\x00"
    writer.close()
    async with aiohttp.ClientSession() as http, http.get(f"{standalone['url']}/sim/stats") as resp:
        stats = await resp.json()
    assert stats["sim"] == "event_hubs"
    assert stats["connections"] == 1
