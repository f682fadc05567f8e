"""One request on the wire to the Logs Ingestion API, its outcome as a ``Resolution``, and the healthcheck.

``send`` makes exactly one POST (two when the first is refused with 401: tokens can be revoked or
expire before their stated lifetime, so a refused token is dropped and a fresh one tried once).
It never raises for destination errors: every status, timeout and token failure becomes data for
``core.delivery``, which owns waiting and re-sending. Statuses and what they mean:
https://learn.microsoft.com/azure/azure-monitor/logs/logs-ingestion-api-overview
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp

from logferry.auth.entra import EntraTokenProvider
from logferry.config.entra import entra_provider
from logferry.core.errors import AuthError, ConfigError
from logferry.core.sink import BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.net.http import is_loopback
from logferry.observe.metrics import Metrics
from logferry.sinks.bodies import BodyEncoder
from logferry.sinks.http_post import ApiResponse, Poster, classify, clip, default_error_text, request_failed
from logferry.sinks.sentinel.config import SentinelConfig
from logferry.sinks.sentinel.encoder import RecordEncoder

__all__ = ["REASON_401", "REASON_403", "REASON_404", "SentinelSink", "resolve"]

REASON_401 = "token refused: check tenant, client and that token_scope matches the cloud"
REASON_403 = "forbidden: grant the app the Monitoring Metrics Publisher role on the DCR"
REASON_404 = "not found: check the endpoint URL, DCR immutable id and stream name"
#: A refused token, a missing role or a wrong URL is fixed by the user; the data waits for the fix.
HINTS = {401: REASON_401, 403: REASON_403, 404: REASON_404}


def resolve(resp: ApiResponse, lines: int) -> Resolution:
    """What to do with a batch of ``lines`` given the API's answer (after any 401 refresh); it answers 204."""
    return classify(resp, lines, ok=(204,), hints=HINTS)


class SentinelSink:
    """Sends batches of encoded rows to one DCR stream.

    Built by ``SentinelConfig.build``; the HTTP session is shared and owned by the build context.
    """

    def __init__(
        self,
        name: str,
        config: SentinelConfig,
        session: aiohttp.ClientSession,
        *,
        logger: logging.Logger | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        if not config.ingest_url.startswith("https://") and not is_loopback(config.ingest_url):
            raise ConfigError([f"sinks.{name}.endpoint: a bearer token is never sent over plain http"])
        self.name = name
        self.config = config
        self.limits = BatchLimits(max_bytes=config.batch.max_bytes, max_events=config.batch.max_events)
        self._log = logger or logging.getLogger(f"logferry.sink.{name}")
        self._records = RecordEncoder(config.table, config.include_event_id)
        level = config.gzip_level if config.compression == "gzip" else None
        self._bodies = BodyEncoder(self.limits.frame, level)
        self._poster = Poster(
            name, session, config.ingest_url, timeout_secs=config.timeout_secs, metrics=metrics
        )
        self._tokens: EntraTokenProvider | None = None

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return self._records.encode(records)

    async def start(self) -> None:
        """Check the credential loads; a failure here is reported again by every ``send``."""
        try:
            self._provider()
        except AuthError as exc:
            self._log.warning("sink %s: Entra ID is not ready yet: %s", self.name, exc)

    async def close(self) -> None:
        self._tokens = None  # the session belongs to the build context, which closes it

    async def send(self, lines: list[bytes]) -> Resolution:
        body = await self._bodies.body(lines)
        try:
            resp = await self._post(body)
        except AuthError as exc:
            return Resolution.retry(clip(str(exc)))
        except (aiohttp.ClientError, TimeoutError) as exc:
            return request_failed(exc)
        return resolve(resp, len(lines))

    async def healthcheck(self) -> CheckResult:
        """POST an empty array, as a real send would, and say what to fix if it fails."""
        body = await self._bodies.body([])
        try:
            resp = await self._post(body)
        except AuthError as exc:
            return CheckResult(False, clip(f"cannot get a token: {exc}"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            where = self.config.endpoint
            return CheckResult(False, clip(f"cannot reach {where}: {type(exc).__name__}: {exc}"))
        if resp.status == 204:
            return CheckResult(True, f"stream {self.config.stream} accepts requests")
        if resp.status == 401:
            scope, cloud = self.config.resolved_token_scope, self.config.cloud
            return CheckResult(False, f"{REASON_401} (token_scope is {scope}, cloud is {cloud})")
        if resp.status == 403:
            return CheckResult(False, f"{REASON_403} {self.config.dcr_immutable_id}")
        if resp.status == 404:
            return CheckResult(False, f"{REASON_404} ({self.config.stream})")
        return CheckResult(False, default_error_text(resp))

    # --- plumbing ------------------------------------------------------------------------------

    def _provider(self) -> EntraTokenProvider:
        if self._tokens is None:
            c = self.config
            self._tokens = entra_provider(
                c.auth, scope=c.resolved_token_scope, authority_host=c.resolved_authority_host, tls=c.tls
            )
        return self._tokens

    async def _post(self, body: bytes) -> ApiResponse:
        tokens = self._provider()
        token = await tokens.token()
        resp = await self._post_once(body, token)
        if resp.status == 401:
            tokens.invalidate(token)
            resp = await self._post_once(body, await tokens.token())
        return resp

    async def _post_once(self, body: bytes, token: str) -> ApiResponse:
        headers: dict[str, Any] = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "x-ms-client-request-id": str(uuid.uuid4()),
        }
        if self._bodies.content_encoding is not None:
            headers["Content-Encoding"] = self._bodies.content_encoding
        return await self._poster.post(body, headers)
