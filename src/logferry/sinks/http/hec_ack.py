"""Waiting for HEC's indexer acknowledgement of one request before it counts as delivered.

With acknowledgement on, a 200 from ``/services/collector/event`` only means HEC parsed the
request; the events are safe once ``POST /services/collector/ack {"acks": [id]}`` on the same
channel answers ``{"acks": {"id": true}}``. Polls start 50 ms after the request and back off to
``poll_max_secs``. An ack that is still false at ``timeout_secs`` (an indexer restarted and lost the
events, or the cluster is stuck) makes the whole request retry: Splunk may then hold it twice,
which the sink's ``id_field`` lets a search remove. Failed polls keep polling until the deadline,
since the request itself may well have been indexed. Polls go through a poster of their own (its
metrics component is ``<sink>:ack``), so they are not counted as data requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from logferry.core.sink import Resolution
from logferry.sinks.http.hec_answers import acked, hec_error_text
from logferry.sinks.http_post import Poster, clip

__all__ = ["AckWaiter"]

_FIRST_POLL_SECS = 0.05


class AckWaiter:
    """Polls one channel's ack endpoint (``poster``'s URL) until an ack id is true or the time is up."""

    def __init__(
        self,
        poster: Poster,
        headers: Mapping[str, Any],
        *,
        poll_max_secs: float,
        timeout_secs: float,
    ) -> None:
        self._poster = poster
        self._headers = headers
        self._poll_max = poll_max_secs
        self._timeout = timeout_secs

    async def wait(self, ack: int) -> Resolution:
        deadline = time.monotonic() + self._timeout
        body = orjson.dumps({"acks": [ack]})
        delay = _FIRST_POLL_SECS
        last = "not indexed yet"
        while True:
            await asyncio.sleep(max(0.0, min(delay, deadline - time.monotonic())))
            try:
                resp = await self._poster.post(body, self._headers)
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = f"ack poll failed: {type(exc).__name__}: {exc}"
            else:
                if resp.status == 200 and acked(resp, ack):
                    return Resolution.delivered(200)
                last = "not indexed yet" if resp.status == 200 else hec_error_text(resp)
            if time.monotonic() >= deadline:
                return Resolution.retry(
                    clip(
                        f"no indexer acknowledgement for ackId {ack} within {self._timeout:g}s ({last}); "
                        "sending the request again (Splunk may index it twice)"
                    )
                )
            delay = min(delay * 2, self._poll_max)
