"""Generic HTTP sink: batches of records as a JSON array or NDJSON to any collector URL.

For log collectors, webhooks and SIEM HTTP inputs that take JSON: Logstash's ``http`` input,
Vector's or Fluent Bit's ``http`` source, Elastic's ``_bulk``-less ingest endpoints, in-house
receivers. One POST per batch; the answer decides what happens to it (``http_post.classify``):
a success status delivers, 401/403/404 (and the other configuration statuses) keep the data and
retry with a hint (a credential or URL to fix), 400/413/422 halve the batch until the one bad record
is dead-lettered, 408/429/5xx and network errors retry with backoff, honouring ``Retry-After``.
There is no PUT: to a fixed URL each batch would overwrite the one before. Example::

    sinks:
      collector:
        type: http
        inputs: [duo]
        url: https://collector.example.com/ingest
        format: ndjson
        auth:
          type: bearer
          token: ${env:COLLECTOR_TOKEN}
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Annotated, Any, Literal

import aiohttp
from pydantic import Field, field_validator

from logferry.config.base import BuildContext, Model
from logferry.config.secrets import Ref, Secret
from logferry.core.registry import register_sink
from logferry.core.sink import Action, BatchLimits, CheckResult, Resolution
from logferry.core.types import Record
from logferry.observe.metrics import Metrics
from logferry.observe.redact import register_secret
from logferry.sinks.http.common import CollectorSinkConfig, check_header_value
from logferry.sinks.http_post import Poster, classify, clip, request_failed
from logferry.sinks.sentinel.encoder import RecordEncoder

__all__ = ["BasicAuth", "BearerAuth", "HeaderAuth", "HttpConfig", "HttpSink", "NoAuth"]

#: Statuses that mean "fix the configuration": the data waits in the outbox meanwhile.
HINTS = {
    401: "credentials refused (HTTP 401): check auth",
    403: "forbidden (HTTP 403): check that the credential may write to url",
    404: "not found (HTTP 404): check url",
}
_CONTENT_TYPES = {"json_array": "application/json", "ndjson": "application/x-ndjson"}


class NoAuth(Model):
    type: Literal["none"] = Field(description="No credentials (a collector on a trusted network).")


class BasicAuth(Model):
    type: Literal["basic"] = Field(description="HTTP Basic authentication.")
    user: str = Field(min_length=1, description="User name.", examples=["logferry"])
    password: Secret = Field(description="Password, by reference.", examples=["${env:COLLECTOR_PASSWORD}"])

    @field_validator("password")
    @classmethod
    def _password_is_one_line(cls, v: Secret) -> Secret:
        check_header_value(v.reveal(), "password")
        return v

    def headers(self) -> dict[str, str]:
        pair = f"{self.user}:{self.password.reveal()}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


class BearerAuth(Model):
    type: Literal["bearer"] = Field(description="A static bearer token.")
    token: Secret = Field(description="The token, by reference.", examples=["${env:COLLECTOR_TOKEN}"])

    @field_validator("token")
    @classmethod
    def _token_is_one_line(cls, v: Secret) -> Secret:
        check_header_value(v.reveal(), "token")
        return v

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token.reveal()}"}


class HeaderAuth(Model):
    type: Literal["header"] = Field(description="An API key in a header of its own.")
    name: str = Field(
        min_length=1,
        pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
        description="Header name.",
        examples=["X-Api-Key"],
    )
    value: Secret = Field(description="Header value, by reference.", examples=["${env:COLLECTOR_API_KEY}"])

    @field_validator("value")
    @classmethod
    def _value_is_one_line(cls, v: Secret) -> Secret:
        check_header_value(v.reveal(), "value")
        return v

    def headers(self) -> dict[str, str]:
        return {self.name: self.value.reveal()}


HttpAuth = Annotated[NoAuth | BasicAuth | BearerAuth | HeaderAuth, Field(discriminator="type")]


@register_sink("http")
class HttpConfig(CollectorSinkConfig):
    """Send batches of records as JSON to any HTTP collector."""

    type: Literal["http"] = Field(description="Sink type.", examples=["http"])
    url: str = Field(
        description="Where each batch is POSTed. https is required except for a loopback host; no "
        "user:password@ (use auth). Given as a reference (${env:NAME}), the whole URL is a secret "
        "(for collectors whose URL carries the key) and messages show only its scheme, host and port.",
        examples=["https://collector.example.com/ingest", "${env:COLLECTOR_URL}"],
    )
    format: Literal["json_array", "ndjson"] = Field(
        default="json_array",
        description="json_array: one JSON array per request (Content-Type application/json). ndjson: one "
        "record per line (application/x-ndjson).",
        examples=["ndjson"],
    )
    auth: HttpAuth = Field(
        default_factory=lambda: NoAuth(type="none"),
        description="Credentials sent with every request; secrets only by reference.",
        examples=[{"type": "bearer", "token": "${env:COLLECTOR_TOKEN}"}],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra request headers. A value given as a reference (${env:NAME}) is treated as a "
        "secret: it is never logged.",
        examples=[{"X-Tenant": "acme", "X-Collector-Key": "${env:COLLECTOR_KEY}"}],
    )
    success_statuses: list[int] | None = Field(
        default=None,
        min_length=1,
        description="Statuses that confirm delivery. Unset: any 2xx. Another 2xx is then retried "
        "(the data is kept), so list every status the collector answers on success.",
        examples=[[200, 202]],
    )

    @field_validator("headers", mode="before")
    @classmethod
    def _register_secret_headers(cls, v: object) -> object:
        # Validation turns a Ref into a plain str, so remember the secret while it is still marked.
        if isinstance(v, dict):
            for value in v.values():
                if isinstance(value, Ref):
                    register_secret(str(value))
        return v

    @field_validator("headers")
    @classmethod
    def _headers_are_safe(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if name.lower() in ("authorization", "content-type", "content-encoding", "content-length"):
                raise ValueError(f"headers: {name} is set by logferry; use auth for credentials")
            check_header_value(value, f"headers: the value of {name}")
        return v

    @field_validator("success_statuses")
    @classmethod
    def _statuses_are_2xx(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and any(not 200 <= s <= 299 for s in v):
            raise ValueError("success_statuses: list only 2xx statuses (others are errors or redirects)")
        return v

    def build(self, name: str, ctx: BuildContext) -> HttpSink:
        return HttpSink(
            name,
            self,
            ctx.session(self.tls.settings()),
            metrics=ctx.metrics,
        )


class HttpSink:
    """Sends each batch as one request to the configured URL."""

    def __init__(
        self,
        name: str,
        config: HttpConfig,
        session: aiohttp.ClientSession,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.name = name
        self.config = config
        b = config.batch
        if config.format == "ndjson":
            self.limits = BatchLimits(b.max_bytes, b.max_events, prefix=b"", separator=b"\n", suffix=b"\n")
        else:
            self.limits = BatchLimits(b.max_bytes, b.max_events)
        self._records = RecordEncoder()
        self._bodies = config.body_encoder(self.limits)
        self._poster = Poster(name, session, config.url, timeout_secs=config.timeout_secs, metrics=metrics)
        self._ok = frozenset(config.success_statuses or range(200, 300))
        headers: dict[str, Any] = {**config.headers, "Content-Type": _CONTENT_TYPES[config.format]}
        if not isinstance(config.auth, NoAuth):
            headers.update(config.auth.headers())
        if self._bodies.content_encoding is not None:
            headers["Content-Encoding"] = self._bodies.content_encoding
        self._headers = headers

    def encode(self, records: Sequence[Record]) -> list[bytes]:
        return self._records.encode(records)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass  # the session belongs to the build context, which closes it

    async def send(self, lines: list[bytes]) -> Resolution:
        body = await self._bodies.body(lines)
        try:
            resp = await self._poster.post(body, self._headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return request_failed(exc)
        return classify(resp, len(lines), ok=self._ok, hints=HINTS)

    async def healthcheck(self) -> CheckResult:
        """POST an empty batch as a real send would: it proves the URL, TLS and credentials."""
        resolution = await self.send([])
        url = self.config.shown_url()
        if resolution.action is Action.DELIVERED:
            return CheckResult(True, f"{url} accepts requests")
        return CheckResult(False, clip(f"{url}: {resolution.reason}"))
