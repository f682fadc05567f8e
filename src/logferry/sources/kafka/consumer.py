"""A confluent-kafka consumer confined to one thread, with commit-after-store offsets.

``confluent_kafka.Consumer`` is not thread-safe and its calls block, so every call — creating it,
``consume``, ``commit``, the rebalance callbacks (librdkafka runs them inside ``consume``) and
``close`` — runs on one dedicated thread (a single-worker executor); the event loop only awaits.

Offsets: the source hands :meth:`ThreadConsumer.commit` the next offsets of a batch *after* that
batch is in the outbox. They are kept as pending until Kafka accepts them, and only for partitions
this member still owns:

* **revoked** (a rebalance hands a partition to another member): pending offsets of that partition
  are committed right there in the callback — the generation is still valid then — so the next
  owner starts after what this member already stored;
* **lost** (the session expired; the group moved on without us): pending offsets are dropped, since
  committing them could only move another member's position. The next owner reads those
  messages again: duplicates within one batch, never a loss.

Messages fetched but not yet stored are never committed: there is no auto-commit and no offset
store, so after a crash the group resumes at the last committed batch.

``error_cb`` collects librdkafka's connection-level errors (brokers down, authentication, TLS);
the source reads them with :meth:`ThreadConsumer.take_errors` after each call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from logferry.net.kafka import HOPELESS_CODES, RdkafkaValue, librdkafka_logger
from logferry.observe.logging import log_event

__all__ = ["HOPELESS_CODES", "PartitionKey", "ThreadConsumer"]

T = TypeVar("T")
_SLICE_SECS = 2.0
PartitionKey = tuple[str, int]


class ThreadConsumer:
    def __init__(
        self,
        props: Mapping[str, RdkafkaValue],
        topics: Sequence[str],
        logger: logging.Logger,
        name: str = "kafka",
    ) -> None:
        self._props = props
        self._topics = list(topics)
        self._log = logger
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"kafka-{name}")
        self._consumer: Consumer | None = None
        self._errors: list[KafkaError] = []
        #: Next offset per partition, stored in the outbox but not yet accepted by Kafka.
        self._pending: dict[PartitionKey, int] = {}
        self._assigned: set[PartitionKey] = set()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- event-loop side ---------------------------------------------------------------------

    async def open(self, subscribe: bool = True) -> None:
        await self._call(self._open, subscribe)

    async def consume(self, max_messages: int, timeout_secs: float) -> list[Message]:
        return await self._call(self._consume, max_messages, timeout_secs)

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Commit ``offsets`` (next offset per partition) with whatever earlier commits left pending.

        Raises :class:`KafkaException` when Kafka refuses; the offsets stay pending for the next try.
        """
        await self._call(self._commit, dict(offsets))

    async def reachable(self, topic: str, timeout_secs: float) -> int:
        """Partition count of ``topic``; raises :class:`KafkaException` (unreachable, unknown topic).

        Gives up early once librdkafka reports every broker down or a refused login. Serves
        callbacks with ``poll``: only for a consumer opened without ``subscribe`` (it would
        otherwise take a message out of turn)."""
        return await self._call(self._reachable, topic, timeout_secs)

    def take_errors(self) -> list[KafkaError]:
        """Errors librdkafka reported since the last call (read between calls: no race)."""
        errors, self._errors = self._errors, []
        return errors

    @property
    def opened(self) -> bool:
        return self._consumer is not None

    async def close(self) -> None:
        try:
            await self._call(self._close)
        finally:
            self._executor.shutdown(wait=False)

    # --- consumer thread ---------------------------------------------------------------------

    def _open(self, subscribe: bool) -> None:
        # The properties hold the SASL password: they go to librdkafka and nowhere else.
        self._consumer = Consumer(
            {**self._props, "error_cb": self._errors.append, "logger": librdkafka_logger(self._log)}
        )
        if subscribe:
            self._consumer.subscribe(
                self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
            )

    def _need(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("consumer used before open()")
        return self._consumer

    def _consume(self, max_messages: int, timeout_secs: float) -> list[Message]:
        return self._need().consume(num_messages=max_messages, timeout=timeout_secs)

    def _commit(self, offsets: dict[PartitionKey, int]) -> None:
        for key, offset in offsets.items():
            self._pending[key] = max(offset, self._pending.get(key, -1))
        # A partition revoked meanwhile was committed in the callback or belongs to someone else now.
        for key in [k for k in self._pending if k not in self._assigned]:
            del self._pending[key]
        self._commit_pending(set(self._pending))

    def _commit_pending(self, keys: set[PartitionKey], consumer: Consumer | None = None) -> None:
        todo = {k: v for k, v in self._pending.items() if k in keys}
        if not todo:
            return
        parts = [TopicPartition(t, p, off) for (t, p), off in todo.items()]
        result = (consumer or self._need()).commit(offsets=parts, asynchronous=False)
        failed = [tp for tp in result or () if tp.error is not None]
        for key, offset in todo.items():
            if self._pending.get(key) == offset and not any((tp.topic, tp.partition) == key for tp in failed):
                del self._pending[key]
        if failed:
            raise KafkaException(failed[0].error)

    def _topic_partitions(self, topic: str, timeout_secs: float) -> int:
        meta = self._need().list_topics(topic=topic, timeout=timeout_secs)
        tm = meta.topics.get(topic)
        if tm is None:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART))
        if tm.error is not None:
            raise KafkaException(tm.error)
        return len(tm.partitions)

    def _reachable(self, topic: str, timeout_secs: float) -> int:
        deadline = time.monotonic() + timeout_secs
        while True:
            try:
                return self._topic_partitions(topic, min(_SLICE_SECS, max(0.1, deadline - time.monotonic())))
            except KafkaException as exc:
                self._need().poll(0)  # serves error_cb with the reason behind the failure
                hopeless = any(e.code() in HOPELESS_CODES for e in self._errors)
                if hopeless or time.monotonic() >= deadline or exc.args[0].code() != KafkaError._TRANSPORT:
                    raise

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._assigned |= {(tp.topic, tp.partition) for tp in parts}
        log_event(self._log, logging.INFO, "kafka_partitions_assigned", partitions=_names(parts))

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in parts}
        try:
            self._commit_pending(keys, consumer)
        except KafkaException as exc:
            # The next owner reads those messages again; they are dropped by id if it is this store.
            log_event(self._log, logging.WARNING, "kafka_commit_on_revoke_failed", error=str(exc))
        for key in keys:
            self._pending.pop(key, None)
        self._assigned -= keys
        log_event(self._log, logging.INFO, "kafka_partitions_revoked", partitions=_names(parts))

    def _on_lost(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        keys = {(tp.topic, tp.partition) for tp in parts}
        for key in keys:
            self._pending.pop(key, None)
        self._assigned -= keys
        # Session expired: the group moved on; pending offsets were dropped (a replay, never a loss).
        log_event(self._log, logging.WARNING, "kafka_partitions_lost", partitions=_names(parts))

    def _close(self) -> None:
        if self._consumer is not None:
            # Leaves the group at once so the others take over without waiting for the session timeout;
            # the revoke callback it runs commits what is still pending.
            try:
                self._consumer.close()
            finally:
                self._consumer = None


def _names(parts: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in parts]
