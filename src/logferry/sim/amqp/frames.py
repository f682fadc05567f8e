"""AMQP 1.0 frames, performatives and message sections (OASIS AMQP 1.0, parts 2 and 3; SASL in part 5).

A frame is ``size:uint32 doff:uint8 type:uint8 channel:uint16``, an extended header of
``doff * 4 - 8`` bytes, then a performative (a described list) and, for transfers, the payload.
Performatives are decoded into :class:`Performative`, whose fields are read by name.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .codec import Array, DecodeError, Described, Symbol, UByte, UInt, ULong, UShort, decode, encode

__all__ = [
    "AMQP_HEADER",
    "BATCH_FORMAT",
    "SASL_HEADER",
    "AmqpError",
    "Frame",
    "Message",
    "Performative",
    "accepted",
    "frame_bytes",
    "parse_message",
    "read_frame",
    "rejected",
    "serialize_message",
]

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"
#: Microsoft's batch message format: each Data section of the transfer holds one whole message.
BATCH_FORMAT = 0x80013700
AMQP_FRAME, SASL_FRAME = 0, 1
_HEADER = struct.Struct(">IBBH")

# Descriptor codes and field names, in wire order.
FIELDS: dict[int, tuple[str, ...]] = {
    0x10: ("container_id", "hostname", "max_frame_size", "channel_max", "idle_time_out", "outgoing_locales",
           "incoming_locales", "offered_capabilities", "desired_capabilities", "properties"),
    0x11: ("remote_channel", "next_outgoing_id", "incoming_window", "outgoing_window", "handle_max",
           "offered_capabilities", "desired_capabilities", "properties"),
    0x12: ("name", "handle", "role", "snd_settle_mode", "rcv_settle_mode", "source", "target", "unsettled",
           "incomplete_unsettled", "initial_delivery_count", "max_message_size", "offered_capabilities",
           "desired_capabilities", "properties"),
    0x13: ("next_incoming_id", "incoming_window", "next_outgoing_id", "outgoing_window", "handle",
           "delivery_count", "link_credit", "available", "drain", "echo", "properties"),
    0x14: ("handle", "delivery_id", "delivery_tag", "message_format", "settled", "more", "rcv_settle_mode",
           "state", "resume", "aborted", "batchable"),
    0x15: ("role", "first", "last", "settled", "state", "batchable"),
    0x16: ("handle", "closed", "error"),
    0x17: ("error",),
    0x18: ("error",),
    0x1D: ("condition", "description", "info"),
    0x28: ("address", "durable", "expiry_policy", "timeout", "dynamic", "dynamic_node_properties",
           "distribution_mode", "filter", "default_outcome", "outcomes", "capabilities"),
    0x29: ("address", "durable", "expiry_policy", "timeout", "dynamic", "dynamic_node_properties",
           "capabilities"),
    0x40: ("sasl_server_mechanisms",),
    0x41: ("mechanism", "initial_response", "hostname"),
    0x44: ("code", "additional_data"),
}  # fmt: skip
OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
ERROR, SOURCE, TARGET = 0x1D, 0x28, 0x29
SASL_MECHANISMS, SASL_INIT, SASL_OUTCOME = 0x40, 0x41, 0x44
ACCEPTED, REJECTED = 0x24, 0x25
NAMES = {
    OPEN: "open", BEGIN: "begin", ATTACH: "attach", FLOW: "flow", TRANSFER: "transfer",
    DISPOSITION: "disposition", DETACH: "detach", END: "end", CLOSE: "close",
    SASL_INIT: "sasl-init", SASL_MECHANISMS: "sasl-mechanisms", SASL_OUTCOME: "sasl-outcome",
}  # fmt: skip


class Performative:
    """A decoded performative (or composite such as a source); missing fields read as None."""

    __slots__ = ("code", "values")

    def __init__(self, code: int, values: list[Any]) -> None:
        self.code = code
        self.values = values

    def __getitem__(self, name: str) -> Any:
        index = FIELDS[self.code].index(name)
        return self.values[index] if index < len(self.values) else None

    @property
    def name(self) -> str:
        return NAMES.get(self.code, f"0x{self.code:x}")

    @classmethod
    def from_described(cls, value: Any) -> Performative | None:
        """The composite ``value`` (a described list with a numeric descriptor), or None."""
        if not isinstance(value, Described) or not isinstance(value.value, list):
            return None
        code = value.descriptor
        return cls(code, value.value) if isinstance(code, int) and code in FIELDS else None


def composite(code: int, *values: Any) -> Described:
    """A described list with every field of ``code`` present.

    The spec lets a sender omit trailing nulls, but the Azure SDK's decoder reads fields by
    position (a transfer's payload is taken as the element after the last field), so the service
    sends them all, and so do we.
    """
    items = list(values)
    items += [None] * (len(FIELDS.get(code, ())) - len(items))
    return Described(ULong(code), items)


@dataclass(frozen=True)
class AmqpError:
    """An AMQP error: ``condition`` is a symbol such as ``amqp:not-found``."""

    condition: str
    description: str
    info: Mapping[str, Any] | None = None

    def described(self) -> Described:
        info = None if self.info is None else {Symbol(k): v for k, v in self.info.items()}
        return composite(ERROR, Symbol(self.condition), self.description, info)


def accepted() -> Described:
    return composite(ACCEPTED)


def rejected(error: AmqpError) -> Described:
    return composite(REJECTED, error.described())


@dataclass
class Frame:
    """One frame; ``body`` is None for an empty (heartbeat) frame."""

    kind: int
    channel: int
    body: Performative | None
    payload: memoryview = field(default_factory=lambda: memoryview(b""))


async def read_frame(reader: asyncio.StreamReader, max_size: int) -> Frame:
    """The next frame; ``DecodeError`` if it is malformed or larger than ``max_size``."""
    header = await reader.readexactly(8)
    size, doff, kind, channel = _HEADER.unpack(header)
    if size < 8 or doff < 2 or doff * 4 > size:
        raise DecodeError(f"malformed frame header (size {size}, doff {doff})")
    if size > max_size:
        raise DecodeError(f"frame of {size} bytes is larger than the negotiated max-frame-size {max_size}")
    rest = memoryview(await reader.readexactly(size - 8))[doff * 4 - 8 :]
    if not rest:
        return Frame(kind, channel, None)
    value, end = decode(rest)
    performative = Performative.from_described(value)
    if performative is None:
        raise DecodeError("frame body is not a known performative")
    return Frame(kind, channel, performative, rest[end:])


def frame_bytes(channel: int, body: Described | None, payload: bytes = b"", kind: int = AMQP_FRAME) -> bytes:
    data = b"" if body is None else encode(body)
    return _HEADER.pack(8 + len(data) + len(payload), 2, kind, channel) + data + payload


def transfer_overhead(handle: int, delivery_id: int) -> int:
    """Bytes a transfer frame takes besides its payload (header and performative)."""
    return len(frame_bytes(0, transfer(handle, delivery_id, b"\x00" * 16, more=True)))


# --- performatives the server sends -------------------------------------------------------------


def open_(container_id: str, max_frame_size: int, channel_max: int, idle_ms: int | None) -> Described:
    return composite(
        OPEN,
        container_id,
        None,
        UInt(max_frame_size),
        UShort(channel_max),
        None if idle_ms is None else UInt(idle_ms),
    )


def begin(remote_channel: int, next_outgoing_id: int, window: int, handle_max: int) -> Described:
    return composite(
        BEGIN, UShort(remote_channel), UInt(next_outgoing_id), UInt(window), UInt(window), UInt(handle_max)
    )


def attach(
    name: str,
    handle: int,
    receiver: bool,
    source: Any,
    target: Any,
    *,
    initial_delivery_count: int | None = None,
    max_message_size: int | None = None,
    snd_settle_mode: int | None = None,
    rcv_settle_mode: int | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Described:
    return composite(
        ATTACH,
        name,
        UInt(handle),
        receiver,
        None if snd_settle_mode is None else UByte(snd_settle_mode),
        None if rcv_settle_mode is None else UByte(rcv_settle_mode),
        source,
        target,
        None,
        None,
        None if initial_delivery_count is None else UInt(initial_delivery_count),
        None if max_message_size is None else ULong(max_message_size),
        None,
        None,
        None if properties is None else {Symbol(k): v for k, v in properties.items()},
    )


def flow(
    next_incoming_id: int,
    incoming_window: int,
    next_outgoing_id: int,
    outgoing_window: int,
    handle: int | None = None,
    delivery_count: int | None = None,
    link_credit: int | None = None,
) -> Described:
    return composite(
        FLOW,
        UInt(next_incoming_id),
        UInt(incoming_window),
        UInt(next_outgoing_id),
        UInt(outgoing_window),
        None if handle is None else UInt(handle),
        None if delivery_count is None else UInt(delivery_count),
        None if link_credit is None else UInt(link_credit),
    )


def transfer(handle: int, delivery_id: int, tag: bytes, *, more: bool = False) -> Described:
    return composite(TRANSFER, UInt(handle), UInt(delivery_id), tag, UInt(0), True, more)


def disposition(first: int, last: int, state: Described) -> Described:
    # role true: the server is the receiver of what it settles here.
    return composite(DISPOSITION, True, UInt(first), UInt(last), True, state)


def detach(handle: int, error: AmqpError | None = None) -> Described:
    return composite(DETACH, UInt(handle), True, None if error is None else error.described())


def end(error: AmqpError | None = None) -> Described:
    return composite(END, None if error is None else error.described())


def close(error: AmqpError | None = None) -> Described:
    return composite(CLOSE, None if error is None else error.described())


def sasl_mechanisms(*names: str) -> Described:
    return composite(SASL_MECHANISMS, Array("sym", names))


def sasl_outcome(code: int) -> Described:
    return composite(SASL_OUTCOME, UByte(code))


# --- messages ------------------------------------------------------------------------------------

_HEADER_SECTION, _DELIVERY_ANNOTATIONS, _ANNOTATIONS, _PROPERTIES = 0x70, 0x71, 0x72, 0x73
_APP_PROPERTIES, _DATA, _SEQUENCE, _VALUE, _FOOTER = 0x74, 0x75, 0x76, 0x77, 0x78
PROPERTY_NAMES = (
    "message_id", "user_id", "to", "subject", "reply_to", "correlation_id", "content_type",
    "content_encoding", "absolute_expiry_time", "creation_time", "group_id", "group_sequence",
    "reply_to_group_id",
)  # fmt: skip


@dataclass
class Message:
    """A bare message with its annotations; the body is ``data`` sections, or ``value`` for an
    ``amqp-value`` body (the list of items for ``amqp-sequence`` sections)."""

    annotations: dict[Any, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    application_properties: dict[Any, Any] = field(default_factory=dict)
    data: list[bytes] = field(default_factory=list)
    value: Any = None


def parse_message(payload: bytes | memoryview) -> Message:
    """Decode the sections of one message (``DecodeError`` if one is not a message section)."""
    message = Message()
    view = memoryview(payload)
    pos = 0
    while pos < len(view):
        section, pos = decode(view, pos)
        if not isinstance(section, Described) or not isinstance(section.descriptor, int):
            raise DecodeError("a message section must be a described type with a numeric descriptor")
        code, value = section.descriptor, section.value
        if code == _ANNOTATIONS:
            message.annotations = dict(value or {})
        elif code == _PROPERTIES:
            message.properties = {
                n: v for n, v in zip(PROPERTY_NAMES, value or [], strict=False) if v is not None
            }
        elif code == _APP_PROPERTIES:
            message.application_properties = dict(value or {})
        elif code == _DATA:
            message.data.append(value)
        elif code == _VALUE:
            message.value = value
        elif code == _SEQUENCE:
            message.value = [*(message.value or []), *value]
        elif code not in (_HEADER_SECTION, _DELIVERY_ANNOTATIONS, _FOOTER):
            raise DecodeError(f"unknown message section 0x{code:x}")
    return message


def serialize_message(
    *,
    properties: Mapping[str, Any] | None = None,
    application_properties: Mapping[str, Any] | None = None,
    value: Any = None,
) -> bytes:
    """A response message: properties, application properties and an ``amqp-value`` body."""
    out = b""
    if properties:
        out += encode(composite(_PROPERTIES, *(properties.get(n) for n in PROPERTY_NAMES)))
    if application_properties:
        out += encode(Described(ULong(_APP_PROPERTIES), dict(application_properties)))
    return out + encode(Described(ULong(_VALUE), value))
