"""The engine: sources, sinks, the pipeline between them. Imports no concrete connector."""

from __future__ import annotations

from logferry.core.errors import (
    AuthError,
    ConfigError,
    LogferryError,
    RateLimited,
    SourceError,
    StateError,
    VendorAPIError,
)
from logferry.core.sink import Action, BatchLimits, CheckResult, Resolution, Sink
from logferry.core.source import EmitResult, Source, SourceContext

__all__ = [
    "Action",
    "AuthError",
    "BatchLimits",
    "CheckResult",
    "ConfigError",
    "EmitResult",
    "LogferryError",
    "RateLimited",
    "Resolution",
    "Sink",
    "Source",
    "SourceContext",
    "SourceError",
    "StateError",
    "VendorAPIError",
]
