"""Synthetic meshStack event-log records of about 1 KB each, cheap enough not to skew a benchmark.

What a record says comes from logferry's own meshStack simulator: ``RecordFactory`` renders a pool
of ``POOL`` events with ``logferry.sim.meshstack_events.EventLog`` (titles, event types, workspaces,
authors and ``content`` exactly as ``logferry sim meshstack`` serves them) and keeps their ``spec``
objects. Two things are the benchmark's own:

* **Size.** The simulator's records are ~500 bytes; real audit events carry free text (change notes,
  justifications). Each pooled spec gets ``content.Justification`` of log-like text so the whole
  record is ``target_bytes`` of JSON (1,024 by default). The text is drawn per spec, and the pool is
  large enough (~1 MB of distinct text) that a 1 MB request body never sees the same spec twice
  inside gzip's 32 KB window: compression ratios stay those of text, not of repeats.
* **Volume.** A record is one small dict with a fresh ``metadata`` around a pooled ``spec``, built in
  about a microsecond, so a run can emit any number of unique records. Nothing on the pipeline
  mutates records, so sharing ``spec`` dicts between records is safe.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import orjson

from logferry.sim.meshstack_events import EventLog, Filters, format_created_at

__all__ = ["POOL", "RecordFactory"]

Record = dict[str, Any]

POOL = 1024
_SCATTER = 0x9E3779B97F4B
_MASK48 = (1 << 48) - 1
_ORIGIN = "https://federation.example.meshcloud.io"
_STEP_US = 1000  # record i is created 1 ms after record i - 1

# Padding vocabulary: log-like English with identifiers, so gzip sees text of the entropy real audit
# logs have rather than repeated filler.
_TEXT = (
    "access request approved for the quarterly audit of production workloads after review by "
    "security and platform owners ticket change window maintenance rollback plan attached "
    "terraform plan shows drift in network policy firewall rule storage account key rotation "
    "scheduled per compliance baseline iso27001 control owner confirmed least privilege scope "
    "limited to read only temporary elevation expires automatically cost center budget alert "
    "triggered by ml training cluster scale out requested by data science team pipeline failed "
    "with exit code retrying deployment of release candidate to staging cluster in region "
    "westeurope eu-central-1 europe-west3 vault secret renewed by automation service principal "
    "on behalf of workspace manager incident follow up postmortem action item tracked in backlog"
)
_WORDS = tuple(_TEXT.split())


def _padding(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    n = 0
    while n < chars:
        w = rng.choice(_WORDS)
        if rng.random() < 0.08:
            w = f"{w}-{rng.randrange(10_000):04d}"  # ticket numbers, build ids
        words.append(w)
        n += len(w) + 1
    text = " ".join(words)[:chars]
    return text[:1].upper() + text[1:] + "."


class RecordFactory:
    """Pages of unique records: ``page(start, n)`` gives records ``start .. start + n - 1`` and their ids.

    Record ``i`` has ``createdAt`` 1 ms after record ``i - 1`` and uuid ``<run prefix><12 hex digits
    unique to i>``, so records are unique per run and dedupe keeps every one of them.
    """

    def __init__(self, seed: int = 7, target_bytes: int = 1024) -> None:
        now_us = time.time_ns() // 1000
        events = EventLog(seed, backlog_events=POOL, backlog_secs=3600.0, live_rate=0.0, now_us=now_us)
        self.specs: list[Record] = [
            events.render(e, _ORIGIN)["spec"] for e in events.query(None, None, Filters())
        ]
        # A fresh prefix per process run: two runs against one simulator never share uuids.
        self._prefix = str(uuid.uuid4())[:24]
        self._t0_us = now_us - 3_600_000_000
        rng = random.Random(seed)
        for spec in self.specs:
            spec["content"]["Justification"] = ""
            size = len(orjson.dumps(self.page(0, 1, spec)[0][0]))
            spec["content"]["Justification"] = _padding(rng, max(16, target_bytes - size - 1))

    def page(self, start: int, n: int, spec: Record | None = None) -> tuple[list[Record], list[str]]:
        # One tight loop with locals; the benchmark reports this cost on its own and excludes it.
        specs, prefix, pool, t0, step = self.specs, self._prefix, POOL, self._t0_us, _STEP_US
        href = f"{_ORIGIN}/api/meshobjects/mesheventlogs/"
        records: list[Record] = []
        ids: list[str] = []
        for i in range(start, start + n):
            # A bijection of i (odd multiplier mod 2**48): unique like a counter, scattered like the
            # random v4 uuids meshStack sends.
            uid = f"{prefix}{(i * _SCATTER) & _MASK48:012x}"
            created = format_created_at(t0 + i * step)
            records.append(
                {
                    "kind": "meshEventLog",
                    "apiVersion": "v1-preview",
                    "metadata": {"uuid": uid, "createdAt": created},
                    "spec": spec if spec is not None else specs[i % pool],
                    "_links": {"self": {"href": href + uid}},
                }
            )
            # The dedupe id exactly as the meshStack source builds it (sources/meshstack.py
            # parse_page): "<createdAt>|<uuid>", so ids ascend with time like the events on a page
            # and each one appends to the right edge of the state store's `seen` index.
            ids.append(f"{created}|{uid}")
        return records, ids

    def mean_record_bytes(self, sample: int = POOL) -> float:
        records, _ = self.page(0, sample)
        return sum(len(orjson.dumps(r)) for r in records) / sample
