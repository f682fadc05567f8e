"""One request to Splunk HEC per ``send``, its answer as a ``Resolution``, and the healthcheck.

HEC answers ``{"text", "code"}``. A 200 delivers only when its body is HEC's ``"code": 0``: a web
server, proxy or Splunk Web page on the configured URL answers 200 too, and counting that as
delivered would drop the data. A 400 naming ``invalid-event-number`` k (6 invalid data format, 12/13
event missing or blank, 15 indexed fields) means HEC indexed events 0..k-1 and none after k
(moby/moby#35862), so line k is dead-lettered and the rest resent; halving would index the events
before k again. A 400 without it halves the batch (``http_post.classify``), 401/403 keep the data
and retry with "check token", 503 (9, server busy) retries honouring Retry-After. A few 400 codes
mean a configuration mistake rather than a bad event (7 incorrect index, 10/11 channel, 14 ACK
disabled): those retry with the fix, because dead-lettering would empty a healthy stream.

Every request carries one ``X-Splunk-Request-Channel`` per sink, so a token with indexer
acknowledgement on works whether or not ``ack`` is set; with ``ack`` the answer's ``ackId`` is
polled (``hec_ack``) before the request counts as delivered.

The healthcheck cannot rely on ``/services/collector/health`` alone: Splunk does not check the token
there (vectordotdev/vector#12098). It POSTs an empty body to the event endpoint first, which HEC
answers 400 code 5 "No data" for an accepted token and 401/403 for a refused one.
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
from logferry.sinks.http.hec_answers import ack_id, hec_code, hec_error_text, invalid_event
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
#: HEC's codes for "no data" (the token check's expected answer) and "healthy" (/services/collector/health).
NO_DATA, HEALTHY = 5, 17


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
        self._where = config.shown_url()
        event_url = f"{config.url}/services/collector/event"
        self._poster = Poster(name, session, event_url, timeout_secs=config.timeout_secs, metrics=metrics)
        # The healthcheck's empty request is not a data request: no metrics.
        self._checker = Poster(name, session, event_url, timeout_secs=config.timeout_secs)
        self._headers: dict[str, Any] = {
            "Authorization": f"Splunk {config.token.reveal()}",
            "Content-Type": "application/json",
            "X-Splunk-Request-Channel": str(uuid.uuid4()),
        }
        self._data_headers = dict(self._headers)
        if self._bodies.content_encoding is not None:
            self._data_headers["Content-Encoding"] = self._bodies.content_encoding
        ack_poster = Poster(
            f"{name}:ack",
            session,
            f"{config.url}/services/collector/ack",
            timeout_secs=config.timeout_secs,
            metrics=metrics,
        )
        self._acks = AckWaiter(
            ack_poster,
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
        return resolution

    async def healthcheck(self) -> CheckResult:
        """Whether HEC accepts the token (an empty event request) and is healthy (``/health``)."""
        try:
            token = await self._checker.post(b"", self._headers)
            async with self._session.get(
                f"{self.config.url}/services/collector/health",
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_secs),
                allow_redirects=False,
            ) as r:
                health = ApiResponse(r.status, r.headers, await r.read())
        except (aiohttp.ClientError, TimeoutError) as exc:
            return CheckResult(False, clip(f"cannot reach {self._where}: {type(exc).__name__}: {exc}"))
        problem = self._token_problem(token) or self._health_problem(health)
        if problem is not None:
            return CheckResult(False, problem)
        return CheckResult(True, f"HEC at {self._where} accepts the token and is healthy")

    def _token_problem(self, resp: ApiResponse) -> str | None:
        code = hec_code(resp)
        if resp.status == 400 and code == NO_DATA:
            return None
        if resp.status in HINTS:
            return HINTS[resp.status]
        if code is None and resp.status < 500:
            return self._not_hec(resp.status)
        if resp.status == 400 and code in CONFIG_CODES:
            return CONFIG_CODES[code].format(index=self.config.index or "(token default)")
        return hec_error_text(resp)

    def _health_problem(self, resp: ApiResponse) -> str | None:
        code = hec_code(resp)
        if resp.status == 200 and code == HEALTHY:
            return None
        if code is None and resp.status < 500:  # a 5xx may be a load balancer's with HEC down behind it
            return self._not_hec(resp.status)
        if resp.status == 503:
            return clip(f"HEC is unhealthy ({hec_error_text(resp)}): check the indexers and their queues")
        return hec_error_text(resp)

    def _not_hec(self, status: int) -> str:
        return f"answer is not from Splunk HEC: check url (HTTP {status} from {self._where})"

    def _classify(self, resp: ApiResponse, lines: int) -> Resolution:
        code = hec_code(resp)
        if resp.status == 200:
            if code == 0:
                return Resolution.delivered(200)
            return Resolution.retry(self._not_hec(200), status=200)
        if resp.status == 400 and code is not None:
            hint = CONFIG_CODES.get(code)
            if hint is not None:
                return Resolution.retry(hint.format(index=self.config.index or "(token default)"), status=400)
            bad = invalid_event(resp)
            if bad is not None and 0 <= bad < lines:
                return Resolution.reject_one(bad, hec_error_text(resp), status=400)
        return classify(resp, lines, ok=(), hints=HINTS, error_text=hec_error_text)

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
