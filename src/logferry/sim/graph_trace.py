"""Deterministic Exchange Online message trace rows, rendered for Graph or the Reporting Web Service.

A message has one row per recipient. The rows of one message share its trace id — Graph's
``id``, RWS's ``MessageTraceId`` — and differ by recipient, so ``id`` alone is not a row key
(Graph's detail call needs ``messageTraces/{id}/getDetailsByRecipient(recipientAddress=…)`` for the
same reason). A row becomes visible only some time after ``Received``, as in Exchange, where trace
data lags mail flow; ``delay_secs`` is the longest such delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .graph_odata import TICKS_PER_SEC, TimeRange, format_ticks

__all__ = ["TraceRow", "TraceStore", "render_graph_trace", "render_rws_trace"]

_SENDERS = ("billing@fabrikam.com", "no-reply@contoso-payroll.com", "anna.berg@contoso.com",
            "newsletter@tailspintoys.com", "ben.okafor@contoso.com", "ceo@c0ntoso-support.com")  # fmt: skip
_RECIPIENTS = ("anna.berg@contoso.com", "ben.okafor@contoso.com", "chloe.martin@contoso.com",
               "farid.haddad@contoso.com", "greta.lind@contoso.com", "it-helpdesk@contoso.com")  # fmt: skip
_SUBJECTS = ("Invoice 2026-0423", "Your payslip is ready", "Quarterly review — agenda",
             "Weekly digest: what's new", "Re: Projekt Übersicht", "Urgent: verify your mailbox")  # fmt: skip
# (status as Graph's example prints it, weight); exchangeMessageTrace.status documents these values.
_STATUSES = (("Delivered", 80), ("FilteredAsSpam", 8), ("Quarantined", 4), ("Failed", 3),
             ("Expanded", 2), ("Pending", 2), ("GettingStatus", 1))  # fmt: skip
_ORG = "contoso.onmicrosoft.com"


@dataclass(frozen=True)
class TraceRow:
    received: int  # ticks
    seq: int  # row number: a total order for rows received in the same tick
    message: int
    recipient: int  # index of the recipient within the message
    salt: int
    visible_at: int  # ticks


@dataclass
class TraceStore:
    seed: int
    backlog: int  # messages
    backlog_secs: float
    live_rate: float  # messages per second
    delay_secs: float
    start: int
    rows: list[TraceRow] = field(default_factory=list)
    _received: list[int] = field(default_factory=list)
    _messages: int = 0
    _live_made: int = 0

    def __post_init__(self) -> None:
        rng = random.Random(f"{self.seed}:trace")
        span = int(self.backlog_secs * TICKS_PER_SEC)
        for offset in sorted(rng.randrange(max(1, span)) for _ in range(self.backlog)):
            self._add_message(self.start - span + offset, rng.getrandbits(64))

    def __len__(self) -> int:
        return len(self.rows)

    def advance(self, now: int) -> None:
        if self.live_rate <= 0:
            return
        while True:
            due = self.start + int((self._live_made + 1) * TICKS_PER_SEC / self.live_rate)
            if due > now:
                return
            self._live_made += 1
            self._add_message(due, random.Random(f"{self.seed}:trace-live:{self._live_made}").getrandbits(64))

    def query(self, bounds: TimeRange, now: int, keep: Callable[[TraceRow], bool]) -> list[TraceRow]:
        """Visible rows received within ``bounds``, oldest first."""
        lo, hi = bounds.first_index(self._received), bounds.end_index(self._received)
        return [r for r in self.rows[lo:hi] if r.visible_at <= now and keep(r)]

    def _add_message(self, received: int, salt: int) -> None:
        rng = random.Random(salt)
        recipients = rng.choices((1, 2, 3), weights=(80, 15, 5))[0]
        delay = int(rng.random() * self.delay_secs * TICKS_PER_SEC)
        # Exchange stamps Received with seven digits; make sure the last one is not always zero.
        received = received - received % 10 + rng.randrange(1, 10)
        if self._received and received < self._received[-1]:
            received = self._received[-1]
        for i in range(recipients):
            row = TraceRow(received, len(self.rows), self._messages, i, salt, received + delay)
            self.rows.append(row)
            self._received.append(received)
        self._messages += 1


def _fields(row: TraceRow) -> dict[str, Any]:
    # Per message, not per row: every recipient row of a message shares these.
    rng = random.Random(f"{row.salt}:fields")
    h = f"{rng.getrandbits(128):032x}"
    trace_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}"
    sender = rng.choice(_SENDERS)
    first = rng.randrange(len(_RECIPIENTS))
    status = rng.choices([s for s, _ in _STATUSES], weights=[w for _, w in _STATUSES])[0]
    return {
        "trace_id": trace_id,
        "message_id": f"<{h[:20].upper()}@{sender.split('@')[1]}>",
        "sender": sender,
        "recipient": _RECIPIENTS[(first + row.recipient) % len(_RECIPIENTS)],
        "subject": rng.choice(_SUBJECTS),
        "status": status,
        "size": rng.randrange(2_000, 4_000_000),
        "from_ip": f"203.0.113.{rng.randrange(1, 255)}",
        "to_ip": None if status != "Delivered" else f"10.20.{rng.randrange(256)}.{rng.randrange(1, 255)}",
    }


def render_graph_trace(row: TraceRow) -> dict[str, Any]:
    """One ``exchangeMessageTrace`` (Graph ``/admin/exchange/tracing/messageTraces``)."""
    f = _fields(row)
    return {
        "@odata.type": "#microsoft.graph.exchangeMessageTrace",
        "id": f["trace_id"],
        "messageId": f["message_id"],
        "receivedDateTime": format_ticks(row.received),
        "recipientAddress": f["recipient"],
        "senderAddress": f["sender"],
        "size": f["size"],
        "status": f["status"],
        "subject": f["subject"],
        "fromIP": f["from_ip"],
        "toIP": f["to_ip"],
    }


def render_rws_trace(row: TraceRow, index: int, start: int, end: int) -> dict[str, Any]:
    """One MessageTrace report row as the Reporting Web Service prints it (``Received`` has no zone)."""
    f = _fields(row)
    return {
        "Organization": _ORG,
        "MessageId": f["message_id"],
        "Received": format_ticks(row.received, zone=False),
        "SenderAddress": f["sender"],
        "RecipientAddress": f["recipient"],
        "Subject": f["subject"],
        "Status": f["status"],
        "ToIP": f["to_ip"],
        "FromIP": f["from_ip"],
        "Size": f["size"],
        "MessageTraceId": f["trace_id"],
        "StartDate": format_ticks(start - start % TICKS_PER_SEC)[:19] + "Z",
        "EndDate": format_ticks(end - end % TICKS_PER_SEC)[:19] + "Z",
        "Index": index,
    }
