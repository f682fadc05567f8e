"""The ``event_hubs`` sink over AMQP, with Microsoft's ``azure-eventhub`` SDK (``protocol: amqp``).

The same outbox lines and message shapes as the Kafka path. A request's messages are grouped by
partition key and sent in the SDK's batches (``create_batch(partition_key=...)``), whose size the
SDK holds to the hub's limit (1 MB in Standard); a batch is one AMQP transfer that Event Hubs
accepts or refuses as a whole. All batches of a request are filled before the first is sent. The
SDK's own retries are off (``retry_total=0``): ``core.delivery`` owns backoff (the SDK would
otherwise sleep even after its last attempt). ``delivery_timeout_secs`` bounds filling the batches
and then each batch's transfer on its own, not the whole request: on a slow link a request of many
1 MB batches would otherwise never finish in time, and every attempt would store its first batches
again without end.

AMQP has no idempotent producer: when a request needs several batches and a later one fails, the
retry sends the earlier ones again. Consumers dedupe on the record's own id. When a batch times
out after others of its request were stored, the answer is ``split``: each half is smaller, so it
fits the timeout sooner, and the stored part is sent at most once more per halving.

TLS is verified with the system store or ``tls.ca_file``. A connection string with
``UseDevelopmentEmulator=true`` (the Event Hubs emulator) makes the SDK speak plain AMQP; the config
allows that only for a localhost endpoint.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence

from azure.eventhub import EventData, EventDataBatch
from azure.eventhub.aio import EventHubProducerClient
from azure.eventhub.exceptions import AuthenticationError, EventHubError

from logferry.core.sink import CheckResult, Resolution
from logferry.core.types import Record
from logferry.observe.redact import redact
from logferry.sinks.http_post import clip
from logferry.sinks.kafka.messages import LineEncoder, Message, MessageShape
from logferry.sinks.kafka.producer import request_limits

__all__ = ["AmqpSink"]

CHECK_TIMEOUT_SECS = 10.0
#: Closing waits for the peer's detach; a black-holed connection never answers.
CLOSE_TIMEOUT_SECS = 2.0


class AmqpSink:
    """Sends a request's lines to one event hub in SDK batches; see the module docstring."""

    def __init__(
        self,
        name: str,
        connection_string: str,
        hub: str,
        where: str,
        ssl_context: ssl.SSLContext,
        endpoint: str | None,
        lines: LineEncoder,
        shape: MessageShape,
        timeout_secs: float,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.limits = request_limits(shape.max_bytes)
        #: Where the records go, in words (no secrets), for reasons and check messages.
        self.where = where
        self._connection_string = connection_string
        self._hub = hub
        self._ssl = ssl_context
        self._endpoint = endpoint
        self._lines = lines
        self._shape = shape
        self._timeout = timeout_secs
        self._log = logger or logging.getLogger(f"logferry.sink.{name}")
        self._client: EventHubProducerClient | None = None

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return self._lines.encode("", records)

    def encode_from(self, source: str, records: Sequence[Record]) -> list[bytes]:
        return self._lines.encode(source, records)

    async def start(self) -> None:
        """Nothing to do: the SDK connects on the first send."""

    async def send(self, lines: list[bytes]) -> Resolution:
        if not lines:
            return Resolution.delivered()
        messages = self._shape.build(lines)
        if isinstance(messages, Resolution):
            return messages
        client = self._producer()
        if isinstance(client, str):
            return Resolution.retry(client)
        stored, batches = 0, list[EventDataBatch]()
        try:
            async with asyncio.timeout(self._timeout):
                filled = await self._batches(client, messages, len(lines))
            if isinstance(filled, Resolution):
                return filled
            batches = filled
            for batch in batches:
                async with asyncio.timeout(self._timeout):
                    await client.send_batch(batch)
                stored += 1
        except TimeoutError:
            await self._reset()
            reason = f"{self.where}: no answer within {self._timeout:g} s"
            if stored and len(lines) > 1:
                return Resolution.split(
                    f"{reason} after {stored} of {len(batches)} batches were stored; sending halves"
                )
            return Resolution.retry(reason)
        except EventHubError as exc:
            await self._reset()
            return Resolution.retry(self._reason(exc))
        return Resolution.delivered()

    async def _batches(
        self, client: EventHubProducerClient, messages: list[Message], lines: int
    ) -> list[EventDataBatch] | Resolution:
        """The request's messages in as few batches per key as fit, or split/reject if one fits none.

        Every batch is filled before the first is sent, so a record the hub can never take is found
        before anything of its request went out (no duplicates from the split that follows).
        """
        batches: list[EventDataBatch] = []
        for key, group in _by_key(messages).items():
            batch = await client.create_batch(partition_key=key)
            for m in group:
                if _added(batch, m):
                    continue
                if len(batch):
                    batches.append(batch)
                    batch = await client.create_batch(partition_key=key)
                    if _added(batch, m):
                        continue
                # Within max_message_bytes, yet over the hub's own limit (the link's max message size).
                reason = f"record of {len(m.value)} bytes is larger than {self.where} accepts"
                return Resolution.split(reason) if lines > 1 else Resolution.reject(reason)
            if len(batch):
                batches.append(batch)
        return batches

    async def healthcheck(self) -> CheckResult:
        client = self._producer()
        if isinstance(client, str):
            return CheckResult(False, client)
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECS):
                props = await client.get_eventhub_properties()
        except TimeoutError:
            await self._reset()
            return CheckResult(False, f"{self.where}: no answer within {CHECK_TIMEOUT_SECS:g} s")
        except EventHubError as exc:
            await self._reset()
            return CheckResult(False, self._reason(exc))
        return CheckResult(
            True, f"connected to {self.where} ({len(props.get('partition_ids', []))} partitions)"
        )

    async def close(self) -> None:
        await self._reset()

    def _producer(self) -> EventHubProducerClient | str:
        """The SDK client, or why it cannot be made (the config checks make that unlikely)."""
        if self._client is None:
            try:
                self._client = EventHubProducerClient.from_connection_string(
                    self._connection_string,
                    eventhub_name=self._hub,
                    retry_total=0,
                    retry_backoff_factor=0,
                    ssl_context=self._ssl,
                    custom_endpoint_address=self._endpoint,
                )
            except (ValueError, TypeError) as exc:
                # The SDK's text could quote the connection string.
                return clip(redact(f"cannot set up the Event Hubs client for {self.where}: {exc}"))
        return self._client

    async def _reset(self) -> None:
        """Drop the client after a failure: the next attempt starts from a fresh connection."""
        client, self._client = self._client, None
        if client is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_SECS):
                    await client.close()
            except (EventHubError, TimeoutError) as exc:
                self._log.debug("closing the Event Hubs client failed: %s", clip(str(exc) or "timed out"))

    def _reason(self, exc: EventHubError) -> str:
        if isinstance(exc, AuthenticationError):
            # The fix first: the SDK's own text repeats itself and is clipped.
            return clip(
                f"{self.where} refused the credentials: check the connection string and that its policy "
                f"has the Send claim ({exc})"
            )
        return clip(f"{self.where}: {exc}")


def _added(batch: EventDataBatch, message: Message) -> bool:
    try:
        batch.add(EventData(message.value))
    except ValueError:  # the batch is full, or the event alone exceeds the link's limit
        return False
    return True


def _by_key(messages: list[Message]) -> dict[str | None, list[Message]]:
    groups: dict[str | None, list[Message]] = {}
    for m in messages:
        groups.setdefault(m.key.decode() if m.key is not None else None, []).append(m)
    return groups
