"""The exception tree; callers catch at the level they mean.

::

    LogferryError
    ├── ConfigError                 invalid configuration (names the field and the fix)
    ├── StateError                  the state store failed or has an unknown schema
    ├── SourceError                 a source could not complete a poll
    │   ├── AuthError               credentials refused by the vendor or identity provider
    │   ├── VendorAPIError          the vendor answered with an error we cannot retry
    │   └── RateLimited             the vendor throttled us (``retry_after`` seconds, if it said)

Sinks raise nothing for destination errors: ``Sink.send`` returns a ``Resolution`` (delivered,
retry, split, reject) and the shared delivery loop acts on it.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "LogferryError",
    "RateLimited",
    "SourceError",
    "StateError",
    "VendorAPIError",
]


class LogferryError(Exception):
    """Base of every error logferry raises on purpose."""


class ConfigError(LogferryError):
    """Configuration problems, one line each: ``field.path: what is wrong and the fix``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class StateError(LogferryError):
    pass


class SourceError(LogferryError):
    pass


class AuthError(SourceError):
    pass


class VendorAPIError(SourceError):
    def __init__(self, message: str, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)


class MalformedPage(VendorAPIError):
    """An answer that is not a page of the vendor's API at all (an HTML error page with status
    200, a truncated body): its records, and where the next page is, are unknown.

    Polling retries the same position with backoff (a proxy's hiccup passes); an answer that
    stays malformed is dead-lettered with ``raw`` after a few attempts and collection steps over
    it, so one broken answer never stalls a source.
    """

    def __init__(self, message: str, raw: bytes) -> None:
        super().__init__(message)
        self.raw = raw


class RateLimited(SourceError):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)
