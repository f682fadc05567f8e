"""``GET /v1/events`` of the Cisco Secure Endpoint API: the query, one page, and where the next one is.

Facts (specs/cisco_secure_endpoint.md §2-§3): the envelope is ``{"metadata": {"links": {...},
"results": {...}}, "data": [...]}``; events come newest first; ``start_date`` is inclusive;
``metadata.links.next`` is a full URL carrying ``limit``/``offset`` and the original filters.
A next link is followed only on the API's own origin (the Basic credentials go with it). When
a link cannot be followed, or is missing although ``metadata.results`` counts more items, the
next offset is computed from the request itself, so the pass goes on instead of ending early.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from yarl import URL

from logferry.core.types import Record
from logferry.net.http import HttpClient, same_origin

__all__ = ["EVENTS_PATH", "EventsApi", "EventsPage", "api_date", "parse_events"]

EVENTS_PATH = "/v1/events"


def api_date(t: datetime) -> str:
    """``start_date`` shaped like the vendor's dates: ``2026-11-21T10:00:00+00:00`` (as Elastic sends it)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


@dataclass(frozen=True)
class EventsPage:
    records: list[Record]
    ids: list[str]
    #: The newest ``timestamp`` (epoch seconds) among the page's events, if any.
    newest: int | None
    #: The URL of the next page, or ``None`` at the end of the result.
    next_url: str | None
    rejects: list[tuple[str, bytes]] = field(default_factory=list)
    #: False when the answer was not an events envelope at all (its events are unknown).
    usable: bool = True
    #: No next link, yet ``metadata.results`` says more items follow.
    more: bool = False


class EventsApi:
    def __init__(self, http: HttpClient, base_url: str, page_size: int, event_types: Sequence[int]) -> None:
        self.http = http
        self.base_url = base_url
        self.page_size = page_size
        self.event_types = list(event_types)

    def first_url(self, start: datetime) -> str:
        params = [("start_date", api_date(start))]
        params += [("event_type[]", str(t)) for t in self.event_types]
        params += [("limit", str(self.page_size)), ("offset", "0")]
        return str(URL(f"{self.base_url}{EVENTS_PATH}").with_query(params))

    def can_follow(self, url: str) -> bool:
        return same_origin(url, self.base_url) and URL(url).path == EVENTS_PATH

    async def page(self, url: str) -> EventsPage:
        resp = await self.http.request("GET", url, headers={"Accept": "application/json"})
        page = parse_events(resp.body)
        rejects = page.rejects
        nxt = page.next_url
        if nxt is not None and not self.can_follow(nxt):
            rejects = [*rejects, (f"metadata.links.next leaves {self.base_url}; not followed", nxt.encode())]
            nxt = skip_page(url, self.page_size)
        elif nxt is not None and _offset(nxt, 1) <= _offset(url, 0):
            # A link that does not move on would read the same page forever.
            rejects = [
                *rejects,
                ("metadata.links.next does not advance the offset; not followed", nxt.encode()),
            ]
            nxt = skip_page(url, self.page_size)
        elif page.more:
            # A last-looking page that counts more items: step on by offset, the pass is not over.
            nxt = skip_page(url, self.page_size)
        return EventsPage(page.records, page.ids, page.newest, nxt, rejects, page.usable, page.more)


def _offset(url: str, missing: int) -> int:
    try:
        return int(URL(url, encoded=True).query.get("offset", missing))
    except ValueError:
        return missing


def skip_page(url: str, page_size: int) -> str:
    """``url`` with its offset moved one page on."""
    u = URL(url, encoded=True)
    try:
        limit = int(u.query.get("limit", page_size))
        offset = int(u.query.get("offset", 0))
    except ValueError:
        limit, offset = page_size, 0
    return str(u.update_query(offset=str(offset + limit)))


def parse_events(body: bytes) -> EventsPage:
    """Records, their dedupe ids, rejects and the next link of one ``/v1/events`` answer."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return EventsPage([], [], None, None, [(f"Secure Endpoint page is not JSON: {exc}", body)], False)
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        return EventsPage([], [], None, None, [("Secure Endpoint page has no data list", body)], False)
    meta = doc.get("metadata")
    links = meta.get("links") if isinstance(meta, dict) else None
    nxt = links.get("next") if isinstance(links, dict) else None
    nxt = nxt if isinstance(nxt, str) and nxt else None
    records: list[Record] = []
    ids: list[str] = []
    rejects: list[tuple[str, bytes]] = []
    newest: int | None = None
    for rec in doc["data"]:
        key = _event_key(rec)
        if key is None:
            rejects.append(("Secure Endpoint event lacks an integer id or timestamp", orjson.dumps(rec)))
            continue
        ts, event_id = key
        records.append(rec)
        # Ascending with time (dedupe index locality). The type id costs nothing and guards against
        # two events of different types sharing an id, as pairs in Elastic's test data do.
        ids.append(f"{ts:011d}|{event_id}|{rec.get('event_type_id', '')}")
        newest = ts if newest is None or ts > newest else newest
    more = nxt is None and _counts_more(meta)
    return EventsPage(records, ids, newest, nxt, rejects, True, more)


def _counts_more(meta: object) -> bool:
    """Whether ``metadata.results`` says items follow this page.

    A page without a next link is taken as the last only if its counts agree: ending a pass early
    would move the cursor past events never read.
    """
    results = meta.get("results") if isinstance(meta, dict) else None
    if not isinstance(results, dict):
        return False
    total, index, count = results.get("total"), results.get("index"), results.get("current_item_count")
    if type(total) is int and type(index) is int and type(count) is int:
        return count > 0 and index + count < total
    return False


def _event_key(rec: object) -> tuple[int, int] | None:
    if not isinstance(rec, dict):
        return None
    ts, event_id = rec.get("timestamp"), rec.get("id")
    if type(ts) is not int or type(event_id) is not int:
        return None
    return ts, event_id
