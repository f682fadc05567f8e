"""Duo request signing (specs/duo.md §1-3), shared by the connector and the simulator.

Each request carries ``Authorization: Basic base64(ikey:hexsig)`` where ``hexsig`` is a
lowercase hex HMAC of a canonical string keyed with the secret key. Two schemes are spoken:

* v2: ``date, METHOD, host, path, canon_params`` — HMAC-SHA1 (legacy) or HMAC-SHA512;
* v5 (duo_client's default since 2023): v2's lines (params empty for JSON bodies), then
  ``sha512(body)`` and ``sha512(x-duo header canon)``, always HMAC-SHA512.

The signature covers the *decoded* parameters re-encoded per RFC 3986 (``%20``, never ``+``),
so both sides canonicalise from decoded pairs and never from the raw query string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from email.utils import formatdate
from typing import Literal
from urllib.parse import parse_qsl, quote

from yarl import URL

from logferry.config.secrets import Secret
from logferry.net.http import HttpResponse

__all__ = [
    "EMPTY_SHA512",
    "DuoSigner",
    "SignatureScheme",
    "authorization",
    "canon_params",
    "canon_x_duo_headers",
    "canonical_string",
    "decoded_query",
    "hmac_hex",
]

SignatureScheme = Literal["v5", "v2-sha512", "v2-sha1"]

EMPTY_SHA512 = hashlib.sha512(b"").hexdigest()


def _encode(text: str) -> str:
    # quote() keeps letters, digits and "-._" plus what `safe` names; Duo also keeps "~".
    return quote(text.encode("utf-8"), safe="~")


def canon_params(pairs: Iterable[tuple[str, str]]) -> str:
    """``k=v&…`` of the decoded ``pairs``, RFC 3986-encoded, sorted by key then value."""
    return "&".join(f"{k}={v}" for k, v in sorted((_encode(k), _encode(v)) for k, v in pairs))


def decoded_query(query_string: str) -> list[tuple[str, str]]:
    """A received query string as decoded pairs (``+`` is a space, as urlencode sends it)."""
    return parse_qsl(query_string, keep_blank_values=True)


def canon_x_duo_headers(headers: Mapping[str, str]) -> str:
    """SHA-512 hex of the ``x-duo-*`` headers: lowercased names, sorted, ``name\\0value`` NUL-joined."""
    lowered = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-duo-"))
    return hashlib.sha512("\x00".join(part for kv in lowered for part in kv).encode("utf-8")).hexdigest()


def canonical_string(
    scheme: SignatureScheme,
    date: str,
    method: str,
    host: str,
    path: str,
    params: str,
    body: bytes = b"",
    x_duo_headers: Mapping[str, str] | None = None,
) -> str:
    lines = [date, method.upper(), host.lower(), path, params]
    if scheme == "v5":
        lines += [hashlib.sha512(body).hexdigest(), canon_x_duo_headers(x_duo_headers or {})]
    return "\n".join(lines)


def hmac_hex(skey: str, canonical: str, scheme: SignatureScheme) -> str:
    digest = hashlib.sha1 if scheme == "v2-sha1" else hashlib.sha512
    return hmac.new(skey.encode("utf-8"), canonical.encode("utf-8"), digest).hexdigest()


def authorization(ikey: str, signature: str) -> str:
    return "Basic " + base64.b64encode(f"{ikey}:{signature}".encode()).decode("ascii")


class DuoSigner:
    """A :class:`~logferry.net.http.RequestAuth` that signs every attempt afresh (new ``Date``).

    ``host`` is the configured API host (with ``:port`` when not 443), exactly what the server
    reads back from the ``Host`` header.
    """

    renew_statuses: frozenset[int] = frozenset()

    def __init__(
        self,
        ikey: str,
        skey: Secret,
        host: str,
        scheme: SignatureScheme = "v5",
        date: Callable[[], str] | None = None,
    ) -> None:
        self.ikey = ikey
        self._skey = skey
        self.host = host
        self.scheme: SignatureScheme = scheme
        self._date = date or (lambda: formatdate())

    async def apply(self, method: str, url: URL, headers: dict[str, str], body: bytes) -> object:
        date = self._date()
        headers["Date"] = date
        params = canon_params(decoded_query(url.raw_query_string))
        x_duo = {k: v for k, v in headers.items() if k.lower().startswith("x-duo-")}
        canonical = canonical_string(self.scheme, date, method, self.host, url.raw_path, params, body, x_duo)
        headers["Authorization"] = authorization(
            self.ikey, hmac_hex(self._skey.reveal(), canonical, self.scheme)
        )
        return None

    async def renew(self, handle: object, response: HttpResponse) -> bool:
        return False  # a refused signature means wrong keys, host or clock: signing again changes nothing

    def __repr__(self) -> str:
        return f"DuoSigner(ikey={self.ikey!r}, host={self.host!r}, scheme={self.scheme!r})"
