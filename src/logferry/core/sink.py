"""What a destination implements, and how it answers a delivery attempt.

A sink turns records into encoded *lines* (one per record, no raw newline inside) when a
batch is committed to its outbox, and later sends lists of those lines packed by the
shared batcher under the limits it declares. It never counts bytes itself.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from logferry.core.types import Record

__all__ = ["Action", "BatchLimits", "CheckResult", "Resolution", "Sink", "SourceAwareSink", "encoder_for"]


@dataclass(frozen=True)
class BatchLimits:
    """How many encoded lines fit one request, and how the request frames them.

    ``max_bytes`` bounds ``len(prefix) + sum(len(line)) + len(separator) * (n - 1) + len(suffix)``.
    """

    max_bytes: int
    max_events: int
    prefix: bytes = b"["
    separator: bytes = b","
    suffix: bytes = b"]"

    def frame(self, lines: Sequence[bytes]) -> bytes:
        return self.prefix + self.separator.join(lines) + self.suffix


class Action(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    SPLIT = "split"
    REJECT = "reject"


@dataclass(frozen=True)
class Resolution:
    """The outcome of one request, as data; ``core.delivery`` acts on it.

    ``retry`` waits (``after`` = the destination's Retry-After) and sends the same lines again;
    ``split`` halves the request (413, or a 400 that may come from one bad record);
    ``reject`` sends the request's lines to the dead-letter store with ``reason`` (a single line,
    or, with ``index``, only line ``index``: the destination took the lines before it and did not
    look at those after it, which are sent again).
    """

    action: Action
    reason: str = ""
    after: float | None = None
    status: int | None = None
    index: int | None = None

    @classmethod
    def delivered(cls, status: int | None = None) -> Resolution:
        return cls(Action.DELIVERED, status=status)

    @classmethod
    def retry(cls, reason: str, after: float | None = None, status: int | None = None) -> Resolution:
        return cls(Action.RETRY, reason, after, status)

    @classmethod
    def split(cls, reason: str, status: int | None = None) -> Resolution:
        return cls(Action.SPLIT, reason, status=status)

    @classmethod
    def reject(cls, reason: str, status: int | None = None) -> Resolution:
        return cls(Action.REJECT, reason, status=status)

    @classmethod
    def reject_one(cls, index: int, reason: str, status: int | None = None) -> Resolution:
        """Lines before ``index`` were delivered, line ``index`` is refused, the rest must be resent.

        For destinations that stop at the first bad record of a request and keep those before it
        (Splunk HEC's ``invalid-event-number``): halving would deliver the good ones again.
        """
        return cls(Action.REJECT, reason, status=status, index=index)


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


@runtime_checkable
class Sink(Protocol):
    name: str
    limits: BatchLimits

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        """Map and encode records; runs inside the commit, so keep it pure and fast."""
        ...

    async def start(self) -> None: ...

    async def send(self, lines: list[bytes]) -> Resolution:
        """Send one request built from ``lines``; never raises for destination errors."""
        ...

    async def healthcheck(self) -> CheckResult: ...

    async def close(self) -> None: ...


@runtime_checkable
class SourceAwareSink(Protocol):
    """A sink whose output depends on which source a record came from (a Kafka partition key by source)."""

    def encode_from(self, source: str, records: Sequence[Record]) -> list[bytes]: ...


def encoder_for(sink: Sink, source: str) -> Callable[[Sequence[Record]], list[bytes]]:
    """The encoder the pipeline calls at commit time for records of ``source`` bound for ``sink``."""
    if isinstance(sink, SourceAwareSink):
        return functools.partial(sink.encode_from, source)
    return sink.encode
