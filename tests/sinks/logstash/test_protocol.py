"""The Lumberjack v2 frames the sink writes and the simulator reads (one shared definition)."""

from __future__ import annotations

import struct
import zlib

import pytest

from logferry.sinks.logstash.protocol import (
    Ack,
    Data,
    FrameParser,
    ProtocolError,
    Window,
    encode_ack,
    encode_window,
    parse_ack,
)

DOCS = [b'{"a":1}', b'{"b":"two"}', b"{}"]


def parse(data: bytes, step: int | None = None) -> list[object]:
    parser = FrameParser()
    frames: list[object] = []
    for i in range(0, len(data), step or len(data) or 1):
        parser.feed(data[i : i + (step or len(data))])
        frames.extend(parser)
    assert parser.pending == 0
    return frames


def test_a_window_is_a_window_frame_then_json_frames_numbered_from_one() -> None:
    wire = encode_window(DOCS)
    assert wire[:6] == b"2W" + struct.pack(">I", 3)
    assert wire[6:16] == b"2J" + struct.pack(">II", 1, len(DOCS[0]))
    assert parse(wire) == [Window(3), Data(1, DOCS[0]), Data(2, DOCS[1]), Data(3, DOCS[2])]


def test_a_compressed_window_holds_the_same_frames_in_one_zlib_stream() -> None:
    wire = encode_window(DOCS, lambda b: zlib.compress(b, 3))
    assert wire[6:8] == b"2C"
    (size,) = struct.unpack(">I", wire[8:12])
    assert len(wire) == 12 + size
    assert parse(wire) == parse(encode_window(DOCS))


@pytest.mark.parametrize("step", [1, 3, 7])
def test_frames_split_across_reads_parse_the_same(step: int) -> None:
    wire = encode_window(DOCS) + encode_window(DOCS, zlib.compress)
    assert parse(wire, step) == parse(wire)


def test_acks_round_trip() -> None:
    assert parse_ack(encode_ack(2048)) == 2048
    assert parse(encode_ack(0)) == [Ack(0)]
    with pytest.raises(ProtocolError):
        parse_ack(b"2W\x00\x00\x00\x01")


@pytest.mark.parametrize(
    ("wire", "problem"),
    [
        (b"1W\x00\x00\x00\x01", "version"),
        (b"2X\x00\x00\x00\x01", "unknown frame type"),
        (b"2J\x00\x00\x00\x01\xff\xff\xff\xff", "limit"),
        (b"2C\x00\x00\x00\x03abc", "not a zlib stream"),
        (b"2C" + struct.pack(">I", 12) + zlib.compress(b"2W\x00\x00"), "partial frame"),
    ],
)
def test_bytes_that_are_not_v2_framing_are_refused(wire: bytes, problem: str) -> None:
    parser = FrameParser()
    parser.feed(wire)
    with pytest.raises(ProtocolError, match=problem):
        list(parser)


def test_a_compressed_frame_may_not_inflate_past_the_limit() -> None:
    packed = zlib.compress(encode_window([b"{" + b" " * 5000 + b"}"])[6:])
    parser = FrameParser(max_frame_bytes=1000)
    parser.feed(b"2C" + struct.pack(">I", len(packed)) + packed)
    with pytest.raises(ProtocolError, match="more than 1000"):
        list(parser)
