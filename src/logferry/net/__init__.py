"""Outbound HTTP shared by every connector: TLS, rate limits, retries."""

from __future__ import annotations

from logferry.net.http import HttpClient, HttpResponse, TokenProvider
from logferry.net.ratelimit import RateLimiter
from logferry.net.retry import Backoff, parse_retry_after
from logferry.net.tls import TLSSettings

__all__ = [
    "Backoff",
    "HttpClient",
    "HttpResponse",
    "RateLimiter",
    "TLSSettings",
    "TokenProvider",
    "parse_retry_after",
]
