"""The Kafka / Event Hubs source: consumer-group reading, offsets committed after the outbox.

One cycle of the shared :func:`~logferry.core.polling.poll_forever` loop:

1. wait for outbox capacity (backpressure), then read up to ``batch_max_events`` messages, waiting
   at most ``batch_wait_secs``;
2. decode them (:mod:`~logferry.sources.kafka.envelope`); what cannot be decoded goes to the
   dead-letter store with the reason;
3. ``ctx.emit`` the records with ids ``topic|partition|offset|timestamp[|index]`` — the outbox
   commit;
4. only then commit the batch's offsets to Kafka.

**Ids**: the offset (zero-padded, so ids sort in partition order) names a message only while its
topic lives: a deleted and recreated topic or event hub restarts its offsets at 0
(specs/event_hubs.md §4), and ``topic|partition|offset`` alone would make every new event a
"duplicate" of an old one for the dedupe TTL. The message timestamp (ms, set by the producer or
the broker and stored with the message, so the same on every read) tells them apart. A message
without a timestamp gets ``-`` there. Records the ``categories`` filter leaves out are counted in
``logferry_source_records_filtered_total``.

A crash between 3 and 4 makes the group read that batch again: the same ids, dropped by the
dedupe index when the same instance (state store) reads them, delivered at most once more when
another instance takes the partition. Nothing is committed to Kafka that is not in the outbox.

**Position**: the consumer group's committed offsets in Kafka decide where reading starts, so
several instances share partitions and a rebalance hands over exact positions. The emitted
cursor records the offsets this instance stored (``{"offsets": {topic: {partition: next}}}``) for
``/status``; it is not used to position the consumer: a recreated hub restarts its offsets at 0
and a stored higher offset would then skip new events.

**Health**: every cycle that reaches the brokers is a successful poll, with or without messages.
librdkafka never fails a read when the brokers are unreachable — it retries and reports through
``error_cb`` — so after such an error each cycle asks the brokers for the topic's metadata until
they answer; until then the cycle fails with the error in plain words and health turns red after
``stale_after_secs``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message

from logferry.core.errors import AuthError, SourceError
from logferry.core.polling import Cycle, format_time, poll_forever
from logferry.core.sink import CheckResult
from logferry.core.source import SourceContext
from logferry.core.types import JSONValue, Record
from logferry.observe.events import SourceRecordsFiltered
from logferry.observe.metrics import Metrics
from logferry.sources.kafka.consumer import HOPELESS_CODES, PartitionKey, ThreadConsumer
from logferry.sources.kafka.settings import ConsumerSettings

__all__ = ["METADATA_KEY", "KafkaSource", "explain"]

#: Where ``include_metadata`` puts the message's coordinates in each record.
METADATA_KEY = "_kafka"
#: Backoff after failures grows to twice this (poll_forever caps it at 2 x interval).
RECONNECT_INTERVAL_SECS = 15.0
PROBE_TIMEOUT_SECS = 5.0
CHECK_TIMEOUT_SECS = 10.0

_AUTH_CODES = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    }
)
# Errors that are librdkafka's own noise about retries it is making anyway.
_BENIGN_CODES = frozenset({KafkaError._PARTITION_EOF})


def explain(errors: list[KafkaError], where: str, hint: str) -> SourceError:
    """One plain sentence for the most telling of ``errors`` (authentication beats connection)."""
    auth = [e for e in errors if e.code() in _AUTH_CODES]
    if auth:
        return AuthError(
            f"{where} refused the credentials: {auth[-1].str()}; check the connection string or "
            "sasl_username/sasl_password, and that the policy or user may read (Listen)"
        )
    if not errors:
        return SourceError(f"cannot reach {where}; {hint}")
    # "1/1 brokers are down" says less than the connect error that caused it.
    specific = [e for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN]
    e = (specific or errors)[-1]
    if e.code() == KafkaError._SSL:
        return SourceError(
            f"TLS with {where} failed: {e.str()}; check tls.ca_file and the broker certificate"
        )
    if e.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return SourceError(f"{where}: the topic does not exist ({e.str()}); check the topic / event hub name")
    if e.code() == KafkaError._MAX_POLL_EXCEEDED:
        # Not a connection problem: backpressure held reading longer than librdkafka allows.
        return SourceError(
            f"{where}: reading paused longer than max.poll.interval (the outbox was full: a destination "
            "is slow or down), so the consumer group rebalanced this instance's partitions; reading "
            "resumes from the last committed batch when the outbox has room (at most that batch is "
            "read again)"
        )
    return SourceError(f"cannot reach {where}: {e.str()}; {hint}")


class KafkaSource:
    def __init__(self, name: str, settings: ConsumerSettings, metrics: Metrics | None = None) -> None:
        self.name = name
        self.settings = settings
        self.metrics = metrics
        self._log = logging.getLogger(f"logferry.source.{name}.kafka")
        self._consumer: ThreadConsumer | None = None
        #: Set after a connection-level error; cleared when the brokers answer a metadata request.
        self._suspect: list[KafkaError] = []
        self._offsets: dict[str, dict[str, int]] = {}

    @property
    def stale_after_secs(self) -> float:
        return self.settings.stale_after_secs

    async def close(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.close()

    # --- running -------------------------------------------------------------------------------

    async def run(self, ctx: SourceContext) -> None:
        s = self.settings
        if s.problem is not None:
            # A config problem no retry can fix: say so until the config is corrected.
            while not ctx.stopping.is_set():
                ctx.poll_failed(s.problem, "ConfigError")
                if not await ctx.sleep(RECONNECT_INTERVAL_SECS):
                    return
            return
        cursor = ctx.cursor
        saved = cursor.get("offsets") if isinstance(cursor, dict) else None
        self._offsets = {t: dict(p) for t, p in saved.items()} if isinstance(saved, dict) else {}
        self._consumer = consumer = ThreadConsumer(s.props, s.topics, self._log, self.name)
        try:
            await poll_forever(ctx, lambda: self._cycle(ctx, consumer), RECONNECT_INTERVAL_SECS)
        finally:
            await self.close()

    async def _cycle(self, ctx: SourceContext, consumer: ThreadConsumer) -> Cycle:
        s = self.settings
        if not consumer.opened:
            await _setup(consumer.open())
        await ctx.wait_capacity()
        try:
            messages = await consumer.consume(s.batch_max_events, s.batch_wait_secs)
        except KafkaException as exc:
            raise explain([exc.args[0]], s.where, s.unreachable_hint) from None
        fresh = consumer.take_errors()
        self._suspect = (self._suspect + fresh)[-20:]
        records: list[Record] = []
        ids: list[str] = []
        offsets: dict[PartitionKey, int] = {}
        failures: list[KafkaError] = []
        newest_ms: int | None = None
        filtered = 0
        rejects: list[tuple[str, bytes]] = []
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() not in _BENIGN_CODES:
                    failures.append(err)
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                continue
            decoded = s.envelope.decode(msg.value())
            filtered += decoded.filtered
            rejects.extend((f"{topic}[{partition}]@{offset}: {reason}", p) for reason, p in decoded.rejects)
            meta = _metadata(msg, topic, partition, offset) if s.include_metadata else None
            kind, ts = msg.timestamp()
            base = f"{topic}|{partition}|{offset:012d}|{ts if kind != 0 and ts >= 0 else '-'}"
            for index, record in decoded.records:
                if meta is not None:
                    record[METADATA_KEY] = meta
                records.append(record)
                ids.append(base if index is None else f"{base}|{index}")
            offsets[(topic, partition)] = offset + 1
            if kind != 0 and ts > 0:
                newest_ms = max(newest_ms or 0, ts)
        if offsets:
            for (topic, partition), nxt in offsets.items():
                self._offsets.setdefault(topic, {})[str(partition)] = nxt
            # Before the offsets move on: a crash in between replays the batch, never loses a reject.
            await ctx.dead_letters(rejects)
            await ctx.emit(records, self._cursor(), ids)
            if filtered and self.metrics is not None:
                # Counted once its batch is stored, as the records it left out are part of that batch.
                SourceRecordsFiltered(self.name, filtered).emit(self.metrics)
            try:
                await consumer.commit(offsets)
            except KafkaException as exc:
                # The records are stored; the offsets stay pending and go with the next commit.
                raise SourceError(f"offset commit to {s.where} failed: {exc.args[0].str()}") from None
        if failures:
            raise explain(failures, s.where, s.unreachable_hint)
        if self._suspect and not messages:
            if any(e.code() in HOPELESS_CODES for e in fresh):
                # librdkafka just said every broker is down or the login was refused: no need to ask.
                raise explain(self._suspect, s.where, s.unreachable_hint)
            await self._probe()
        self._suspect.clear()
        lag = 0.0 if newest_ms is None else max(0.0, time.time() - newest_ms / 1000)
        return Cycle(lag_secs=lag, more=True)

    async def _probe(self) -> None:
        """Ask the brokers for the topic's metadata: raise, in plain words, when they do not answer.

        A separate, unsubscribed client asks: it may serve librdkafka's callbacks with ``poll``
        to learn why a request failed, which on the group member could take a message out of turn.
        """
        s = self.settings
        try:
            await self._metadata(s.topics[0], PROBE_TIMEOUT_SECS)
        except SourceError as exc:
            if self._suspect and not isinstance(exc, AuthError) and "does not exist" not in str(exc):
                raise explain(self._suspect, s.where, s.unreachable_hint) from None
            raise

    async def _metadata(self, topic: str, timeout_secs: float) -> int:
        """Partition count of ``topic`` from a short-lived client; :class:`SourceError` in plain words."""
        s = self.settings
        probe = ThreadConsumer(s.props, s.topics, self._log, f"{self.name}-probe")
        try:
            await _setup(probe.open(subscribe=False))
            try:
                return await probe.reachable(topic, timeout_secs)
            except KafkaException as exc:
                err = exc.args[0]
                if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise SourceError(
                        f"{s.where}: topic {topic!r} does not exist; check the topic (event hub) name"
                    ) from None
                raise explain(probe.take_errors() or [err], s.where, s.unreachable_hint) from None
        finally:
            await probe.close()

    def _cursor(self) -> JSONValue:
        return {"offsets": {t: dict(p) for t, p in self._offsets.items()}}

    # --- check ---------------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        s = self.settings
        if s.problem is not None:
            return CheckResult(False, s.problem)
        found: list[str] = []
        for topic in s.topics:
            try:
                n = await self._metadata(topic, CHECK_TIMEOUT_SECS)
            except SourceError as exc:
                return CheckResult(False, str(exc))
            found.append(f"{topic} ({n} partitions)")
        return CheckResult(True, f"connected to {s.where}; " + ", ".join(found))


async def _setup(opening: Awaitable[None]) -> None:
    """librdkafka checks some settings only when the client is created (a missing CA file)."""
    try:
        await opening
    except KafkaException as exc:
        raise SourceError(f"cannot set up the Kafka client: {exc.args[0].str()}") from None


def _metadata(msg: Message, topic: str, partition: int, offset: int) -> dict[str, Any]:
    kind, ts = msg.timestamp()
    key = msg.key()
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": format_time(datetime.fromtimestamp(ts / 1000, UTC)) if kind != 0 and ts >= 0 else None,
        "key": key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
    }
