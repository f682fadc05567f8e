"""TCP framing (RFC 6587): octet counting and trailer-delimited frames, fed in arbitrary pieces."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logferry.formats.framing import HEAD_BYTES, Frame, FrameDecoder, FrameError, Framing

# What util-linux logger 2.38 sent over TCP on this machine (--octet-count, and plain --rfc3164).
LOGGER_OCTET = b"60 <13>1 2026-11-22T05:45:43.299660+00:00 vm root - - - msg one"
LOGGER_LF = b"<13>Nov 22 05:45:43 vm root: msg two\n"


def decode(*chunks: bytes, max_message_bytes: int = 1024, framing: Framing = "auto") -> list[Frame]:
    decoder = FrameDecoder(max_message_bytes=max_message_bytes, framing=framing)
    out: list[Frame] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    out.extend(decoder.finish())
    return out


def test_logger_octet_counted_frame_without_trailer() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(LOGGER_OCTET) == [b"<13>1 2026-11-22T05:45:43.299660+00:00 vm root - - - msg one"]
    assert decoder.framing == "octet_counting"
    assert decoder.finish() == []


def test_logger_lf_framed_message() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(LOGGER_LF) == [b"<13>Nov 22 05:45:43 vm root: msg two"]
    assert decoder.framing == "non_transparent"


def test_rsyslog_counts_its_trailing_lf_in_msg_len() -> None:
    assert decode(b"8 <13>abc\n8 <13>def\n") == [b"<13>abc", b"<13>def"]


def test_octet_counted_message_may_contain_lf() -> None:
    assert decode(b"10 <13>a\nb\nc\n") == [b"<13>a\nb\nc"]


@pytest.mark.parametrize(
    "stream",
    [
        b"<13>a\n<13>b\n",
        b"<13>a\r\n<13>b\r\n",
        b"<13>a\x00<13>b\x00",
        b"<13>a\n\n\r\n<13>b",
        b"\n<13>a\x00\n<13>b\n",
    ],
    ids=["lf", "crlf", "nul", "empty-lines-and-no-final-trailer", "leading-trailer"],
)
def test_non_transparent_trailers(stream: bytes) -> None:
    assert decode(stream) == [b"<13>a", b"<13>b"]


def test_crlf_split_between_chunks() -> None:
    assert decode(b"<13>a\r", b"\n<13>b\r", b"\n") == [b"<13>a", b"<13>b"]


@pytest.mark.parametrize(
    ("first", "framing"),
    [
        (b"1", "octet_counting"),
        (b"9", "octet_counting"),
        (b"<", "non_transparent"),
        (b"N", "non_transparent"),
    ],
    ids=["digit-1", "digit-9", "pri", "no-pri"],
)
def test_framing_is_detected_from_the_first_byte(first: bytes, framing: str) -> None:
    decoder = FrameDecoder()
    assert decoder.framing == "auto"
    decoder.feed(b"\r\n")
    assert decoder.framing == "auto"
    decoder.feed(first)
    assert decoder.framing == framing


def test_configured_framing_overrides_detection() -> None:
    assert decode(b"5 <1>a\n", framing="non_transparent") == [b"5 <1>a"]
    assert decode(b"<13>a\n", framing="octet_counting") == [
        FrameError("invalid octet count (expected MSG-LEN SP MSG)", b"<13>a\n")
    ]


def test_oversized_line_is_reported_and_the_next_messages_survive() -> None:
    big = b"<13>" + b"x" * 200
    out = decode(b"<13>a\n" + big + b"\n<13>b\n", max_message_bytes=100)
    assert out == [b"<13>a", FrameError("message exceeds 100 bytes", big[:HEAD_BYTES]), b"<13>b"]


def test_oversized_line_arriving_in_pieces_is_not_buffered() -> None:
    decoder = FrameDecoder(max_message_bytes=100)
    assert decoder.feed(b"<13>a\n<13>" + b"x" * 150) == [
        b"<13>a",
        FrameError("message exceeds 100 bytes", (b"<13>" + b"x" * 150)[:HEAD_BYTES]),
    ]
    assert decoder.feed(b"y" * 10_000) == []
    assert decoder.feed(b"z\r\n<13>b\n<13>c") == [b"<13>b"]
    assert decoder.finish() == [b"<13>c"]


def test_oversized_octet_frame_is_skipped_exactly() -> None:
    body = b"<13>" + b"x" * 296
    decoder = FrameDecoder(max_message_bytes=100)
    stream = b"5 <13>a300 " + body + b"5 <13>b"
    out: list[Frame] = []
    for i in range(0, len(stream), 7):
        out.extend(decoder.feed(stream[i : i + 7]))
    assert out[0] == b"<13>a"
    assert isinstance(out[1], FrameError) and out[1].reason == "message of 300 bytes exceeds 100"
    assert body.startswith(out[1].head) and out[1].head
    assert out[2:] == [b"<13>b"]


def test_invalid_octet_count_resumes_after_the_next_lf() -> None:
    out = decode(b"5 <13>a05 <13>x\n5 <13>b", b"12345678901 x\n5 <13>c")
    assert out == [
        b"<13>a",
        FrameError("invalid octet count (expected MSG-LEN SP MSG)", b"05 <13>x\n5 <13>b"),
        b"<13>b",
        FrameError("invalid octet count (expected MSG-LEN SP MSG)", b"12345678901 x\n5 <13>c"),
        b"<13>c",
    ]


def test_octet_count_without_space_waits_for_more_bytes() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"12") == []
    assert decoder.feed(b"3") == []
    assert decoder.feed(b" " + b"a" * 123) == [b"a" * 123]


def test_connection_closed_inside_an_octet_frame() -> None:
    assert decode(b"50 <13>cut short") == [
        FrameError("connection closed inside an octet-counted frame", b"50 <13>cut short")
    ]


def test_finish_after_skipping_reports_nothing_more() -> None:
    decoder = FrameDecoder(max_message_bytes=10)
    decoder.feed(b"<13>" + b"x" * 50)
    assert decoder.finish() == []
    assert decode(b"\r\n\x00") == []


def test_max_message_bytes_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FrameDecoder(max_message_bytes=0)


_MESSAGE = st.binary(min_size=1, max_size=60).map(lambda b: b"<13>" + b)
_LINE = _MESSAGE.map(lambda m: m.replace(b"\n", b" ").replace(b"\r", b" ").replace(b"\x00", b" "))


def _chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


@given(messages=st.lists(_MESSAGE, max_size=20), cuts=st.lists(st.integers(0, 10_000), max_size=10))
def test_octet_counting_round_trips_in_any_chunking(messages: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(b"%d %s" % (len(m), m) for m in messages)
    # A message ending in LF loses it (rsyslog's counted trailer), as the decoder documents.
    expected = [m[:-1] if m.endswith(b"\n") else m for m in messages]
    assert decode(*_chunked(stream, cuts)) == expected


@given(
    messages=st.lists(_LINE, max_size=20),
    trailer=st.sampled_from([b"\n", b"\r\n", b"\x00"]),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_non_transparent_round_trips_in_any_chunking(
    messages: list[bytes], trailer: bytes, cuts: list[int]
) -> None:
    stream = b"".join(m + trailer for m in messages)
    assert decode(*_chunked(stream, cuts)) == messages


@given(
    messages=st.lists(st.tuples(_LINE, st.booleans()), max_size=15),
    cuts=st.lists(st.integers(0, 10_000), max_size=10),
)
def test_oversized_lines_never_hide_the_messages_around_them(
    messages: list[tuple[bytes, bool]], cuts: list[int]
) -> None:
    stream = b"".join((m + b"y" * 70 if big else m) + b"\n" for m, big in messages)
    out = decode(*_chunked(stream, cuts), max_message_bytes=64)
    expected = [m for m, big in messages if not big]
    assert [f for f in out if isinstance(f, bytes)] == expected
    assert sum(isinstance(f, FrameError) for f in out) == len(messages) - len(expected)


def test_oversized_message_with_nul_trailers_resynchronises_at_the_next_nul() -> None:
    decoder = FrameDecoder(max_message_bytes=100)
    assert decoder.feed(b"<13>" + b"x" * 150) == [
        FrameError("message exceeds 100 bytes", (b"<13>" + b"x" * 150)[:HEAD_BYTES])
    ]
    assert decoder.feed(b"x\x00<13>b\x00") == [b"<13>b"]
