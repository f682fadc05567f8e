"""The Kafka-protocol sink: an idempotent confluent-kafka producer whose delivery reports decide.

``send`` hands a request's messages to librdkafka (from a worker thread: enqueueing thousands of
messages is CPU work the event loop should not wait on) and returns ``delivered`` only once every
message's delivery report came back without an error. A dedicated thread per producer serves
librdkafka's callbacks with ``poll``; the last report of a request wakes the event loop.

Idempotence (with ``acks=all``) makes librdkafka's own retries safe: a produce request whose
answer was lost is retried without a duplicate or a reordering in the partition. It does not cover
logferry's resends: a failed report makes the whole request a ``retry`` (or a ``split``, below), and
the messages of it that did arrive are written again. Consumers dedupe on the record's own id.

librdkafka retries connection problems by itself and reports a message as failed only after
``message.timeout.ms`` (``delivery_timeout_secs``), so a send during an outage ends in a retry after
at most that long.

That timeout runs for every message from the moment it is enqueued, and a request enqueues all of
its messages at once: on a link slower than the request's size per timeout, the tail of every
attempt would time out, and resending the whole request would store its head again each time
without ever finishing. So when messages timed out after others of the same request were
confirmed, the answer is ``split``: each half needs half the time, and the confirmed head is sent
at most once more per halving (consumers dedupe on the record's own id). The sink then remembers
how many messages got through: later requests above that size are split before anything is sent
(no message, no duplicate), and the cap doubles after every :data:`CAP_GROWS_AFTER` clean
requests, so a link that recovers is used in full again.

After messages timed out, or a fatal error (the broker forgot this producer's id, e.g. after it
lost its state), the producer session is replaced before the next send: a session that timed out
in-flight messages must bump its epoch, which a broker that forgot it may never allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin._metadata import ClusterMetadata

from logferry.core.sink import Action, BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.net.kafka import HOPELESS_CODES, RdkafkaValue, librdkafka_logger
from logferry.observe.logging import log_event
from logferry.sinks.http_post import clip
from logferry.sinks.kafka.messages import LineEncoder, Message, MessageShape

__all__ = ["KafkaSink", "ProducerSettings", "request_limits"]

#: Extra wait for the delivery reports beyond message.timeout.ms, after which librdkafka has
#: reported every message one way or the other.
REPORT_GRACE_SECS = 10.0
CHECK_TIMEOUT_SECS = 10.0
#: On stop, how long queued messages (of a send cut short) may take to go out.
CLOSE_FLUSH_SECS = 5.0
#: Clean requests at the capped size before the cap doubles (see the module docstring).
CAP_GROWS_AFTER = 8
_POLL_SECS = 0.1
_PROBE_SECS = 2.0
_SLICE_SECS = 1.0
#: A send waits for every report of its request: many messages per request keep the brokers busy.
_REQUEST_MAX_EVENTS = 10_000
_REQUEST_MAX_BYTES = 8 * 1024 * 1024

_SIZE_CODES = frozenset(
    {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_RECORD}
)
_AUTH_CODES = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    }
)
_TOPIC_CODES = frozenset(
    {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION}
)
#: A metadata request failed and one of these was reported: the brokers are not there right now.
_UNREACHABLE = HOPELESS_CODES | {KafkaError._TRANSPORT}
_TIMEOUT_CODES = frozenset({KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TIMED_OUT_QUEUE})


def request_limits(max_message_bytes: int) -> BatchLimits:
    """Requests of many messages (one ``send`` awaits every report), never too small for one message."""
    return BatchLimits(
        max_bytes=max(_REQUEST_MAX_BYTES, 2 * max_message_bytes),
        max_events=_REQUEST_MAX_EVENTS,
        prefix=b"",
        separator=b"",
        suffix=b"",
    )


@dataclass(frozen=True)
class ProducerSettings:
    #: librdkafka producer properties (bootstrap, security, idempotence); contains secrets.
    props: Mapping[str, RdkafkaValue] = field(repr=False)
    topic: str
    #: Where the records go, in words (no secrets), for reasons and check messages.
    where: str
    #: What to tell the user when the brokers cannot be reached.
    hint: str
    timeout_secs: float
    #: How long after ``timeout_secs`` the reports may still come in before the session is written off.
    report_grace_secs: float = REPORT_GRACE_SECS


class _Delivery:
    """Counts one request's delivery reports and wakes the event loop when the last one is in.

    The count starts one above the messages: the producing side holds that one until it knows how
    many messages librdkafka took, so the request cannot finish while it is still being enqueued.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, messages: int) -> None:
        self.errors: list[KafkaError] = []
        #: Messages the brokers acknowledged.
        self.confirmed = 0
        self.done: asyncio.Future[None] = loop.create_future()
        self._loop = loop
        self._lock = threading.Lock()
        self._left = messages + 1

    def report(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            self.errors.append(err)
        else:
            self.confirmed += 1
        self.release(1)

    def release(self, n: int) -> None:
        with self._lock:
            self._left -= n
            last = self._left == 0
        if last:
            # A send cut short by a stop leaves the loop closed behind it: nobody waits any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class _Client:
    """One librdkafka producer session and the thread that serves its callbacks."""

    def __init__(self, props: Mapping[str, RdkafkaValue], logger: logging.Logger, name: str) -> None:
        #: Connection-level errors librdkafka reported lately (brokers down, login refused, TLS).
        self.errors: deque[KafkaError] = deque(maxlen=20)
        #: Why this session must be replaced before the next send (a fatal error, timed-out messages).
        self.retire: str | None = None
        # The properties hold the SASL password: they go to librdkafka and nowhere else.
        self.producer = Producer({**props, "error_cb": self._on_error, "logger": librdkafka_logger(logger)})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"kafka-{name}", daemon=True)
        self._thread.start()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() == KafkaError._FATAL:
            self.retire = err.str()
        self.errors.append(err)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                self.producer.poll(_POLL_SECS)
            except KafkaException as exc:
                # poll raises a fatal error (e.g. the broker forgot this idempotent producer); the
                # thread keeps serving so the reports of the request in flight still come in.
                self._on_error(exc.args[0])

    def produce(self, topic: str, messages: Sequence[Message], delivery: _Delivery) -> BaseException | None:
        """Enqueue ``messages``; what stopped enqueueing early (queue full, refused message), if anything."""
        produce = self.producer.produce
        report = delivery.report
        sent = 0
        try:
            for m in messages:
                produce(topic, m.value, m.key, on_delivery=report)
                sent += 1
        except (KafkaException, BufferError) as exc:
            return exc
        finally:
            delivery.release(len(messages) - sent + 1)
        return None

    def metadata(self, topic: str, timeout_secs: float) -> ClusterMetadata:
        """The cluster's metadata for ``topic``; raises :class:`KafkaException` if the brokers do not answer.

        Asks in short slices and gives up early once librdkafka reports every broker down or a
        refused login, so a check during an outage answers in about a second, not ``timeout_secs``.
        """
        deadline = time.monotonic() + timeout_secs
        while True:
            try:
                meta: ClusterMetadata = self.producer.list_topics(
                    topic=topic, timeout=min(_SLICE_SECS, max(0.1, deadline - time.monotonic()))
                )
                return meta
            except KafkaException:
                if time.monotonic() >= deadline or any(e.code() in _UNREACHABLE for e in list(self.errors)):
                    raise

    def close(self, flush_secs: float) -> int:
        """Stop serving, give queued messages ``flush_secs`` to go out, drop the rest; how many were left."""
        self._stop.set()
        self._thread.join()
        left = int(self.producer.flush(flush_secs))
        if left:
            # Their requests never returned delivered, so they are still in the outbox; purged here
            # so that destroying the producer does not wait on them.
            self.producer.purge()
            self.producer.flush(0)
        return left


class KafkaSink:
    """Produces a request's lines to one topic; see the module docstring."""

    def __init__(
        self,
        name: str,
        settings: ProducerSettings,
        lines: LineEncoder,
        shape: MessageShape,
        logger: logging.Logger | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.limits = request_limits(shape.max_bytes)
        self._lines = lines
        self._shape = shape
        self._log = logger or logging.getLogger(f"logferry.sink.{name}")
        self._client: _Client | None = None
        #: Most lines per request since a request timed out part-way; None: no cap.
        self._cap: int | None = None
        self._clean = 0

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return self._lines.encode("", records)

    def encode_from(self, source: str, records: Sequence[Record]) -> list[bytes]:
        return self._lines.encode(source, records)

    async def start(self) -> None:
        """Create the producer; a failure here (a missing CA file) is reported again by every ``send``."""
        try:
            await self._session()
        except KafkaException as exc:
            log_event(
                self._log, logging.WARNING, "kafka_sink_setup_failed", sink=self.name, error=_setup(exc)
            )

    async def send(self, lines: list[bytes]) -> Resolution:
        if not lines:
            return Resolution.delivered()
        cap = self._cap
        if cap is not None and len(lines) > cap:
            return Resolution.split(
                f"{self.settings.where}: requests are held to {cap} messages since a larger one could not "
                "be delivered within delivery_timeout_secs"
            )
        result = await self._send(lines)
        if result.action is Action.DELIVERED and cap is not None:
            self._clean += 1
            if self._clean >= CAP_GROWS_AFTER:
                self._cap = None if cap * 2 >= _REQUEST_MAX_EVENTS else cap * 2
                self._clean = 0
        return result

    async def _send(self, lines: list[bytes]) -> Resolution:
        messages = self._shape.build(lines)
        if isinstance(messages, Resolution):
            return messages
        try:
            client = await self._session()
        except KafkaException as exc:
            return Resolution.retry(_setup(exc))
        client.errors.clear()
        s = self.settings
        delivery = _Delivery(asyncio.get_running_loop(), len(messages))
        stopped = await asyncio.to_thread(client.produce, s.topic, messages, delivery)
        wait = s.timeout_secs + s.report_grace_secs
        try:
            await asyncio.wait_for(asyncio.shield(delivery.done), wait)
        except TimeoutError:
            client.retire = "delivery reports overdue"
            reason = clip(f"{s.where}: no delivery report within {wait:g} s")
            return self._partly(reason, delivery.confirmed, len(lines))
        if isinstance(stopped, BufferError):
            reason = f"{s.where}: the producer's queue is full"
            return self._partly(reason, delivery.confirmed, len(lines))
        errors = list(delivery.errors)
        if isinstance(stopped, KafkaException):
            errors.append(stopped.args[0])
        if not errors:
            return Resolution.delivered()
        return await self._failed(errors, client, len(lines), delivery.confirmed)

    async def _failed(
        self, errors: list[KafkaError], client: _Client, lines: int, confirmed: int
    ) -> Resolution:
        s = self.settings
        codes = {e.code() for e in errors}
        fatal = next((e.str() for e in errors if e.fatal() or e.code() == KafkaError._FATAL), client.retire)
        if fatal is not None:
            client.retire = fatal
            return Resolution.retry(clip(f"{s.where}: the producer failed ({fatal}); starting a new one"))
        if codes & _SIZE_CODES:
            e = next(e for e in errors if e.code() in _SIZE_CODES)
            reason = clip(
                f"{s.where} refused a message as too large or invalid ({e.str()}); lower max_message_bytes "
                "to the topic's max.message.bytes"
            )
            return Resolution.split(reason) if lines > 1 else Resolution.reject(reason)
        seen = errors + list(client.errors)
        auth = [e for e in seen if e.code() in _AUTH_CODES]
        if auth:
            # librdkafka keeps a topic's authorization error until its next metadata refresh (minutes):
            # a new session sees a fixed ACL or policy at once.
            client.retire = "write refused"
            return Resolution.retry(
                clip(
                    f"{s.where} refused the credentials: {auth[-1].str()}; check the connection string or "
                    "sasl_username/sasl_password, and that the policy or user may write (Send)"
                )
            )
        if codes & _TOPIC_CODES:
            return Resolution.retry(_no_topic(s.where))
        if codes <= _TIMEOUT_CODES:
            # "Message timed out" says less than the connect error behind it.
            reported = list(client.errors)
            cause = [e for e in reported if e.code() != KafkaError._ALL_BROKERS_DOWN] or reported
            if not cause and not await self._topic_exists(client):
                # librdkafka holds messages for a topic it does not know until they time out; nothing
                # was in flight, so the session is sound.
                return Resolution.retry(_no_topic(s.where))
            client.retire = "messages timed out"
            why = f": {cause[-1].str()}" if cause else ""
            reason = clip(f"no acknowledgement from {s.where} within {s.timeout_secs:g} s{why}; {s.hint}")
            return self._partly(reason, confirmed, lines)
        return Resolution.retry(clip(f"{s.where}: {errors[-1].str()}"))

    def _partly(self, reason: str, confirmed: int, lines: int) -> Resolution:
        """Part of the request went out: ``split`` if part of it got through, and cap later requests at
        what did (see the module docstring); else retry."""
        if confirmed and lines > 1:
            self._cap, self._clean = max(1, min(lines - 1, confirmed)), 0
            return Resolution.split(
                f"{reason} ({confirmed} messages of the request were stored; sending halves)"
            )
        return Resolution.retry(reason)

    async def healthcheck(self) -> CheckResult:
        s = self.settings
        try:
            client = await self._session()
            meta = await asyncio.to_thread(client.metadata, s.topic, CHECK_TIMEOUT_SECS)
        except KafkaException as exc:
            err = exc.args[0]
            cause = [e for e in self._errors() if e.code() != KafkaError._ALL_BROKERS_DOWN]
            detail = (cause[-1] if cause else err).str()
            return CheckResult(False, clip(f"cannot reach {s.where}: {detail}; {s.hint}"))
        topic = meta.topics.get(s.topic)
        if topic is None or topic.error is not None:
            return CheckResult(False, _no_topic(s.where))
        return CheckResult(True, f"connected to {s.where} ({len(topic.partitions)} partitions)")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            left = await asyncio.to_thread(client.close, CLOSE_FLUSH_SECS)
            if left:
                # Still in the outbox (their send never returned delivered): sent again after a restart.
                log_event(
                    self._log, logging.INFO, "kafka_sink_closed_with_queued", sink=self.name, queued=left
                )

    async def _topic_exists(self, client: _Client) -> bool:
        """Whether the brokers know the topic; ``True`` when they do not answer (nothing to tell)."""
        try:
            meta = await asyncio.to_thread(client.metadata, self.settings.topic, _PROBE_SECS)
        except KafkaException:
            return True
        topic = meta.topics.get(self.settings.topic)
        return topic is not None and topic.error is None

    def _errors(self) -> list[KafkaError]:
        return list(self._client.errors) if self._client is not None else []

    async def _session(self) -> _Client:
        """The live producer, replacing one that must retire (see the module docstring)."""
        client = self._client
        if client is not None and client.retire is not None:
            log_event(
                self._log,
                logging.WARNING,
                "kafka_producer_replaced",
                sink=self.name,
                error=client.retire,
            )
            self._client = None
            await asyncio.to_thread(client.close, 0)
            client = None
        if client is None:
            client = await asyncio.to_thread(_Client, self.settings.props, self._log, self.name)
            self._client = client
        return client


def _no_topic(where: str) -> str:
    return clip(f"{where}: the topic does not exist; create it (logferry does not) or fix its name")


def _setup(exc: KafkaException) -> str:
    """librdkafka checks some settings only when the client is created (a missing CA file)."""
    return clip(f"cannot set up the Kafka client: {exc.args[0].str()}")
