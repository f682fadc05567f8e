"""Credentials: cached bearer tokens, Entra ID through msal."""

from __future__ import annotations

from logferry.auth.entra import EntraTokenProvider
from logferry.auth.tokens import CachedTokenProvider

__all__ = ["CachedTokenProvider", "EntraTokenProvider"]
