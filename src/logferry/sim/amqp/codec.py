"""The AMQP 1.0 type system (OASIS AMQP 1.0, part 1): values to bytes and back.

Decoding yields plain Python values (``int``, ``str``, ``bytes``, ``list``, ``dict`` ...), with
:class:`Symbol`, :class:`Timestamp` and :class:`Described` where the wire type carries meaning.
Encoding needs the exact AMQP type for integers, so the fixed-width ones are spelled with the
marker classes below (``UInt(5)`` is a uint, a bare ``int`` is an int or a long by range).
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Array",
    "DecodeError",
    "Described",
    "Long",
    "Symbol",
    "Timestamp",
    "UByte",
    "UInt",
    "ULong",
    "UShort",
    "decode",
    "encode",
    "encode_value",
]


class DecodeError(ValueError):
    """The bytes are not a valid AMQP encoding (the peer gets ``amqp:decode-error``)."""


class Symbol(str):
    """An AMQP symbol (ASCII), as opposed to a UTF-8 string."""

    __slots__ = ()


class Timestamp(int):
    """Milliseconds since the Unix epoch."""

    __slots__ = ()


class UByte(int):
    __slots__ = ()


class UShort(int):
    __slots__ = ()


class UInt(int):
    __slots__ = ()


class ULong(int):
    __slots__ = ()


class Long(int):
    """A signed 64-bit integer even when the value would fit an int."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Described:
    """A described type: performatives, message sections, outcomes, errors."""

    descriptor: Any
    value: Any


@dataclass(frozen=True, slots=True)
class Array:
    """An AMQP array: every element has the one type ``element`` (``"sym"`` or ``"str"``)."""

    element: str
    items: Sequence[str]


# --- encoding ------------------------------------------------------------------------------------

_PACK_B = struct.Struct(">B").pack
_PACK_H = struct.Struct(">H").pack
_PACK_I = struct.Struct(">I").pack
_PACK_BI = struct.Struct(">BI").pack
_PACK_BB = struct.Struct(">BB").pack
_PACK_II = struct.Struct(">II").pack
_PACK_BQ = struct.Struct(">BQ").pack
_PACK_Bq = struct.Struct(">Bq").pack
_PACK_Bb = struct.Struct(">Bb").pack
_PACK_Bi = struct.Struct(">Bi").pack
_PACK_Bd = struct.Struct(">Bd").pack


def encode(value: Any) -> bytes:
    out = bytearray()
    encode_value(out, value)
    return bytes(out)


def encode_value(out: bytearray, v: Any) -> None:
    """Append the AMQP encoding of ``v`` to ``out``."""
    if v is None:
        out.append(0x40)
    elif v is True:
        out.append(0x41)
    elif v is False:
        out.append(0x42)
    elif isinstance(v, Described):
        out.append(0x00)
        encode_value(out, ULong(v.descriptor) if type(v.descriptor) is int else v.descriptor)
        encode_value(out, v.value)
    elif isinstance(v, Symbol):
        _variable(out, v.encode("ascii"), 0xA3, 0xB3)
    elif isinstance(v, str):
        _variable(out, v.encode("utf-8"), 0xA1, 0xB1)
    elif isinstance(v, bytes | bytearray | memoryview):
        _variable(out, bytes(v), 0xA0, 0xB0)
    elif isinstance(v, int):
        _integer(out, v)
    elif isinstance(v, float):
        out += _PACK_Bd(0x82, v)
    elif isinstance(v, uuid.UUID):
        out.append(0x98)
        out += v.bytes
    elif isinstance(v, Mapping):
        body = bytearray()
        for key, item in v.items():
            encode_value(body, key)
            encode_value(body, item)
        _compound(out, body, 2 * len(v), 0xC1, 0xD1)
    elif isinstance(v, Array):
        _array(out, v)
    elif isinstance(v, list | tuple):
        if not v:
            out.append(0x45)
            return
        body = bytearray()
        for item in v:
            encode_value(body, item)
        _compound(out, body, len(v), 0xC0, 0xD0)
    else:
        raise TypeError(f"no AMQP encoding for {type(v).__name__}")


def _integer(out: bytearray, v: int) -> None:
    if isinstance(v, Timestamp):
        out += _PACK_Bq(0x83, v)
    elif isinstance(v, ULong):
        out += b"\x44" if v == 0 else _PACK_BB(0x53, v) if v < 256 else _PACK_BQ(0x80, v)
    elif isinstance(v, UInt):
        out += b"\x43" if v == 0 else _PACK_BB(0x52, v) if v < 256 else _PACK_BI(0x70, v)
    elif isinstance(v, UShort):
        out.append(0x60)
        out += _PACK_H(v)
    elif isinstance(v, UByte):
        out += _PACK_BB(0x50, v)
    elif isinstance(v, Long):
        out += _PACK_Bb(0x55, v) if -128 <= v <= 127 else _PACK_Bq(0x81, v)
    elif -128 <= v <= 127:
        out += _PACK_Bb(0x54, v)
    elif -(1 << 31) <= v < (1 << 31):
        out += _PACK_Bi(0x71, v)
    else:
        out += _PACK_Bq(0x81, v)


def _variable(out: bytearray, data: bytes, small: int, large: int) -> None:
    if len(data) < 256:
        out += _PACK_BB(small, len(data))
    else:
        out += _PACK_BI(large, len(data))
    out += data


def _compound(out: bytearray, body: bytes | bytearray, count: int, small: int, large: int) -> None:
    # The size field counts the count field plus the elements.
    if len(body) + 1 < 256 and count < 256:
        out += _PACK_BB(small, len(body) + 1)
        out.append(count)
    else:
        out.append(large)
        out += _PACK_II(len(body) + 4, count)
    out += body


def _array(out: bytearray, v: Array) -> None:
    constructor = {"sym": 0xB3, "str": 0xB1}[v.element]
    codec = "ascii" if v.element == "sym" else "utf-8"
    body = bytearray([constructor])
    for item in v.items:
        data = item.encode(codec)
        body += _PACK_I(len(data))
        body += data
    out.append(0xF0)
    out += _PACK_II(len(body) + 4, len(v.items))
    out += body


# --- decoding ------------------------------------------------------------------------------------

Reader = Callable[[memoryview, int], tuple[Any, int]]

_U8 = struct.Struct(">B").unpack_from
_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_U64 = struct.Struct(">Q").unpack_from
_I8 = struct.Struct(">b").unpack_from
_I16 = struct.Struct(">h").unpack_from
_I32 = struct.Struct(">i").unpack_from
_I64 = struct.Struct(">q").unpack_from
_F32 = struct.Struct(">f").unpack_from
_F64 = struct.Struct(">d").unpack_from


def decode(buf: bytes | memoryview, pos: int = 0) -> tuple[Any, int]:
    """The value encoded at ``buf[pos:]`` and the position after it."""
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    try:
        return _read(view, pos)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise DecodeError(f"truncated or malformed AMQP value at byte {pos}: {exc}") from None


def _read(buf: memoryview, pos: int) -> tuple[Any, int]:
    code = buf[pos]
    reader = _READERS.get(code)
    if reader is None:
        raise DecodeError(f"unknown AMQP type constructor 0x{code:02x} at byte {pos}")
    return reader(buf, pos + 1)


def _fixed(value: Any) -> Reader:
    return lambda buf, pos: (value, pos)


def _unpacked(unpack: Callable[[memoryview, int], tuple[Any, ...]], width: int, wrap: Any = None) -> Reader:
    if wrap is None:
        return lambda buf, pos: (unpack(buf, pos)[0], pos + width)
    return lambda buf, pos: (wrap(unpack(buf, pos)[0]), pos + width)


def _sized(width: int, convert: Callable[[memoryview], Any]) -> Reader:
    length = _U8 if width == 1 else _U32

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        (n,) = length(buf, pos)
        start = pos + width
        if start + n > len(buf):
            raise DecodeError(f"value of {n} bytes runs past the end of the frame")
        return convert(buf[start : start + n]), start + n

    return read


def _list(width: int) -> Reader:
    length = _U8 if width == 1 else _U32

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        (size,) = length(buf, pos)
        (count,) = length(buf, pos + width)
        end = pos + width + size
        pos += 2 * width
        items = []
        for _ in range(count):
            item, pos = _read(buf, pos)
            items.append(item)
        if pos != end:
            raise DecodeError("compound size does not match its elements")
        return items, pos

    return read


def _map(width: int) -> Reader:
    read_list = _list(width)

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        items, pos = read_list(buf, pos)
        if len(items) % 2:
            raise DecodeError("a map needs an even number of elements")
        return {_hashable(items[i]): items[i + 1] for i in range(0, len(items), 2)}, pos

    return read


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _array_reader(width: int) -> Reader:
    length = _U8 if width == 1 else _U32

    def read(buf: memoryview, pos: int) -> tuple[Any, int]:
        (size,) = length(buf, pos)
        (count,) = length(buf, pos + width)
        end = pos + width + size
        pos += 2 * width
        descriptor = None
        code = buf[pos]
        if code == 0x00:
            descriptor, pos = _read(buf, pos + 1)
            code = buf[pos]
        element = _READERS.get(code)
        if element is None:
            raise DecodeError(f"unknown AMQP array element constructor 0x{code:02x}")
        pos += 1
        items = []
        for _ in range(count):
            item, pos = element(buf, pos)
            items.append(item if descriptor is None else Described(descriptor, item))
        if pos != end:
            raise DecodeError("array size does not match its elements")
        return items, pos

    return read


def _described(buf: memoryview, pos: int) -> tuple[Any, int]:
    descriptor, pos = _read(buf, pos)
    value, pos = _read(buf, pos)
    return Described(descriptor, value), pos


def _utf8(data: memoryview) -> str:
    return str(data, "utf-8")


def _symbol(data: memoryview) -> Symbol:
    return Symbol(str(data, "ascii"))


def _binary(data: memoryview) -> bytes:
    return data.tobytes()


def _uuid(buf: memoryview, pos: int) -> tuple[Any, int]:
    return uuid.UUID(bytes=buf[pos : pos + 16].tobytes()), pos + 16


def _opaque(width: int) -> Reader:
    # decimal32/64/128: kept as their raw bytes; nothing in Event Hubs interprets them.
    return lambda buf, pos: (buf[pos : pos + width].tobytes(), pos + width)


_READERS: dict[int, Reader] = {
    0x00: _described,
    0x40: _fixed(None),
    0x41: _fixed(True),
    0x42: _fixed(False),
    0x43: _fixed(0),
    0x44: _fixed(0),
    0x45: _fixed([]),
    0x50: _unpacked(_U8, 1),
    0x51: _unpacked(_I8, 1),
    0x52: _unpacked(_U8, 1),
    0x53: _unpacked(_U8, 1),
    0x54: _unpacked(_I8, 1),
    0x55: _unpacked(_I8, 1),
    0x56: _unpacked(_U8, 1, bool),
    0x60: _unpacked(_U16, 2),
    0x61: _unpacked(_I16, 2),
    0x70: _unpacked(_U32, 4),
    0x71: _unpacked(_I32, 4),
    0x72: _unpacked(_F32, 4),
    0x73: _unpacked(_U32, 4, chr),
    0x74: _opaque(4),
    0x80: _unpacked(_U64, 8),
    0x81: _unpacked(_I64, 8),
    0x82: _unpacked(_F64, 8),
    0x83: _unpacked(_I64, 8, Timestamp),
    0x84: _opaque(8),
    0x94: _opaque(16),
    0x98: _uuid,
    0xA0: _sized(1, _binary),
    0xA1: _sized(1, _utf8),
    0xA3: _sized(1, _symbol),
    0xB0: _sized(4, _binary),
    0xB1: _sized(4, _utf8),
    0xB3: _sized(4, _symbol),
    0xC0: _list(1),
    0xC1: _map(1),
    0xD0: _list(4),
    0xD1: _map(4),
    0xE0: _array_reader(1),
    0xF0: _array_reader(4),
}
