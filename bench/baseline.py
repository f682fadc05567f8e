"""A Sentinel sender written the way the Python Azure Function connectors write one.

The Logs Ingestion upload of ``azure-monitor-ingestion`` (what newer Sentinel function connectors
call) and the older HTTP Data Collector senders (the ``AzureSentinelConnector`` helper many function
connectors copy) share one shape, reproduced here with the standard library and ``requests``:

* map each record to the table's columns in plain Python;
* size every row with ``len(json.dumps(row).encode())`` and cut the list into chunks under 1 MB;
* ``json.dumps(chunk)`` again for the body (each row is serialised twice);
* gzip it with ``zlib.compressobj(wbits=31)`` at zlib's default level, 6 (the SDK's
  ``_create_gzip_requests``); the Data Collector senders sent no compression at all, which costs
  less CPU but is not what a Logs Ingestion sender does, so level 6 is the default here and
  ``--baseline-compression none`` measures the other;
* one ``requests`` POST per chunk, sequentially, with a bearer token fetched once.

Two deliberate kindnesses to the baseline, so the comparison cannot flatter logferry: a
``requests.Session`` keeps the TLS connection alive (``AzureSentinelConnector`` calls
``requests.post`` per chunk and pays a handshake each time; ``--baseline-no-keepalive`` measures that),
and the chunk accounting counts the ``", "`` between rows and the brackets, which the SDK forgets
(its chunks can exceed 1,048,576 bytes by ~2 bytes per row, and the simulator answers 413 to
those, as it does for any body over the documented 1 MB limit).
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

__all__ = ["BaselineResult", "BaselineSender", "fetch_token"]

MAX_BYTES = 1_048_576
_GZIP_WBITS = 16 + zlib.MAX_WBITS


def fetch_token(
    credentials: dict[str, Any],
    ca_file: str,
    scope: str = "https://monitor.azure.com/.default",
    tenant: str | None = None,
) -> str:
    """One client-credentials token from the Entra simulator (a function fetches one per run)."""
    url = f"{credentials['authority_host']}/{tenant or credentials['tenant_id']}/oauth2/v2.0/token"
    r = requests.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "scope": scope,
        },
        verify=ca_file,
        timeout=30,
    )
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token


def map_record(rec: dict[str, Any]) -> dict[str, Any]:
    """meshStack record → meshStackEventLogs_CL row, as a hand-written function connector does it."""
    spec = rec.get("spec") or {}
    workspace = spec.get("workspaceRef") or {}
    author = spec.get("author") or {}
    row = {
        "TimeGenerated": (rec.get("metadata") or {}).get("createdAt"),
        "EventTitle": spec.get("title"),
        "EventDescription": spec.get("description"),
        "EventType": spec.get("eventType"),
        "WorkspaceName": workspace.get("name"),
        "EventContent": spec.get("content"),
        "AuthorIdentifier": author.get("identifier"),
        "AuthorType": author.get("authorType"),
    }
    return {k: v for k, v in row.items() if v is not None}


def split_chunks(rows: list[dict[str, Any]], max_bytes: int = MAX_BYTES) -> Iterator[list[dict[str, Any]]]:
    """The SDK's ``_split_chunks``: per-row ``json.dumps`` size accounting (plus separators, see above)."""
    chunk: list[dict[str, Any]] = []
    size = 2  # "[" and "]"
    for row in rows:
        n = len(json.dumps(row).encode("utf-8")) + 2  # ", " between rows
        if chunk and size + n > max_bytes:
            yield chunk
            chunk, size = [], 2
        chunk.append(row)
        size += n
    if chunk:
        yield chunk


@dataclass
class BaselineResult:
    events: int = 0
    requests: int = 0
    body_bytes: int = 0
    wire_bytes: int = 0
    failures: list[str] = field(default_factory=list)
    #: CPU seconds of this thread per step; timed per page or chunk, never per row.
    stage_secs: dict[str, float] = field(default_factory=dict)

    def charge(self, stage: str, since: float) -> float:
        now = time.thread_time()
        self.stage_secs[stage] = self.stage_secs.get(stage, 0.0) + now - since
        return now


class BaselineSender:
    def __init__(
        self, ingest_url: str, token: str, ca_file: str, gzip_level: int | None = 6, keepalive: bool = True
    ) -> None:
        self.url = ingest_url
        self.ca_file = ca_file
        self.gzip_level = gzip_level
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        if gzip_level is not None:
            self.headers["Content-Encoding"] = "gzip"
        self.session: requests.Session | None = requests.Session() if keepalive else None
        self.result = BaselineResult()

    def upload(self, records: list[dict[str, Any]]) -> None:
        """Map and send one fetched page, chunk by chunk, the way a function's ``upload(logs)`` does."""
        res = self.result
        t = time.thread_time()
        rows = [map_record(r) for r in records]
        t = res.charge("map", t)
        for chunk in split_chunks(rows):  # the generator's time is charged to "size rows"
            t = res.charge("size rows", t)
            body = json.dumps(chunk).encode("utf-8")
            t = res.charge("json.dumps body", t)
            data = body
            if self.gzip_level is not None:
                c = zlib.compressobj(self.gzip_level, zlib.DEFLATED, _GZIP_WBITS)
                data = c.compress(body) + c.flush()
            t = res.charge("gzip", t)
            post = self.session.post if self.session is not None else requests.post
            r = post(self.url, data=data, headers=self.headers, verify=self.ca_file, timeout=60)
            t = res.charge("http (requests)", t)
            self.result.requests += 1
            self.result.body_bytes += len(body)
            self.result.wire_bytes += len(data)
            if r.status_code != 204:
                self.result.failures.append(f"HTTP {r.status_code}: {r.text[:200]}")
            else:
                self.result.events += len(chunk)
        res.charge("size rows", t)

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
