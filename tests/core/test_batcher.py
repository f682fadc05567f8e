"""The shared batcher: every request fits the sink's limit, lines keep their order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from logferry.core.batcher import pack, request_size
from logferry.core.sink import BatchLimits


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=300), max_size=200),
    max_bytes=st.integers(min_value=10, max_value=2000),
    max_events=st.integers(min_value=1, max_value=50),
)
def test_pack_covers_all_lines_in_order_and_never_exceeds_limits(
    sizes: list[int], max_bytes: int, max_events: int
) -> None:
    limits = BatchLimits(max_bytes=max_bytes, max_events=max_events)
    lines = [b"x" * n for n in sizes]
    slices = list(pack(limits, lines))
    covered = [i for a, b in slices for i in range(a, b)]
    assert covered == list(range(len(lines)))
    for a, b in slices:
        assert b - a <= max_events
        chunk = lines[a:b]
        assert len(limits.frame(chunk)) == request_size(limits, chunk)
        # Only a lone line may exceed the limit (the delivery loop dead-letters it).
        assert request_size(limits, chunk) <= max_bytes or b - a == 1


def test_pack_fills_requests_up_to_the_byte_limit() -> None:
    limits = BatchLimits(max_bytes=2 + 10 * 3 + 2, max_events=1000)  # [a,b,c] with 10-byte lines
    assert list(pack(limits, [b"0123456789"] * 7)) == [(0, 3), (3, 6), (6, 7)]


def test_request_size_of_ndjson_framing() -> None:
    limits = BatchLimits(max_bytes=100, max_events=10, prefix=b"", separator=b"\n", suffix=b"\n")
    assert request_size(limits, [b"ab", b"c"]) == len(b"ab\nc\n")
