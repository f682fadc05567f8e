"""One request to Splunk HEC per ``send``, its answer as a ``Resolution``, and the healthcheck.

HEC answers ``{"text", "code"}``; the HTTP status says most of it and ``http_post.classify`` handles
that: 200 delivers, 400 halves the batch until the bad event is dead-lettered (6 invalid data
format, 12/13 event missing or blank, 15 indexed fields), 401/403 keep the data and retry with
"check token", 503 (9, server busy) retries honouring Retry-After. A few 400 codes mean a
configuration mistake rather than a bad event (7 incorrect index, 10/11 channel, 14 ACK disabled):
those retry with the fix, because halving would dead-letter every record of a healthy stream.

Every request carries one ``X-Splunk-Request-Channel`` per sink, so a token with indexer
acknowledgement on works whether or not ``ack`` is set; with ``ack`` the answer's ``ackId`` is
polled (``hec_ack``) before the request counts as delivered.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp

from logferry.core.sink import Action, BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.observe.metrics import Metrics
from logferry.sinks.http.hec import SplunkHecConfig
from logferry.sinks.http.hec_ack import AckWaiter
from logferry.sinks.http.hec_answers import ack_id, hec_code, hec_error_text
from logferry.sinks.http.hec_events import EventEncoder
from logferry.sinks.http_post import ApiResponse, Poster, classify, clip, request_failed

__all__ = ["HINTS", "HecSink"]

HINTS = {
    401: "HEC token missing or malformed (HTTP 401): check token",
    403: "HEC token refused (HTTP 403: invalid or disabled): check token and that it is enabled in Splunk",
    404: "not found (HTTP 404): url must be the HEC base URL, such as https://splunk.example.com:8088",
}
#: 400 codes that are configuration problems: retried with advice instead of split into dead letters.
CONFIG_CODES = {
    7: "incorrect index (HEC code 7): allow the token to write to index {index}, or change index",
    10: "data channel missing (HEC code 10): the request carried no channel; report this as a logferry bug",
    11: "invalid data channel (HEC code 11): the channel was refused; check for a proxy rewriting headers",
    14: "ACK is disabled (HEC code 14): turn on indexer acknowledgement for the token, or set ack: false",
}


class HecSink:
    """Sends batches of HEC event envelopes to ``/services/collector/event``."""

    def __init__(
        self,
        name: str,
        config: SplunkHecConfig,
        session: aiohttp.ClientSession,
        *,
        logger: logging.Logger | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.config = config
        # HEC takes concatenated JSON objects; a newline between them keeps each request greppable.
        self.limits = BatchLimits(
            config.batch.max_bytes, config.batch.max_events, prefix=b"", separator=b"\n", suffix=b""
        )
        meta = {
            k: v
            for k, v in (
                ("host", config.host),
                ("source", config.source),
                ("sourcetype", config.sourcetype),
                ("index", config.index),
            )
            if v is not None
        }
        self._events = EventEncoder(
            meta=meta, time_field=config.time_field, fields=config.fields, id_field=config.id_field
        )
        self._bodies = config.body_encoder(self.limits)
        self._session = session
        self._log = logger or logging.getLogger(f"logferry.sink.{name}")
        self._poster = Poster(
            name,
            session,
            f"{config.url}/services/collector/event",
            timeout_secs=config.timeout_secs,
            metrics=metrics,
        )
        self._headers: dict[str, Any] = {
            "Authorization": f"Splunk {config.token.reveal()}",
            "Content-Type": "application/json",
            "X-Splunk-Request-Channel": str(uuid.uuid4()),
        }
        self._data_headers = dict(self._headers)
        if self._bodies.content_encoding is not None:
            self._data_headers["Content-Encoding"] = self._bodies.content_encoding
        self._acks = AckWaiter(
            self._poster,
            f"{config.url}/services/collector/ack",
            self._headers,
            poll_max_secs=config.ack_poll_interval_secs,
            timeout_secs=config.ack_timeout_secs,
        )
        self._warned_no_ack = False

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return self._events.encode(records)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass  # the session belongs to the build context, which closes it

    async def send(self, lines: list[bytes]) -> Resolution:
        body = await self._bodies.body(lines)
        try:
            resp = await self._poster.post(body, self._data_headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return request_failed(exc)
        resolution = self._classify(resp, len(lines))
        if resolution.action is Action.DELIVERED and self.config.ack:
            resolution = await self._confirm(resp)
        if resolution.action is not Action.DELIVERED:
            self._log.debug(
                "sink %s: %d line(s) -> %s: %s",
                self.name,
                len(lines),
                resolution.action.value,
                resolution.reason,
            )
        return resolution

    async def healthcheck(self) -> CheckResult:
        """Ask ``/services/collector/health`` with the token: it checks the token and HEC's queues."""
        url = f"{self.config.url}/services/collector/health"
        try:
            async with self._session.get(
                url,
                headers={"Authorization": self._headers["Authorization"]},
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_secs),
                allow_redirects=False,
            ) as r:
                resp = ApiResponse(r.status, r.headers, await r.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return CheckResult(False, clip(f"cannot reach {self.config.url}: {type(exc).__name__}: {exc}"))
        if resp.status == 200:
            return CheckResult(True, f"HEC at {self.config.url} is healthy and accepts the token")
        if resp.status in (400, 401, 403):
            return CheckResult(False, HINTS[403])
        if resp.status == 503:
            return CheckResult(False, "HEC is unhealthy (HTTP 503): its queues are full; check the indexers")
        return CheckResult(False, hec_error_text(resp))

    def _classify(self, resp: ApiResponse, lines: int) -> Resolution:
        if resp.status == 400:
            hint = CONFIG_CODES.get(hec_code(resp) or -1)
            if hint is not None:
                return Resolution.retry(hint.format(index=self.config.index or "(token default)"), status=400)
        return classify(resp, lines, ok=(200,), hints=HINTS, error_text=hec_error_text)

    async def _confirm(self, resp: ApiResponse) -> Resolution:
        ack = ack_id(resp)
        if ack is not None:
            return await self._acks.wait(ack)
        if not self._warned_no_ack:
            self._warned_no_ack = True
            self._log.warning(
                "sink %s: ack is on but HEC answered without an ackId: the token has indexer "
                "acknowledgement off, so requests count as delivered once HEC accepts them",
                self.name,
            )
        return Resolution.delivered(resp.status)
