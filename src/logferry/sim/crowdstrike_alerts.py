"""The Falcon Alerts API for the CrowdStrike simulator (specs/crowdstrike.md §6).

``POST /alerts/combined/alerts/v1`` with JSON ``{after, limit, sort, filter}``: alerts whose
``updated_timestamp`` passes the filter (``updated_timestamp:>'T'`` or ``>=``), ascending, a page of
``limit`` at a time, the next page's token in ``meta.pagination.after`` (absent on the last page).
Each alert exists once, deterministic from the seed; ``updated_timestamp`` is RFC 3339 with
nanoseconds. The alert id fields (``composite_id``, ``id``) are the simulator's choice: the spec
does not list the alert's fields.
"""

from __future__ import annotations

import base64
import bisect
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["MAX_LIMIT", "AlertLog", "AlertQueryError"]

MAX_LIMIT = 10000
_FILTER_RE = re.compile(r"updated_timestamp:(>=?)'([^']+)'")


class AlertQueryError(ValueError):
    """The request body is not a query the API answers; the message is the API's."""


def _rfc3339_nano(epoch_ns: int) -> str:
    secs, nanos = divmod(epoch_ns, 1_000_000_000)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


def _parse_time_ns(text: str) -> int:
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", text)
    if match is None:
        raise AlertQueryError(f"invalid timestamp {text!r} in filter")
    base = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    fraction = (match.group(2) or "").ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(fraction or 0)


@dataclass
class AlertLog:
    seed: int
    count: int
    spread_secs: float
    started: float

    def __post_init__(self) -> None:
        step = int(self.spread_secs * 1e9 / max(1, self.count))
        first = int((self.started - self.spread_secs) * 1e9)
        # Pairs share a timestamp, so a page boundary can fall between equal timestamps.
        self.times = [first + (i // 2) * 2 * step + 123 for i in range(self.count)]

    def alert(self, index: int) -> dict[str, Any]:
        cid = f"{self.seed:08x}" * 4
        return {
            "composite_id": f"{cid}:ind:{index:012d}",
            "id": f"ind:{index:012d}",
            "cid": cid,
            "updated_timestamp": _rfc3339_nano(self.times[index]),
            "created_timestamp": _rfc3339_nano(self.times[index] - 60_000_000_000),
            "severity": 10 + (index * 7) % 90,
            "status": ("new", "in_progress", "closed")[index % 3],
            "product": "epp",
            "name": "SuspiciousActivity",
            "description": f"Simulated alert {index}",
        }

    def query(self, body: Any) -> tuple[list[dict[str, Any]], str | None, int]:
        """One page: the alerts, the next ``after`` token (None on the last page) and the total."""
        if not isinstance(body, dict):
            raise AlertQueryError("body must be a JSON object")
        limit = body.get("limit", 100)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise AlertQueryError(f"limit must be between 1 and {MAX_LIMIT}")
        if body.get("sort", "updated_timestamp|asc") != "updated_timestamp|asc":
            raise AlertQueryError("the simulator sorts by updated_timestamp|asc only")
        match = _FILTER_RE.search(str(body.get("filter", "")))
        start = 0
        if match is not None:
            at = _parse_time_ns(match.group(2))
            start = (
                bisect.bisect_left(self.times, at)
                if match.group(1) == ">="
                else bisect.bisect_right(self.times, at)
            )
        after = body.get("after")
        if after:
            try:
                offset = int(base64.urlsafe_b64decode(str(after)).decode())
            except ValueError:
                raise AlertQueryError("invalid after token") from None
        else:
            offset = 0
        begin = start + offset
        end = min(self.count, begin + limit)
        nxt = base64.urlsafe_b64encode(str(offset + limit).encode()).decode() if end < self.count else None
        return [self.alert(i) for i in range(begin, end)], nxt, self.count - start
