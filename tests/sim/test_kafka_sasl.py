"""The Event Hubs simulator's Kafka endpoint on the wire: what its SASL front answers before login,
each version of the SASL exchange, and what it refuses (librdkafka itself is tested in
tests/sinks/kafka/test_event_hubs_kafka.py and tests/sources/kafka/test_event_hubs_endpoint.py)."""

from __future__ import annotations

import asyncio
import ssl
import struct

import pytest

from logferry.sim.eventhubs import EventHubsSim


class Client:
    """Kafka requests by hand: header v1 (or v2, flexible) with client id ``t``."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, sim: EventHubsSim) -> Client:
        assert sim.kafka is not None
        context = ssl.create_default_context(cafile=sim.ca_file)
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.kafka.port, ssl=context)
        return cls(reader, writer)

    def send(self, api_key: int, version: int, body: bytes, *, flexible: bool = False) -> None:
        header = struct.pack(">hhih", api_key, version, 7, 1) + b"t" + (b"\0" if flexible else b"")
        self.writer.write(struct.pack(">i", len(header) + len(body)) + header + body)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(struct.pack(">i", len(data)) + data)

    async def answer(self) -> bytes:
        (size,) = struct.unpack(">i", await asyncio.wait_for(self.reader.readexactly(4), 10))
        return await asyncio.wait_for(self.reader.readexactly(size), 10)

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 10) == b""

    async def close(self) -> None:
        self.writer.close()
        await asyncio.gather(self.writer.wait_closed(), return_exceptions=True)


def string(value: str) -> bytes:
    return struct.pack(">h", len(value)) + value.encode()


def plain(username: str, password: str) -> bytes:
    return b"\0" + username.encode() + b"\0" + password.encode()


def api_keys(answer: bytes, version: int) -> dict[int, tuple[int, int]]:
    """The ApiVersions answer's key -> (min, max); header v0 (correlation id only) in every version."""
    assert struct.unpack_from(">ih", answer) == (7, 0)
    offset = 6
    if version >= 3:
        count = answer[offset] - 1  # a single-byte varint: fewer than 127 APIs
        offset += 1
    else:
        (count,) = struct.unpack_from(">i", answer, offset)
        offset += 4
    keys = {}
    for _ in range(count):
        key, low, high = struct.unpack_from(">hhh", answer, offset)
        keys[key] = (low, high)
        offset += 6 + (1 if version >= 3 else 0)
    return keys


@pytest.mark.parametrize("version", [0, 3])
async def test_api_versions_come_from_the_broker_with_the_sasl_apis_added(
    kafka_namespace: EventHubsSim, version: int
) -> None:
    client = await Client.connect(kafka_namespace)
    # v3: client software name and version as compact strings, then no tagged fields.
    body = b"\x02t\x021\x00" if version >= 3 else b""
    client.send(18, version, body, flexible=version >= 3)
    keys = api_keys(await client.answer(), version)
    assert keys[17] == (0, 1) and keys[36] == (0, 2)
    assert 0 in keys and 3 in keys, "the broker's own APIs (Produce, Metadata) are kept"
    await client.close()


async def test_a_request_before_login_closes_the_connection(kafka_namespace: EventHubsSim) -> None:
    client = await Client.connect(kafka_namespace)
    client.send(3, 0, struct.pack(">i", 0))  # Metadata v0, all topics
    assert await client.closed()
    await client.close()


async def test_only_plain_is_offered(kafka_namespace: EventHubsSim) -> None:
    client = await Client.connect(kafka_namespace)
    client.send(17, 1, string("SCRAM-SHA-256"))
    answer = await client.answer()
    correlation, error, count = struct.unpack_from(">ihi", answer)
    assert (correlation, error, count) == (7, 33, 1)  # UNSUPPORTED_SASL_MECHANISM
    assert answer[10:] == string("PLAIN")
    assert await client.closed()
    await client.close()


async def test_v0_handshake_takes_the_bare_token_then_relays_to_the_broker(
    kafka_namespace: EventHubsSim,
) -> None:
    client = await Client.connect(kafka_namespace)
    client.send(17, 0, string("PLAIN"))
    assert struct.unpack(">ih", (await client.answer())[:6]) == (7, 0)
    client.send_raw(plain("$ConnectionString", kafka_namespace.credentials["kafka_connection_string"]))
    assert await client.answer() == b""  # the empty server token: logged in
    client.send(3, 0, struct.pack(">i", 0))  # Metadata v0 now reaches Tansu
    answer = await client.answer()
    assert struct.unpack_from(">i", answer) == (7,)
    assert kafka_namespace.options.hub.encode() in answer
    await client.close()


@pytest.mark.parametrize("version", [1, 2])
async def test_a_refused_login_answers_the_reason_then_closes(
    kafka_namespace: EventHubsSim, version: int
) -> None:
    client = await Client.connect(kafka_namespace)
    client.send(17, 1, string("PLAIN"))
    await client.answer()
    token = plain("$ConnectionString", "Endpoint=sb://x/;SharedAccessKeyName=a;SharedAccessKey=b")
    if version >= 2:
        client.send(36, version, bytes([len(token) + 1]) + token + b"\0", flexible=True)
    else:
        client.send(36, version, struct.pack(">i", len(token)) + token)
    answer = await client.answer()
    if version >= 2:  # response header v1: a tagged-field count after the correlation id
        assert struct.unpack_from(">ibh", answer) == (7, 0, 58)
        size = answer[7] - 1
        message = answer[8 : 8 + size]
    else:
        assert struct.unpack_from(">ih", answer) == (7, 58)  # SASL_AUTHENTICATION_FAILED
        (size,) = struct.unpack_from(">h", answer, 6)
        message = answer[8 : 8 + size]
    assert message == b"the connection string's SharedAccessKeyName or SharedAccessKey is not valid"
    assert await client.closed()
    await client.close()
    assert kafka_namespace.kafka is not None and kafka_namespace.kafka.counters["auth_failures"] == 1


async def test_a_garbage_frame_closes_only_its_own_connection(kafka_namespace: EventHubsSim) -> None:
    bad = await Client.connect(kafka_namespace)
    bad.writer.write(b"\xff\xff\xff\xff")  # a negative frame size
    assert await bad.closed()
    await bad.close()
    good = await Client.connect(kafka_namespace)
    good.send(18, 0, b"")
    assert 36 in api_keys(await good.answer(), 0)
    await good.close()


async def test_an_outage_refuses_new_connections_and_cuts_open_ones(kafka_namespace: EventHubsSim) -> None:
    open_one = await Client.connect(kafka_namespace)
    open_one.send(18, 0, b"")
    await open_one.answer()
    kafka_namespace.faults.start_outage(asyncio.get_running_loop().time(), 60)
    open_one.send(18, 0, b"")
    assert await open_one.closed()
    await open_one.close()
    with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
        late = await Client.connect(kafka_namespace)
        await late.answer()
    assert kafka_namespace.kafka is not None
    assert kafka_namespace.kafka.counters["refused"] >= 1


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("logferry", "{cs}", "the username must be $ConnectionString"),
        (
            "$ConnectionString",
            "{cs};SharedAccessSignature=SharedAccessSignature sr=a",
            "SAS tokens are not supported",
        ),
        ("$ConnectionString", "{cs};EntityPath=other", "belongs to event hub 'other'"),
    ],
)
def test_the_login_check_names_what_event_hubs_would_refuse(
    username: str, password: str, reason: str
) -> None:
    sim = EventHubsSim(kafka=True)
    assert sim.kafka is not None
    cs = sim.kafka.connection_string("127.0.0.1")
    refusal = sim.kafka.check_login(username, password.replace("{cs}", cs))
    assert refusal is not None and reason in refusal, refusal
    assert sim.kafka.check_login("$ConnectionString", cs) is None
