"""The Lumberjack v2 (Beats) wire format: frames out of events, and frames back out of bytes.

Shared by the sink and by ``logferry sim beats``, so both sides speak from one definition.
Every frame starts with the version byte ``'2'`` and a type byte; integers are unsigned 32-bit
big-endian:

- ``W`` window size (writer → reader): how many data frames follow before the writer waits;
- ``J`` JSON data frame: sequence number, payload length, one JSON object;
- ``C`` compressed frame: payload length, then a zlib stream holding whole frames;
- ``A`` ACK (reader → writer): the highest sequence number processed; sequence numbers start
  at 1 in every window. Logstash sends ``A`` with 0 as a keepalive while it is still busy.

Sources: logstash-input-beats PROTOCOL.md and the go-lumber client/server (Filebeat's).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

__all__ = [
    "ACK_SIZE",
    "MAX_FRAME_BYTES",
    "Ack",
    "Data",
    "FrameParser",
    "ProtocolError",
    "Window",
    "encode_ack",
    "encode_window",
    "parse_ack",
]

VERSION = ord("2")
ACK_SIZE = 6
#: Largest payload one frame (or one inflated compressed frame) may announce; a reader refuses
#: more rather than allocate whatever a broken or hostile peer claims.
MAX_FRAME_BYTES = 256 * 1024 * 1024

_WINDOW = struct.Struct(">BBI")
_DATA_HEADER = struct.Struct(">BBII")
_LENGTH = struct.Struct(">I")
_W, _J, _C, _A = (ord(c) for c in "WJCA")


class ProtocolError(ValueError):
    """The bytes are not Lumberjack v2; the connection cannot be trusted any further."""


@dataclass(frozen=True, slots=True)
class Window:
    size: int


@dataclass(frozen=True, slots=True)
class Data:
    seq: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int


Frame = Window | Data | Ack


def encode_window(docs: Sequence[bytes], compress: Callable[[bytes], bytes] | None = None) -> bytes:
    """A window frame and one JSON frame per document (seq 1..n), optionally in one ``C`` frame."""
    pack = _DATA_HEADER.pack
    parts: list[bytes] = []
    for seq, doc in enumerate(docs, 1):
        parts.append(pack(VERSION, _J, seq, len(doc)))
        parts.append(doc)
    body = b"".join(parts)
    window = _WINDOW.pack(VERSION, _W, len(docs))
    if compress is None:
        return window + body
    packed = compress(body)
    return window + _WINDOW.pack(VERSION, _C, len(packed)) + packed


def encode_ack(seq: int) -> bytes:
    return _WINDOW.pack(VERSION, _A, seq)


def parse_ack(frame: bytes) -> int:
    """The sequence number of a 6-byte ACK frame."""
    version, kind, seq = _WINDOW.unpack(frame)
    if version != VERSION or kind != _A:
        raise ProtocolError(f"expected an ACK frame, got bytes {frame[:2]!r}")
    return int(seq)


class FrameParser:
    """Incremental reader of a frame stream: ``feed`` bytes as they arrive, iterate complete frames.

    Compressed frames are inflated and their inner frames yielded in order, so a reader never sees
    ``C``. Anything that is not v2 framing raises :class:`ProtocolError`.
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._max = max_frame_bytes

    def feed(self, data: bytes) -> None:
        if self._pos and self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        return len(self._buf) - self._pos

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame, used = _parse_one(self._buf, self._pos, self._max)
            if frame is None:
                break
            self._pos += used
            if isinstance(frame, bytes):
                yield from _inflate(frame, self._max)
            else:
                yield frame
        if self._pos > 1 << 20:
            # Drop consumed bytes now and then, not on every frame: a slice copy per frame is quadratic.
            del self._buf[: self._pos]
            self._pos = 0


def _parse_one(buf: bytearray | bytes, pos: int, limit: int) -> tuple[Frame | bytes | None, int]:
    """The frame at ``pos`` (a compressed frame as its raw zlib bytes) and its length, or (None, 0)."""
    have = len(buf) - pos
    if have < 2:
        return None, 0
    if buf[pos] != VERSION:
        raise ProtocolError(f"unsupported protocol version byte {bytes(buf[pos : pos + 1])!r}, expected b'2'")
    kind = buf[pos + 1]
    if kind in (_W, _A):
        if have < 6:
            return None, 0
        (n,) = _LENGTH.unpack_from(buf, pos + 2)
        return (Window(n) if kind == _W else Ack(n)), 6
    if kind == _J:
        if have < 10:
            return None, 0
        _, _, seq, size = _DATA_HEADER.unpack_from(buf, pos)
        _check_size(size, limit)
        if have < 10 + size:
            return None, 0
        return Data(seq, bytes(buf[pos + 10 : pos + 10 + size])), 10 + size
    if kind == _C:
        if have < 6:
            return None, 0
        (size,) = _LENGTH.unpack_from(buf, pos + 2)
        _check_size(size, limit)
        if have < 6 + size:
            return None, 0
        return bytes(buf[pos + 6 : pos + 6 + size]), 6 + size
    raise ProtocolError(f"unknown frame type {bytes(buf[pos + 1 : pos + 2])!r}")


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise ProtocolError(f"frame announces {size} bytes, more than the limit of {limit}")


def _inflate(packed: bytes, limit: int) -> Iterator[Frame]:
    inflater = zlib.decompressobj()
    try:
        inner = inflater.decompress(packed, limit)
    except zlib.error as exc:
        raise ProtocolError(f"compressed frame is not a zlib stream: {exc}") from None
    if inflater.unconsumed_tail:
        raise ProtocolError(f"compressed frame inflates to more than {limit} bytes")
    if not inflater.eof:
        raise ProtocolError("compressed frame ends before its zlib stream does")
    pos = 0
    while pos < len(inner):
        frame, used = _parse_one(inner, pos, limit)
        if frame is None:
            raise ProtocolError("compressed frame holds a partial frame")
        if isinstance(frame, bytes):
            raise ProtocolError("compressed frame nested in a compressed frame")
        pos += used
        yield frame
