"""Options every HTTP-collector sink (``http``, ``splunk_hec``) shares, and the request body they build.

Bodies are framed by the sink's :class:`BatchLimits` and gzipped with ISA-L through the Sentinel
sink's :class:`BodyEncoder` (one compressor for every HTTP sink); ``max_bytes`` counts the
uncompressed body, so a gzip body is always smaller than the cap.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from logferry.config.base import Model, SinkConfig, TLSConfig
from logferry.core.sink import BatchLimits
from logferry.sinks.sentinel.encoder import BodyEncoder

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_EVENTS",
    "CollectorSinkConfig",
    "HttpBatch",
]

DEFAULT_MAX_BYTES = 1_048_576
DEFAULT_MAX_EVENTS = 10_000
MAX_BATCH_BYTES = 100 * 1_048_576
DEFAULT_TIMEOUT_SECS = 30.0


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
    """Batching, compression, timeout and TLS of a sink that POSTs batches to an HTTP collector."""

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

    def body_encoder(self, limits: BatchLimits) -> BodyEncoder:
        return BodyEncoder(limits.frame, self.gzip_level if self.compression == "gzip" else None)
