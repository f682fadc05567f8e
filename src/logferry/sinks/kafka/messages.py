"""Records to outbox lines (with their partition key), and lines back to Kafka / Event Hubs messages.

**Line framing.** The partition key is worked out at commit time (``encode``), where the record
and its source are known, and must travel with the record through the outbox, whose lines are
newline-free bytes. Each line is ``<n>:<key><json>``: ``n`` is the decimal length of the key
written as a JSON string (orjson never emits a raw newline), ``0:`` means no key. Sending then
only slices the line; the record's JSON is never parsed again. Every line carries the prefix,
whatever the key mode, so lines committed before a change of ``partition_key`` still send.

**Keys.** ``source``: the name of the logferry source the record came from. ``tenant``: the first
present of :data:`TENANT_FIELDS`. ``field``: a top-level field or a dotted path into nested
objects. Strings, integers and booleans become the key text (``true``/``false``); a record without
the field, or with ``null``, an object or an array there, is sent without a key (the broker's
partitioner spreads those).

**Messages.** ``event``: one message per record. ``array``: a request's records grouped by key
(in order), each group packed into JSON arrays of at most ``max_bytes``. A record that can never
fit a message is refused before anything is sent: the request is split until that record is
alone, and then dead-lettered with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from logferry.core.routing import field_getter, value_text
from logferry.core.sink import Resolution
from logferry.core.types import Record

__all__ = [
    "TENANT_FIELDS",
    "KeyMode",
    "LineEncoder",
    "Message",
    "MessageFormat",
    "MessageShape",
    "split_line",
]

KeyMode = Literal["none", "source", "tenant", "field"]
MessageFormat = Literal["event", "array"]

#: Where the tenant is found, in order: Sentinel/Log Analytics rows, Office 365 audit records,
#: Entra ID and Azure diagnostic records, snake_case APIs.
TENANT_FIELDS = ("TenantId", "OrganizationId", "tenantId", "organizationId", "tenant_id", "AADTenantId")

_NO_KEY = b"0:"


def _keyed(key: str | None) -> bytes:
    if key is None:
        return _NO_KEY
    encoded = orjson.dumps(key)
    return b"%d:%b" % (len(encoded), encoded)


def _tenant(record: Record) -> str | None:
    for name in TENANT_FIELDS:
        text = value_text(record.get(name))
        if text is not None:
            return text
    return None


class LineEncoder:
    """``encode(source, records)``: one framed line per record (see the module docstring)."""

    def __init__(self, mode: KeyMode, field: str | None = None) -> None:
        self._key: Callable[[Record], str | None] | None = None
        if mode == "tenant":
            self._key = _tenant
        elif mode == "field":
            if not field:
                raise ValueError("partition_key 'field' needs the field's name")
            get = field_getter(field)
            self._key = lambda record: value_text(get(record))
        self._by_source = mode == "source"

    def encode(self, source: str, records: Sequence[Record]) -> list[bytes]:
        dumps = orjson.dumps
        if self._key is None:
            prefix = _keyed(source) if self._by_source else _NO_KEY
            return [prefix + dumps(r) for r in records]
        key = self._key
        return [_keyed(key(r)) + dumps(r) for r in records]


def split_line(line: bytes) -> tuple[bytes | None, bytes]:
    """``(key, value)`` of a framed line; ``ValueError`` if it is not one."""
    colon = line.find(b":", 0, 12)
    if colon <= 0:
        raise ValueError("no key length prefix")
    n = int(line[:colon])
    start = colon + 1
    if n == 0:
        return None, line[start:]
    key: Any = orjson.loads(line[start : start + n])
    if not isinstance(key, str):
        raise ValueError("the key is not a JSON string")
    return key.encode(), line[start + n :]


@dataclass(frozen=True, slots=True)
class Message:
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class MessageShape:
    """How a request's lines become messages, each at most ``max_bytes`` (key plus value)."""

    format: MessageFormat
    max_bytes: int
    #: What the limit is called in the config, for the dead-letter reason.
    limit_name: str = "max_message_bytes"

    def build(self, lines: Sequence[bytes]) -> list[Message] | Resolution:
        """The messages for ``lines``, or split/reject when a line can never be sent."""
        overhead = 2 if self.format == "array" else 0  # the brackets around a one-record array
        parsed: list[tuple[bytes | None, bytes]] = []
        for line in lines:
            try:
                key, value = split_line(line)
            except (ValueError, orjson.JSONDecodeError) as exc:
                return _refuse(len(lines), f"outbox line is not in the Kafka sink's framing ({exc})")
            size = len(key or b"") + len(value) + overhead
            if size > self.max_bytes:
                return _refuse(
                    len(lines),
                    f"record of {size} bytes does not fit one message ({self.limit_name} is "
                    f"{self.max_bytes}; Event Hubs takes at most 1 MB)",
                )
            parsed.append((key, value))
        if self.format == "event":
            return [Message(k, v) for k, v in parsed]
        return self._arrays(parsed)

    def _arrays(self, parsed: list[tuple[bytes | None, bytes]]) -> list[Message]:
        groups: dict[bytes | None, list[bytes]] = {}
        for key, value in parsed:
            groups.setdefault(key, []).append(value)
        out: list[Message] = []
        for key, values in groups.items():
            budget = self.max_bytes - len(key or b"")
            batch: list[bytes] = []
            size = 2
            for value in values:
                if batch and size + 1 + len(value) > budget:
                    out.append(Message(key, b"[" + b",".join(batch) + b"]"))
                    batch, size = [], 2
                size += len(value) + (1 if batch else 0)
                batch.append(value)
            out.append(Message(key, b"[" + b",".join(batch) + b"]"))
        return out


def _refuse(lines: int, reason: str) -> Resolution:
    # Nothing was sent: halving the request isolates the bad line, which alone is dead-lettered.
    return Resolution.split(reason) if lines > 1 else Resolution.reject(reason)
