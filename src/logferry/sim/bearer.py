"""Checking Entra ID bearer tokens on the resource side (what Azure Monitor does with a token).

A simulated resource (the Sentinel Logs Ingestion API) validates tokens either in-process against
an :class:`~logferry.sim.entra.EntraSim` or, when the Entra simulator runs in another process,
against its JWKS URL, fetched once and cached. Both paths apply the same checks: RS256 signature,
``exp``/``nbf`` and the audience, with ``https://monitor.azure.com/`` and
``https://monitor.azure.com`` treated as the same resource.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import aiohttp
import jwt

__all__ = ["InvalidToken", "JwksValidator", "LocalValidator", "TokenValidator", "decode_token", "resource_of"]

Claims = dict[str, Any]


class InvalidToken(Exception):
    """A bearer token was refused; ``reason`` is one of expired, audience, issuer, signature, malformed."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class TokenValidator(Protocol):
    async def validate(self, token: str, audience: str) -> Claims:
        """The token's claims, or ``InvalidToken``."""
        ...


def resource_of(scope_or_resource: str) -> str:
    """The resource a scope or v1 ``resource`` names, normalised the way Entra puts it in ``aud``.

    ``https://monitor.azure.com//.default``, ``https://monitor.azure.com/.default`` and
    ``https://monitor.azure.com/`` all mean ``https://monitor.azure.com``.
    """
    resource = scope_or_resource.removesuffix(".default")
    return resource.rstrip("/")


def decode_token(token: str, key: Any, audience: str, issuer: str | Sequence[str] | None = None) -> Claims:
    """Verify an RS256 access token with ``key``; raise ``InvalidToken`` saying what is wrong."""
    try:
        return jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=resource_of(audience),
            issuer=issuer,
            options={"require": ["exp", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("expired", "The access token has expired.") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken(
            "audience", f"The access token audience is not {resource_of(audience)!r}."
        ) from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("issuer", "The access token is from a different tenant or issuer.") from None
    except jwt.InvalidSignatureError:
        raise InvalidToken("signature", "The access token signature is invalid.") from None
    except jwt.InvalidTokenError as exc:
        raise InvalidToken("malformed", f"The access token is malformed: {exc}") from None


class LocalValidator:
    """Adapts an in-process, synchronous validator (``EntraSim.validate_token``)."""

    def __init__(self, validate: Callable[[str, str], Claims]) -> None:
        self._validate = validate

    async def validate(self, token: str, audience: str) -> Claims:
        return self._validate(token, audience)


class JwksValidator:
    """Validates tokens against a JWKS URL; keys are fetched on first use and again for an unknown ``kid``.

    Refetches are at most one per ``min_refresh_secs``, so a stream of forged tokens cannot turn
    into a stream of JWKS requests.
    """

    def __init__(self, jwks_url: str, ca_file: str | None = None, min_refresh_secs: float = 30.0) -> None:
        self.jwks_url = jwks_url
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._keys: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._min_refresh_secs = min_refresh_secs
        self._fetched_at = -min_refresh_secs

    async def validate(self, token: str, audience: str) -> Claims:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError as exc:
            raise InvalidToken("malformed", f"The access token is malformed: {exc}") from None
        if not isinstance(kid, str):
            raise InvalidToken("malformed", "The access token has no key id (kid).")
        key = self._keys.get(kid)
        if key is None:
            await self._refresh(kid)
            key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("signature", f"The access token is signed with an unknown key {kid!r}.")
        return decode_token(token, key, audience)

    async def _refresh(self, kid: str) -> None:
        async with self._lock:
            now = asyncio.get_running_loop().time()
            # Another request may have fetched it while this one waited for the lock.
            if kid in self._keys or now - self._fetched_at < self._min_refresh_secs:
                return
            self._fetched_at = now
            async with aiohttp.ClientSession() as session, session.get(self.jwks_url, ssl=self._ssl) as resp:
                resp.raise_for_status()
                document = await resp.json()
            keys = jwt.PyJWKSet.from_dict(document).keys
            self._keys = {k.key_id: k.key for k in keys if k.key_id}
