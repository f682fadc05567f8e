"""OAuth2 client credentials (RFC 6749 §4.4) for vendors with their own token endpoint.

Mimecast API 2.0 and CrowdStrike Falcon both issue bearer tokens for a client id and secret
posted as a form; they differ only in the success status (CrowdStrike answers 201) and in the
shape of their error bodies, both handled here once. Caching and early refresh come from
:class:`CachedTokenProvider`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from logferry.auth.tokens import CachedTokenProvider, Token
from logferry.config.secrets import Secret
from logferry.core.errors import AuthError
from logferry.net.http import HttpClient

__all__ = ["ClientCredentials", "vendor_error_message"]

#: Used when a token response omits ``expires_in``: the shortest lifetime these vendors issue.
DEFAULT_LIFETIME_SECS = 1799.0


def vendor_error_message(body: bytes) -> str:
    """The human part of an error body, whichever of the common shapes the vendor uses:
    OAuth2 (``error_description``), CrowdStrike (``errors[].message``), Mimecast
    (``fail[].errors[].message`` or ``fail[].message``), Cisco (``errors[].details``)."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip()
    if not isinstance(doc, dict):
        return str(doc)[:200]
    if doc.get("error_description") or doc.get("error"):
        return str(doc.get("error_description") or doc.get("error"))
    for key in ("errors", "fail"):
        items = doc.get(key)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            first = items[0]
            nested = first.get("errors")
            if isinstance(nested, list) and nested and isinstance(nested[0], dict):
                first = nested[0]
            for field in ("message", "description", "details", "code"):
                if first.get(field):
                    return str(first[field])
    if doc.get("message"):
        return str(doc["message"])
    return orjson.dumps(doc)[:200].decode()


class ClientCredentials(CachedTokenProvider):
    """Tokens from ``token_url`` for a client id and secret (form-encoded, as both vendors want).

    ``http`` should be a client without ``auth`` (the token request carries the secret in its
    body); ``extra`` adds vendor fields such as CrowdStrike's ``member_cid``.
    """

    def __init__(
        self,
        http: HttpClient,
        token_url: str,
        client_id: str,
        client_secret: Secret,
        *,
        vendor: str,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._http = http
        self._url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._vendor = vendor
        self._extra = dict(extra or {})

    async def fetch(self) -> Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.reveal(),
            **self._extra,
        }
        resp = await self._http.request("POST", self._url, data=form, passthrough=(400, 401, 403))
        if resp.status not in (200, 201):
            raise AuthError(
                f"{self._vendor} refused the client credentials of {self._client_id!r} "
                f"(HTTP {resp.status}): {vendor_error_message(resp.body)}"
            )
        try:
            body = resp.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME_SECS)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise AuthError(f"{self._vendor} token endpoint returned no access_token") from exc
        if not token:
            raise AuthError(f"{self._vendor} token endpoint returned an empty access_token")
        return token, lifetime

    def __repr__(self) -> str:
        return f"ClientCredentials({self._vendor}, client_id={self._client_id!r})"
