"""What every HTTP sink shares: one POST on the wire, and what its answer means for the batch.

A sink sends exactly one request per ``send`` and turns the answer into a ``Resolution`` with
:func:`classify`; ``core.delivery`` owns waiting and re-sending. The rules are the same for every
HTTP destination (Logs Ingestion, the Data Collector API, Splunk HEC, a generic collector):
400/413/422 may come from one bad record or an oversized body, so the request is halved until one
line is left; a configuration problem (a refused token, a wrong URL) keeps the data and retries
with a hint, because dropping data on a typo would turn a fixable outage into a loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from logferry.core.sink import Resolution
from logferry.net.retry import parse_retry_after
from logferry.observe.events import HttpResponseReceived
from logferry.observe.metrics import Metrics
from logferry.observe.redact import redact

__all__ = [
    "CONFIG_HINTS",
    "MAX_REASON_CHARS",
    "RETRYABLE",
    "SPLITTABLE",
    "ApiResponse",
    "Poster",
    "classify",
    "clip",
    "default_error_text",
    "request_failed",
    "retry_after",
]

#: Reasons go into logs and dead letters; a vendor body must not flood either.
MAX_REASON_CHARS = 300

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
#: A request refused for its content: one bad record may be the cause, so halving isolates it.
SPLITTABLE = frozenset({400, 413, 422})
#: A request refused for a reason the user fixes (credentials, URL, proxy, content type): dead-lettering
#: would empty a healthy stream into dead letters, so the data waits, with advice. Sinks add their own.
CONFIG_HINTS = {
    401: "credentials refused: check auth",
    403: "forbidden: check the credentials and their permissions",
    404: "not found: check the URL",
    405: "method not allowed: check the URL",
    407: "a proxy between logferry and the destination asks for authentication",
    410: "the endpoint is gone: check the URL",
    415: "content type or encoding refused: check format and compression",
    426: "upgrade required: check the URL's scheme and TLS",
}


@dataclass(frozen=True)
class ApiResponse:
    """The parts of an HTTP answer that decide what happens to a batch."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def clip(text: str) -> str:
    """``text`` on one line, with secrets redacted, at most :data:`MAX_REASON_CHARS` long."""
    text = redact(" ".join(text.split()))
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def default_error_text(resp: ApiResponse) -> str:
    """``HTTP status code: message`` from an Azure-style ``{"error": {...}}`` body, else the body's start."""
    code = resp.headers.get("x-ms-error-code", "")
    message = ""
    try:
        err = orjson.loads(resp.body).get("error")
        if isinstance(err, dict):
            code = str(err.get("code") or code)
            message = str(err.get("message") or "")
        elif isinstance(err, str):
            message = err
    except (orjson.JSONDecodeError, AttributeError):
        message = resp.body[:MAX_REASON_CHARS].decode("utf-8", "replace")
    return clip(f"HTTP {resp.status} {code}: {message}" if code else f"HTTP {resp.status}: {message}")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the destination asked us to wait, if it said so."""
    # Azure services may send milliseconds in their own headers; azure-core prefers those.
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        ms = parse_retry_after(headers.get(name))
        if ms is not None:
            return ms / 1000.0
    return parse_retry_after(headers.get("Retry-After"))


def classify(
    resp: ApiResponse,
    lines: int,
    *,
    ok: Collection[int],
    hints: Mapping[int, str] | None = None,
    error_text: Callable[[ApiResponse], str] = default_error_text,
) -> Resolution:
    """What to do with a request of ``lines`` lines given the destination's answer.

    ``ok`` are the statuses that confirm delivery; ``hints`` maps statuses that mean a
    configuration problem to the advice shown while the data waits for the fix (a sink's own
    advice replaces the generic one of :data:`CONFIG_HINTS`, which quotes the answer).
    """
    status = resp.status
    if status in ok:
        return Resolution.delivered(status)
    if hints and status in hints:
        return Resolution.retry(hints[status], status=status)
    if status in CONFIG_HINTS:
        return Resolution.retry(clip(f"{CONFIG_HINTS[status]} ({error_text(resp)})"), status=status)
    if status in SPLITTABLE:
        if lines > 1:
            return Resolution.split(error_text(resp), status)
        return Resolution.reject(error_text(resp), status)
    if status in RETRYABLE or status >= 500:
        return Resolution.retry(error_text(resp), after=retry_after(resp.headers), status=status)
    if 400 <= status < 500:
        return Resolution.reject(error_text(resp), status)
    # A 1xx, 3xx or an unexpected 2xx is not the destination answering (a proxy, a redirect). Keep the data.
    return Resolution.retry(f"unexpected HTTP {status}", status=status)


def request_failed(exc: BaseException) -> Resolution:
    """A request that got no answer (connection refused, reset, timeout) is retried."""
    return Resolution.retry(clip(f"request failed: {type(exc).__name__}: {exc}"))


class Poster:
    """POSTs bodies to one URL on a shared session and records each answer's status and latency."""

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        url: str,
        *,
        timeout_secs: float,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_secs)
        self._metrics = metrics

    async def post(self, body: bytes, headers: Mapping[str, Any], url: str | None = None) -> ApiResponse:
        """One POST to ``url`` (default: this poster's URL); raises aiohttp.ClientError / TimeoutError."""
        t0 = time.monotonic()
        status: int | None = None
        try:
            async with self._session.post(
                url or self.url,
                data=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as r:
                status = r.status
                return ApiResponse(r.status, r.headers, await r.read())
        finally:
            if self._metrics is not None:
                HttpResponseReceived(self.name, status, time.monotonic() - t0).emit(self._metrics)
