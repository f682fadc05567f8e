"""Event stream discovery (``GET /sensors/entities/datafeed/v2``) and the session refresh call.

Discover answers one resource per partition: the feed URL, a session token for it, the URL
that keeps the session alive and how often to call it (specs/crowdstrike.md §3.1, §3.3). Every
discovery issues new sessions, so one result is handed to each partition at most once; a
partition that reconnects asks for a new one, and partitions reconnecting together share one
call. An occasional empty 200 is transient (Elastic Beats treats it so): it is retried like an
error.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import orjson
from yarl import URL

from logferry.core.errors import SourceError, VendorAPIError
from logferry.net.http import HttpClient, is_loopback, same_origin

__all__ = ["DISCOVER_PATH", "Discovery", "FeedResource", "PartitionsChanged", "parse_resources"]

DISCOVER_PATH = "/sensors/entities/datafeed/v2"
REFRESH_PATH = "/sensors/entities/datafeed-actions/v1/{partition}"
#: The partition is the path segment after ``v1/`` (how Falcon's own ansible plugin reads it).
_PARTITION_RE = re.compile(r"v1/(\d+)")


class PartitionsChanged(SourceError):
    """Discovery lists other partitions than the running lanes: the lanes are rebuilt."""


@dataclass(frozen=True)
class FeedResource:
    partition: int
    feed_url: str
    token: str
    refresh_url: str
    refresh_interval_secs: float
    discovered_at: float  # monotonic

    def __repr__(self) -> str:  # the session token is a credential
        return f"FeedResource(partition={self.partition}, feed_url={self.feed_url!r})"


def parse_resources(body: bytes, base_url: str, app_id: str, now: float) -> dict[int, FeedResource]:
    """Partition → resource from a discover body; ``VendorAPIError`` when it cannot be used."""
    if not body.strip():
        raise VendorAPIError("discover answered an empty body (transient on Falcon's side)")
    try:
        doc = orjson.loads(body)
        raw = doc["resources"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise VendorAPIError(f"discover answered no resources list: {exc}") from None
    if not isinstance(raw, list) or not raw:
        raise VendorAPIError("discover listed no event streams; check the API client's 'Event streams' scope")
    out: dict[int, FeedResource] = {}
    for item in raw:
        try:
            feed, refresh = str(item["dataFeedURL"]), str(item["refreshActiveSessionURL"])
            token = str(item["sessionToken"]["token"])
            interval = float(item["refreshActiveSessionInterval"])
        except (KeyError, TypeError, ValueError) as exc:
            raise VendorAPIError(f"discover resource lacks {exc}") from None
        found = _PARTITION_RE.search(URL(refresh).path) or _PARTITION_RE.search(URL(feed).path)
        if found is None:
            raise VendorAPIError(f"cannot tell the partition of stream {URL(feed).path}")
        partition = int(found.group(1))
        if URL(feed).scheme != "https" and not is_loopback(feed):
            raise VendorAPIError(f"refusing the stream URL {URL(feed).host}: not https")
        if not same_origin(refresh, base_url):
            # The OAuth bearer goes only to the configured API host (a proxy in front of Falcon
            # hands back Falcon's own host): the documented refresh path is rebuilt on it.
            refresh = str(
                URL(base_url + REFRESH_PATH.format(partition=partition)).with_query(
                    action_name="refresh_active_stream_session", appId=app_id
                )
            )
        out[partition] = FeedResource(partition, feed, token, refresh, interval, now)
    return out


class Discovery:
    def __init__(self, api: HttpClient, base_url: str, app_id: str) -> None:
        self._api = api
        self._base = base_url
        self._app_id = app_id
        self._lock = asyncio.Lock()
        self._unused: dict[int, FeedResource] = {}
        self.partitions: frozenset[int] = frozenset()

    async def discover(self) -> dict[int, FeedResource]:
        resp = await self._api.request(
            "GET", f"{self._base}{DISCOVER_PATH}", params={"appId": self._app_id, "format": "json"}
        )
        found = parse_resources(resp.body, self._base, self._app_id, time.monotonic())
        self._unused = dict(found)
        return found

    async def start(self) -> frozenset[int]:
        """Discover the partitions the lanes are built for."""
        async with self._lock:
            self.partitions = frozenset(await self.discover())
            return self.partitions

    async def resource(self, partition: int) -> FeedResource:
        """A session for ``partition`` no other connection has used."""
        async with self._lock:
            cached = self._unused.pop(partition, None)
            if (
                cached is not None
                and time.monotonic() - cached.discovered_at < cached.refresh_interval_secs / 2
            ):
                return cached
            found = await self.discover()
            if frozenset(found) != self.partitions:
                raise PartitionsChanged(f"partitions are now {sorted(found)}, were {sorted(self.partitions)}")
            return self._unused.pop(partition)

    async def refresh(self, resource: FeedResource) -> bool:
        """Keep ``resource``'s session alive; ``False`` when Falcon has no such active session."""
        resp = await self._api.request(
            "POST", resource.refresh_url, headers={"Content-Type": "application/json"}, passthrough=(404,)
        )
        return resp.status != 404
