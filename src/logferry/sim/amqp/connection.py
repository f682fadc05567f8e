"""The server side of one AMQP 1.0 connection: SASL, sessions, links, flow control and settlement.

What a broker does with links and messages is left to a :class:`Broker` (one per connection); this
module only speaks the protocol. Links from the client's point of view:

* a client **sender** (``role`` false) is served by our receiver: we grant credit, reassemble
  multi-frame transfers, hand each message to :meth:`Broker.on_message` and settle it with the
  outcome (accepted, or rejected with the broker's error);
* a client **receiver** (``role`` true) is served by our sender, which only carries replies
  (request/response nodes such as ``$cbs``): :meth:`Link.reply` queues a message until the client
  gives credit.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from .codec import DecodeError
from .frames import (
    AMQP_HEADER,
    ATTACH,
    BEGIN,
    CLOSE,
    DETACH,
    DISPOSITION,
    END,
    FLOW,
    OPEN,
    SASL_FRAME,
    SASL_HEADER,
    SASL_INIT,
    TRANSFER,
    AmqpError,
    Frame,
    Performative,
    accepted,
    attach,
    begin,
    close,
    detach,
    disposition,
    end,
    flow,
    frame_bytes,
    open_,
    read_frame,
    rejected,
    sasl_mechanisms,
    sasl_outcome,
    transfer,
    transfer_overhead,
)

__all__ = ["Broker", "ConnectionSettings", "Link", "Outcome", "serve_connection"]

_LOG = logging.getLogger(__name__)
#: How a delivery is settled: None accepts it, an error rejects it.
Outcome: TypeAlias = AmqpError | None
# Smallest frame size every peer must accept (part 2.7.1); used until the client's open arrives.
_MIN_FRAME = 512


class Broker(Protocol):
    """What the server does with one connection's links and messages."""

    def refusal(self) -> AmqpError | None:
        """Checked on every frame: an error closes the connection (a simulated outage)."""

    def on_attach(self, link: Link) -> AmqpError | None:
        """A client attached ``link``; an error detaches it right after the attach."""

    def on_message(
        self, link: Link, payload: memoryview, message_format: int
    ) -> Outcome | Awaitable[Outcome]:
        """A whole message arrived on a client sender link; None accepts it, an error rejects it.

        An awaitable outcome settles the delivery when it completes (a slow destination); the
        connection keeps serving meanwhile.
        """


@dataclass(frozen=True)
class ConnectionSettings:
    container_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    max_frame_size: int = 65536
    channel_max: int = 4999
    #: Our idle time-out (ms): the client must send something this often.
    idle_ms: int | None = 120_000
    #: Session incoming window and link credit we grant; both refilled at half.
    window: int = 5000
    link_credit: int = 1000
    #: The max-message-size of our receiving links (None: unlimited).
    max_message_size: int | None = None
    sasl_mechanisms: tuple[str, ...] = ("ANONYMOUS",)


class ProtocolError(Exception):
    """The client broke the protocol; the connection closes with this error."""

    def __init__(self, error: AmqpError) -> None:
        super().__init__(error.description)
        self.error = error


class _HangUp(Exception):
    """End the connection without a close frame (before AMQP is open there is nothing to close)."""


def _violation(description: str) -> ProtocolError:
    return ProtocolError(AmqpError("amqp:not-allowed", description))


class Link:
    """One attached link, named from the client's side: ``client_sends`` for client senders."""

    def __init__(
        self, session: _Session, handle: int, remote_handle: int, attach_frame: Performative
    ) -> None:
        self.session = session
        self.handle = handle
        self.remote_handle = remote_handle
        self.name: str = attach_frame["name"]
        self.client_sends = attach_frame["role"] is False
        self.source = Performative.from_described(attach_frame["source"])
        self.target = Performative.from_described(attach_frame["target"])
        self.delivery_count: int = attach_frame["initial_delivery_count"] or 0
        self.credit = 0
        self.partial: _Partial | None = None  # a delivery whose frames are still arriving
        self.pending: deque[bytes] = deque()

    @property
    def address(self) -> str:
        """The node the link talks to: the target of a client sender, the source of a client receiver."""
        node = self.target if self.client_sends else self.source
        return (node["address"] if node is not None else None) or ""

    def reply(self, payload: bytes) -> None:
        """Send ``payload`` on this session's client-receiver link from the same node."""
        for link in self.session.links.values():
            if not link.client_sends and link.address == self.address:
                link.pending.append(payload)
                self.session.connection.pump(link)
                return
        _LOG.debug("no reply link for %s; response dropped", self.address)


class _Session:
    def __init__(
        self, connection: _Connection, channel: int, remote_channel: int, frame: Performative
    ) -> None:
        self.connection = connection
        self.channel = channel
        self.remote_channel = remote_channel
        self.next_incoming_id: int = frame["next_outgoing_id"] or 0
        self.incoming_left = connection.settings.window
        self.next_outgoing_id = 0
        self.links: dict[int, Link] = {}  # by the client's handle


class _Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        broker: Broker,
        settings: ConnectionSettings,
    ) -> None:
        self.reader, self.writer, self.broker, self.settings = reader, writer, broker, settings
        self.sessions: dict[int, _Session] = {}  # by the client's channel
        self.remote_max_frame = _MIN_FRAME
        self.last_sent = 0.0
        self.closed = False
        self.opened = False
        self.heartbeat: asyncio.Task[None] | None = None
        self.later: set[asyncio.Task[None]] = set()  # deliveries the broker settles later

    # --- output ----------------------------------------------------------------------------------

    def send(self, channel: int, body: Any, payload: bytes = b"", kind: int = 0) -> None:
        if self.closed or self.writer.transport.is_closing():
            return
        self.writer.write(frame_bytes(channel, body, payload, kind))
        self.last_sent = asyncio.get_running_loop().time()

    def pump(self, link: Link) -> None:
        """Send queued replies while the client gives credit."""
        session = link.session
        while link.pending and link.credit > 0:
            payload = link.pending.popleft()
            delivery_id = session.next_outgoing_id
            session.next_outgoing_id += 1
            link.credit -= 1
            link.delivery_count += 1
            tag = delivery_id.to_bytes(4, "big")
            room = self.remote_max_frame - transfer_overhead(link.handle, delivery_id)
            chunks = [payload[i : i + room] for i in range(0, len(payload), room)] or [b""]
            for i, chunk in enumerate(chunks):
                more = i < len(chunks) - 1
                self.send(session.channel, transfer(link.handle, delivery_id, tag, more=more), chunk)

    # --- input -----------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            await self._handshake()
            await self._serve()
        except ProtocolError as exc:
            self._fail(exc.error)
        except DecodeError as exc:
            self._fail(AmqpError("amqp:decode-error", str(exc)))
        except (_HangUp, asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except Exception as exc:
            # A bug in the simulator: say so to the client and in the log, and keep serving others.
            _LOG.exception("AMQP connection failed")
            self._fail(AmqpError("amqp:internal-error", f"simulator error: {exc!r}"))
        finally:
            self.closed = True
            for task in (self.heartbeat, *self.later):
                if task is not None:
                    task.cancel()
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()

    def _fail(self, error: AmqpError) -> None:
        if not self.opened:
            # A close must follow our open (part 2.4.1), even when refusing the connection.
            self._send_open()
        self.send(0, close(error))

    async def _handshake(self) -> None:
        header = await self.reader.readexactly(8)
        self.writer.write(SASL_HEADER)
        if header != SASL_HEADER:
            # Event Hubs requires SASL first; answering with the header it wants is the spec's way to say so.
            raise _HangUp
        self.send(0, sasl_mechanisms(*self.settings.sasl_mechanisms), kind=SASL_FRAME)
        init = await read_frame(self.reader, _MIN_FRAME * 64)
        if init.body is None or init.body.code != SASL_INIT:
            raise _HangUp
        ok = init.body["mechanism"] in self.settings.sasl_mechanisms
        self.send(0, sasl_outcome(0 if ok else 1), kind=SASL_FRAME)  # 0 ok, 1 auth failed
        if not ok:
            raise _HangUp
        header = await self.reader.readexactly(8)
        self.writer.write(AMQP_HEADER)
        if header != AMQP_HEADER:
            raise _HangUp
        first = await self._next_frame()
        if first.body is None or first.body.code != OPEN:
            raise _violation("the first frame must be open")
        self._on_open(first.body)

    async def _next_frame(self) -> Frame:
        frame = await read_frame(self.reader, self.settings.max_frame_size)
        refusal = self.broker.refusal()
        if refusal is not None:
            raise ProtocolError(refusal)
        return frame

    def _on_open(self, frame: Performative) -> None:
        self.remote_max_frame = max(_MIN_FRAME, frame["max_frame_size"] or 0xFFFFFFFF)
        self._send_open()
        idle = frame["idle_time_out"]
        if idle:
            self.heartbeat = asyncio.get_running_loop().create_task(self._heartbeat(idle / 2000))

    def _send_open(self) -> None:
        s = self.settings
        self.send(0, open_(s.container_id, s.max_frame_size, s.channel_max, s.idle_ms))
        self.opened = True

    async def _heartbeat(self, every: float) -> None:
        loop = asyncio.get_running_loop()
        while not self.closed:
            await asyncio.sleep(every)
            if loop.time() - self.last_sent >= every:
                self.send(0, None)

    async def _serve(self) -> None:
        while True:
            frame = await self._next_frame()
            if frame.body is None:
                continue  # heartbeat
            if frame.body.code == CLOSE:
                self.send(0, close())
                return
            self._dispatch(frame)
            if self.writer.transport.get_write_buffer_size() > 1 << 20:
                await self.writer.drain()

    def _dispatch(self, frame: Frame) -> None:
        body = frame.body
        assert body is not None
        if body.code == BEGIN:
            self._on_begin(frame.channel, body)
            return
        session = self.sessions.get(frame.channel)
        if session is None:
            raise ProtocolError(
                AmqpError("amqp:connection:framing-error", f"no session on channel {frame.channel}")
            )
        if body.code == ATTACH:
            self._on_attach(session, body)
        elif body.code == FLOW:
            self._on_flow(session, body)
        elif body.code == TRANSFER:
            self._on_transfer(session, body, frame.payload)
        elif body.code == DETACH:
            link = session.links.pop(body["handle"], None)
            if link is not None:
                self.send(session.channel, detach(link.handle))
        elif body.code == END:
            del self.sessions[frame.channel]
            self.send(session.channel, end())
        elif body.code == DISPOSITION:
            pass  # our deliveries are sent settled; nothing waits for the client's outcome
        else:
            raise _violation(f"unexpected {body.name} frame")

    def _on_begin(self, channel: int, body: Performative) -> None:
        if channel in self.sessions:
            raise _violation(f"channel {channel} already has a session")
        if len(self.sessions) >= self.settings.channel_max:
            raise ProtocolError(AmqpError("amqp:resource-limit-exceeded", "too many sessions"))
        # We answer on the client's channel number: channels are chosen per direction.
        session = _Session(self, channel, channel, body)
        self.sessions[channel] = session
        self.send(channel, begin(channel, session.next_outgoing_id, self.settings.window, 255))

    def _on_attach(self, session: _Session, body: Performative) -> None:
        remote = body["handle"]
        if remote in session.links:
            raise ProtocolError(AmqpError("amqp:session:handle-in-use", f"handle {remote} is in use"))
        handle = min(set(range(len(session.links) + 1)) - {lk.handle for lk in session.links.values()})
        link = Link(session, handle, remote, body)
        session.links[remote] = link
        error = self.broker.on_attach(link)
        s = self.settings
        self.send(
            session.channel,
            attach(
                link.name,
                handle,
                link.client_sends,
                body["source"],
                body["target"] if error is None else None,
                initial_delivery_count=None if link.client_sends else 0,
                max_message_size=s.max_message_size if link.client_sends else None,
                snd_settle_mode=body["snd_settle_mode"],
                rcv_settle_mode=body["rcv_settle_mode"],
            ),
        )
        if error is not None:
            del session.links[remote]
            self.send(session.channel, detach(handle, error))
            return
        if link.client_sends:
            link.credit = s.link_credit
            self._grant(session, link)

    def _grant(self, session: _Session, link: Link | None = None) -> None:
        s = self.settings
        self.send(
            session.channel,
            flow(
                session.next_incoming_id,
                session.incoming_left,
                session.next_outgoing_id,
                s.window,
                None if link is None else link.handle,
                None if link is None else link.delivery_count,
                None if link is None else link.credit,
            ),
        )

    def _on_flow(self, session: _Session, body: Performative) -> None:
        handle = body["handle"]
        link = session.links.get(handle) if handle is not None else None
        if link is not None and not link.client_sends:
            # The client's view: credit = its delivery-count + link-credit - our delivery-count.
            count = body["delivery_count"]
            count = link.delivery_count if count is None else count
            link.credit = max(0, count + (body["link_credit"] or 0) - link.delivery_count)
            self.pump(link)
        if body["echo"]:
            self._grant(session, link if link is not None and link.client_sends else None)

    def _on_transfer(self, session: _Session, body: Performative, payload: memoryview) -> None:
        link = session.links.get(body["handle"])
        if link is None or not link.client_sends:
            raise ProtocolError(
                AmqpError("amqp:session:unattached-handle", f"handle {body['handle']} is not attached")
            )
        session.incoming_left -= 1
        session.next_incoming_id += 1
        partial = link.partial
        if partial is None:
            if link.credit <= 0:
                raise ProtocolError(
                    AmqpError("amqp:link:transfer-limit-exceeded", "transfer without link credit")
                )
            partial = link.partial = _Partial(body["delivery_id"], body["message_format"] or 0)
        partial.add(payload, bool(body["settled"]), self.settings.max_message_size)
        if body["more"] and not body["aborted"]:
            return
        link.partial = None
        link.credit -= 1
        link.delivery_count += 1
        if not body["aborted"]:
            self._deliver(session, link, partial)
        if (
            link.credit <= self.settings.link_credit // 2
            or session.incoming_left <= self.settings.window // 2
        ):
            link.credit = self.settings.link_credit
            session.incoming_left = self.settings.window
            self._grant(session, link)

    def _deliver(self, session: _Session, link: Link, partial: _Partial) -> None:
        limit = self.settings.max_message_size
        if limit is not None and partial.size > limit:
            outcome: Outcome | Awaitable[Outcome] = AmqpError(
                "amqp:link:message-size-exceeded",
                f"The received message (delivery-id:{partial.delivery_id}, size:{partial.size} bytes) "
                f"exceeds the limit ({limit} bytes) currently allowed on the link.",
            )
        else:
            outcome = self.broker.on_message(link, memoryview(partial.data), partial.message_format)
        if inspect.isawaitable(outcome):
            task = asyncio.get_running_loop().create_task(self._settle_later(session, partial, outcome))
            self.later.add(task)
            task.add_done_callback(self.later.discard)
        else:
            self._settle(session, partial, outcome)

    async def _settle_later(self, session: _Session, partial: _Partial, outcome: Awaitable[Outcome]) -> None:
        self._settle(session, partial, await outcome)

    def _settle(self, session: _Session, partial: _Partial, outcome: Outcome) -> None:
        if not partial.settled:
            state = accepted() if outcome is None else rejected(outcome)
            self.send(session.channel, disposition(partial.delivery_id, partial.delivery_id, state))


@dataclass
class _Partial:
    """A delivery being reassembled from its transfer frames."""

    delivery_id: int
    message_format: int
    settled: bool = False
    size: int = 0
    data: bytearray = field(default_factory=bytearray)

    def add(self, payload: memoryview, settled: bool, limit: int | None) -> None:
        self.settled = self.settled or settled
        self.size += len(payload)
        # An oversized message is only counted, so a client cannot make us buffer without bound.
        if limit is None or self.size <= limit:
            self.data += payload


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    broker: Broker,
    settings: ConnectionSettings,
) -> None:
    """Serve one accepted connection until the client closes it or breaks the protocol."""
    await _Connection(reader, writer, broker, settings).run()
