"""Options every HTTP-collector sink (``http``, ``splunk_hec``) shares, and the request body they build.

Bodies are framed by the sink's :class:`BatchLimits` and gzipped with ISA-L through
:class:`logferry.sinks.bodies.BodyEncoder` (one compressor for every HTTP sink); ``max_bytes`` counts
the uncompressed body, so a gzip body is always smaller than the cap.

The ``url`` is checked here for what both sinks refuse: credentials in it (``user:pass@``, which
would be printed by ``logferry check`` and clash with the sink's own ``Authorization``), and it may
be a secret itself (a collector URL carrying its key, such as Sumo Logic's): given by reference, it
is registered with the redactor and messages show only its origin.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, ValidatorFunctionWrapHandler, field_validator, model_validator
from yarl import URL

from logferry.config.base import Model, SinkConfig, TLSConfig, check_api_url
from logferry.config.secrets import Ref
from logferry.core.sink import BatchLimits
from logferry.observe.redact import register_secret
from logferry.sinks.bodies import BodyEncoder

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_EVENTS",
    "CollectorSinkConfig",
    "HttpBatch",
    "check_header_value",
]

DEFAULT_MAX_BYTES = 1_048_576
DEFAULT_MAX_EVENTS = 10_000
MAX_BATCH_BYTES = 100 * 1_048_576
DEFAULT_TIMEOUT_SECS = 30.0
#: C0 controls and DEL: aiohttp refuses them in a header (CR, LF) or the server cuts the value there.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_header_value(value: str, field: str) -> None:
    """Refuse a value bound for a request header that holds a control character.

    A secret read from a Kubernetes secret or an env file often ends in a newline; sent as is, every
    request would fail, so say so while the config is checked.
    """
    if _CONTROL.search(value):
        raise ValueError(
            f"{field} contains a control character (a trailing newline?): remove it from the value"
        )


class HttpBatch(Model):
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=1024,
        le=MAX_BATCH_BYTES,
        description="Largest request body before compression. Keep it under the collector's own limit "
        "(a 413 answer halves the request, so a too-high value costs round trips, not data).",
        examples=[DEFAULT_MAX_BYTES, 5_242_880],
    )
    max_events: int = Field(
        default=DEFAULT_MAX_EVENTS, gt=0, description="Most records in one request.", examples=[500]
    )


class CollectorSinkConfig(SinkConfig):
    """URL, batching, compression, timeout and TLS of a sink that POSTs batches to an HTTP collector."""

    #: Example of a valid URL for the error messages; subclasses name their own.
    url_example: ClassVar[str] = "https://collector.example.com/ingest"

    url: str = Field(description="Where requests go.", examples=["https://collector.example.com/ingest"])
    _url_by_reference: bool = PrivateAttr(default=False)
    batch: HttpBatch = Field(default_factory=lambda: HttpBatch(), description="Request size limits.")
    compression: Literal["gzip", "none"] = Field(
        default="gzip",
        description="Request body compression; gzip sends Content-Encoding: gzip.",
        examples=["none"],
    )
    gzip_level: int = Field(
        default=1,
        ge=1,
        le=9,
        description="gzip level on zlib's 1-9 scale (compressed with ISA-L: 1 → 1, 2-5 → 2, 6-9 → 3).",
        examples=[6],
    )
    timeout_secs: float = Field(
        default=DEFAULT_TIMEOUT_SECS,
        gt=0,
        description="Time limit of one request, from connecting to the last byte of the answer.",
        examples=[10],
    )
    tls: TLSConfig = Field(
        default_factory=lambda: TLSConfig.model_validate({}), description="TLS for the collector."
    )

    @model_validator(mode="wrap")
    @classmethod
    def _url_may_be_a_secret(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # Validation turns a Ref into a plain str, so remember the secret while it is still marked.
        by_reference = isinstance(data, dict) and isinstance(data.get("url"), Ref)
        if by_reference:
            register_secret(str(data["url"]))
        config = handler(data)
        config._url_by_reference = by_reference
        return config

    @field_validator("url")
    @classmethod
    def _url_is_safe(cls, v: str) -> str:
        try:
            url = check_api_url(v, cls.url_example)
        except ValueError as exc:
            raise ValueError(f"url {exc}") from None
        parsed = URL(url)
        if parsed.user is not None or parsed.password is not None:
            raise ValueError(
                "url must not contain credentials (user:password@): they would be shown in messages; "
                "give them in auth (or token) by reference"
            )
        return url

    def shown_url(self) -> str:
        """The URL as messages may show it: no query string, and only the origin when it is a secret."""
        url = URL(self.url)
        if self._url_by_reference:
            return str(url.origin())
        return str(url.with_query(None).with_fragment(None))

    def body_encoder(self, limits: BatchLimits) -> BodyEncoder:
        return BodyEncoder(limits.frame, self.gzip_level if self.compression == "gzip" else None)
