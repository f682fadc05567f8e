"""Base models every source and sink config extends, and what ``build()`` receives.

A component config is validated without I/O (``logferry validate``); ``build()`` turns it
into a live object and may open connections. Every option carries its description and an
example on its ``Field`` so the JSON Schema and the reference docs come from one place.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from yarl import URL

from logferry.config.secrets import Secret
from logferry.core.routing import WhereValue, where_problems
from logferry.net.http import is_loopback, make_session
from logferry.net.ratelimit import RateLimiter
from logferry.net.tls import TLSSettings, load_cert_chain

if TYPE_CHECKING:
    from logferry.core.sink import Sink
    from logferry.core.source import Source
    from logferry.observe.metrics import Metrics

__all__ = [
    "DEFAULT_OUTBOX_MAX_BYTES",
    "BuildContext",
    "ClientTLSConfig",
    "Model",
    "SinkConfig",
    "SourceConfig",
    "TLSConfig",
    "check_api_url",
]

DEFAULT_OUTBOX_MAX_BYTES = 512 * 1024 * 1024
DEFAULT_MAX_BACKOFF_SECS = 300.0


def check_api_url(value: str, example: str) -> str:
    """An absolute http(s) URL with a host, without a trailing slash.

    Plain http only for a loopback host (a local simulator or proxy): credentials would travel
    in clear text anywhere else.
    """
    url = URL(value)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"must be an absolute URL such as {example}")
    if url.scheme == "http" and not is_loopback(url):
        raise ValueError("must use https (plain http is allowed only for localhost)")
    return value.rstrip("/")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TLSConfig(Model):
    verify: bool = Field(True, description="Verify the server certificate. Turn off only for testing.")
    ca_file: str | None = Field(
        None,
        description="PEM bundle of CAs to trust instead of the system store.",
        examples=["/etc/ssl/corp-ca.pem"],
    )

    def settings(self) -> TLSSettings:
        return TLSSettings(verify=self.verify, ca_file=self.ca_file)


class ClientTLSConfig(TLSConfig):
    """TLS to a collector: server verification (on by default) and an optional client certificate."""

    cert_file: str | None = Field(
        None,
        description="PEM client certificate (with any intermediates) for collectors that authenticate "
        "senders (mutual TLS).",
        examples=["/etc/logferry/client.crt"],
    )
    key_file: str | None = Field(
        None, description="PEM private key of cert_file.", examples=["/etc/logferry/client.key"]
    )
    key_password: Secret | None = Field(
        None,
        description="Password of an encrypted key_file, by reference.",
        examples=["${env:CLIENT_KEY_PASSWORD}"],
    )

    @model_validator(mode="after")
    def _pair(self) -> ClientTLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError(
                "cert_file and key_file go together: give both for a client certificate, or neither"
            )
        if self.key_password is not None and self.key_file is None:
            raise ValueError("key_password is only used with key_file")
        return self

    def client_context(self) -> ssl.SSLContext:
        """A TLS 1.2+ client context; ``ValueError`` names the option whose file does not load."""
        try:
            ctx = self.settings().context()
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(
                f"tls.ca_file {self.ca_file}: {why}; give a readable PEM file of CA certificates"
            ) from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None:
            password = self.key_password.reveal() if self.key_password is not None else None
            try:
                load_cert_chain(ctx, self.cert_file, self.key_file, password)
            except ValueError as exc:
                raise ValueError(
                    f"tls.cert_file {self.cert_file} / tls.key_file {self.key_file}: {exc}; "
                    "check tls.cert_file, tls.key_file and tls.key_password"
                ) from None
        return ctx


@dataclass
class BuildContext:
    """Shared resources handed to ``build()``: HTTP sessions, the data dir, metrics."""

    data_dir: Path
    metrics: Metrics
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("logferry"))
    _sessions: dict[TLSSettings, aiohttp.ClientSession] = field(default_factory=dict)
    _limiters: dict[tuple[str, ...], RateLimiter] = field(default_factory=dict)

    def session(self, tls: TLSSettings | None = None) -> aiohttp.ClientSession:
        """One pooled session per TLS setting, shared by every component that uses it."""
        key = tls or TLSSettings()
        if key not in self._sessions:
            self._sessions[key] = make_session(key)
        return self._sessions[key]

    def limiter(self, key: tuple[str, ...], rate_per_sec: float, max_concurrent: int) -> RateLimiter:
        """One limiter per vendor credential, shared by every source that uses it.

        Vendor limits are per key (meshStack: one request at a time per API key), so two sources
        configured with the same key must share one budget. The first source's settings win.
        """
        if key not in self._limiters:
            self._limiters[key] = RateLimiter(rate_per_sec, max_concurrent=max_concurrent)
        return self._limiters[key]

    async def close(self) -> None:
        for s in self._sessions.values():
            await s.close()
        self._sessions.clear()


class SourceConfig(Model):
    type: str
    stale_after_secs: float | None = Field(
        None,
        gt=0,
        description="Health turns red when the source has had no successful poll for this long. "
        "Default: three poll intervals.",
        examples=[900],
    )
    dedupe_ttl_secs: float = Field(
        7 * 86400.0,
        gt=0,
        description="How long an event id is remembered to drop duplicates from overlapping windows.",
    )

    def build(self, name: str, ctx: BuildContext) -> Source:
        raise NotImplementedError  # every registered subclass overrides this


_WHERE_VALUE_SCHEMA: dict[str, Any] = {"type": ["string", "integer", "boolean"]}
#: What the validator accepts: a list of values, or one value standing for a one-item list.
_WHERE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {
        "anyOf": [_WHERE_VALUE_SCHEMA, {"type": "array", "items": _WHERE_VALUE_SCHEMA, "minItems": 1}]
    },
}


class SinkConfig(Model):
    type: str
    inputs: list[str] = Field(
        min_length=1, description="Names of the sources this sink takes events from.", examples=[["mesh"]]
    )
    where: Annotated[dict[str, list[WhereValue]], WithJsonSchema(_WHERE_SCHEMA)] = Field(
        default_factory=dict,
        description="Take only the records of `inputs` whose fields hold one of the listed values: "
        "FIELD: [VALUE, ...]; every listed field must match one of its values. A field is a top-level "
        "name or a dotted path into nested objects ('properties.category'); values are strings, integers "
        "or true/false and compare as text (4 matches 4 and '4'). Empty: every record. Several sinks may "
        "take one source with different conditions, e.g. one Sentinel table per category; records no "
        "sink takes are counted in logferry_source_events_unrouted_total.",
        examples=[{"category": ["SignInLogs", "NonInteractiveUserSignInLogs"]}],
    )
    outbox_max_bytes: int = Field(
        DEFAULT_OUTBOX_MAX_BYTES,
        gt=0,
        description="Byte cap of this sink's durable outbox; when full, pull sources pause (no drops).",
    )
    max_backoff_secs: float = Field(
        DEFAULT_MAX_BACKOFF_SECS,
        gt=0,
        description="Longest wait between delivery retries. Retries never stop: the outbox holds the data.",
    )

    @field_validator("where", mode="before")
    @classmethod
    def _where_is_valid(cls, v: object) -> object:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError(
                "must be a mapping of field name to accepted values, e.g. {category: [AuditLogs]}"
            )
        # A single value is a one-item list: `category: AuditLogs` reads naturally in YAML.
        v = {k: [vals] if isinstance(vals, str | int) else vals for k, vals in v.items()}
        problems = where_problems(v)
        if problems:
            raise ValueError("; ".join(problems))
        return v

    def build(self, name: str, ctx: BuildContext) -> Sink:
        raise NotImplementedError  # every registered subclass overrides this
