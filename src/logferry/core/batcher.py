"""Packs encoded lines into requests under a sink's declared limits.

This is the only place that counts request bytes, so every sink gets the same guarantee:
no request exceeds ``BatchLimits.max_bytes``, and a line that can never fit is reported
instead of being sent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from logferry.core.sink import BatchLimits

__all__ = ["pack", "request_size"]


def request_size(limits: BatchLimits, lines: Sequence[bytes]) -> int:
    if not lines:
        return len(limits.prefix) + len(limits.suffix)
    return (
        len(limits.prefix)
        + len(limits.suffix)
        + sum(map(len, lines))
        + len(limits.separator) * (len(lines) - 1)
    )


def pack(limits: BatchLimits, lines: Sequence[bytes], start: int = 0) -> Iterator[tuple[int, int]]:
    """Yield ``(i, j)`` slices of ``lines`` that each fit one request.

    A slice of one line that is too large on its own is still yielded (``j == i + 1``); the
    caller checks ``request_size`` and dead-letters it rather than sending it.
    """
    framing = len(limits.prefix) + len(limits.suffix)
    sep = len(limits.separator)
    budget = limits.max_bytes
    i = start
    n = len(lines)
    while i < n:
        size = framing + len(lines[i])
        j = i + 1
        while j < n and j - i < limits.max_events:
            nxt = size + sep + len(lines[j])
            if nxt > budget:
                break
            size = nxt
            j += 1
        yield i, j
        i = j
