"""Mimecast credentials on the server side: API 1.0 HMAC signatures and bindings, API 2.0 tokens.

Facts (shared/specs/mimecast.md §2-§4): an API 1.0 request carries ``x-mc-date``, a fresh
``x-mc-req-id``, ``x-mc-app-id`` and ``Authorization: MC accessKey:signature`` where the
signature is ``base64(HMAC-SHA1(base64decode(secretKey), "date:reqid:path:appKey"))``; an expired
binding answers **418** until ``/api/login/login`` (``Basic-Cloud`` email:password) re-binds the
access key. API 2.0 tokens come from ``/oauth/token`` and last ``expires_in`` = 1799 s. Both
generations belong to one Mimecast user, and the rate limit is per user across all keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "BindingExpired",
    "Credentials",
    "HmacVerifier",
    "InvalidCredentials",
    "Quota",
    "Tokens",
    "UserQuota",
    "sign",
]

#: Request ids remembered to refuse a replayed signature; far more than a test or bench sends in
#: the few minutes a captured request would be useful.
_SEEN_REQUEST_IDS = 100_000


def sign(secret_key_b64: str, date: str, request_id: str, path: str, app_key: str) -> str:
    """The API 1.0 signature, exactly as Mimecast's documentation and Sentinel's helper compute it."""
    key = base64.b64decode(secret_key_b64)
    digest = hmac.new(key, f"{date}:{request_id}:{path}:{app_key}".encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


class InvalidCredentials(Exception):
    """Authentication failed; ``code`` is the Mimecast error code put in the ``fail`` array."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BindingExpired(Exception):
    """The access key's binding has expired: HTTP 418 until the user logs in again."""


@dataclass(frozen=True)
class Credentials:
    """One Mimecast user with an API 1.0 key set and an API 2.0 client."""

    email: str
    password: str
    app_id: str
    app_key: str
    access_key: str
    secret_key: str  # base64, as the Administration Console shows it
    client_id: str
    client_secret: str

    @classmethod
    def from_seed(cls, seed: int) -> Credentials:
        rng = random.Random(f"{seed}:mimecast-credentials")

        def token(n: int) -> str:
            return base64.urlsafe_b64encode(rng.randbytes(n)).decode().rstrip("=")

        return cls(
            email="logferry-api@example.com",
            password=token(12),
            app_id=str(_uuid(rng)),
            app_key=str(_uuid(rng)),
            access_key="mYtOL3XZCOwG96BOiFTZRu" + token(48),
            secret_key=base64.b64encode(rng.randbytes(64)).decode(),
            client_id=token(24),
            client_secret=token(32),
        )


def _uuid(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class HmacVerifier:
    """Checks API 1.0 headers, refuses replayed request ids and tracks the binding's expiry."""

    def __init__(self, creds: Credentials, binding_ttl_secs: float) -> None:
        self.creds = creds
        self.binding_ttl_secs = binding_ttl_secs
        self._bound_until = self._next_expiry()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.logins = 0

    def _next_expiry(self) -> float:
        return time.monotonic() + self.binding_ttl_secs if self.binding_ttl_secs else float("inf")

    def expire_binding(self) -> None:
        self._bound_until = float("-inf")

    def verify(self, headers: dict[str, str], path: str) -> None:
        """Raise :class:`InvalidCredentials` or :class:`BindingExpired`; return on success."""
        c = self.creds
        date, req_id, app_id = (
            headers.get("x-mc-date"),
            headers.get("x-mc-req-id"),
            headers.get("x-mc-app-id"),
        )
        if not date or not req_id or not app_id:
            raise InvalidCredentials(
                "err_xdk_missing_header", "x-mc-date, x-mc-req-id and x-mc-app-id are required"
            )
        if app_id != c.app_id:
            raise InvalidCredentials("err_xdk_application_not_found", "unknown application id")
        scheme, _, value = headers.get("authorization", "").partition(" ")
        access, _, signature = value.partition(":")
        if scheme != "MC" or not signature:
            raise InvalidCredentials(
                "err_xdk_authorization_invalid", "expected Authorization: MC accessKey:signature"
            )
        if not hmac.compare_digest(access, c.access_key):
            raise InvalidCredentials("err_xdk_access_key_invalid", "unknown access key")
        expected = sign(c.secret_key, date, req_id, path, c.app_key)
        if not hmac.compare_digest(signature, expected):
            raise InvalidCredentials("err_xdk_signature_invalid", "the request signature does not match")
        if req_id in self._seen:
            raise InvalidCredentials("err_xdk_request_id_reused", "x-mc-req-id was used before")
        self._seen[req_id] = None
        if len(self._seen) > _SEEN_REQUEST_IDS:
            self._seen.popitem(last=False)
        if time.monotonic() >= self._bound_until:
            raise BindingExpired()

    def login(self, authorization: str, app_id: str | None, user_name: object, access_key: object) -> None:
        """``/api/login/login``: check ``Basic-Cloud`` email:password and re-bind the access key."""
        c = self.creds
        scheme, _, encoded = authorization.partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user, password = "", ""
        if scheme != "Basic-Cloud" or not (_same(user, c.email) and _same(password, c.password)):
            raise InvalidCredentials("err_xdk_login_failed", "invalid email address or password")
        if app_id != c.app_id:
            raise InvalidCredentials("err_xdk_application_not_found", "unknown application id")
        if user_name != c.email or access_key != c.access_key:
            raise InvalidCredentials(
                "err_xdk_binding_not_found", "no binding of this access key for this user"
            )
        self.logins += 1
        self._bound_until = self._next_expiry()


class Tokens:
    """API 2.0 bearer tokens for the one client."""

    def __init__(self, creds: Credentials, lifetime_secs: int) -> None:
        self.creds = creds
        self.lifetime_secs = lifetime_secs
        self._valid: dict[str, float] = {}
        self.issued = 0

    def issue(self, client_id: str | None, client_secret: str | None) -> dict[str, object]:
        if not (
            _same(client_id or "", self.creds.client_id)
            and _same(client_secret or "", self.creds.client_secret)
        ):
            raise InvalidCredentials("err_xdk_client_unauthorized", "client authentication failed")
        token = secrets.token_urlsafe(32)
        self._valid[token] = time.monotonic() + self.lifetime_secs
        self.issued += 1
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime_secs, "scope": ""}

    def verify(self, authorization: str) -> None:
        scheme, _, token = authorization.partition(" ")
        expires = self._valid.get(token.strip()) if scheme.lower() == "bearer" else None
        if expires is None or expires <= time.monotonic():
            raise InvalidCredentials(
                "err_xdk_client_unauthorized", "the access token is invalid or has expired"
            )

    def revoke_all(self) -> None:
        self._valid.clear()


@dataclass
class Quota:
    """What the rate-limit headers report for one response."""

    limit: int
    remaining: int
    reset_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_ms),
        }


class UserQuota:
    """``limit`` calls per ``window_secs`` for the user, whichever key or token calls (0 = no limit).

    Mimecast publishes no numbers (§4); a fixed window whose reset is reported in milliseconds is
    the simplest model that yields the documented headers and 429s.
    """

    def __init__(self, limit: int, window_secs: float) -> None:
        self.limit = limit
        self.window_secs = window_secs
        self._window_end = 0.0
        self._used = 0
        self.rejected = 0

    def take(self, now: float) -> tuple[bool, Quota]:
        if not self.limit:
            return True, Quota(0, 0, 0)
        if now >= self._window_end:
            self._window_end, self._used = now + self.window_secs, 0
        reset_ms = max(1, int((self._window_end - now) * 1000))
        if self._used >= self.limit:
            self.rejected += 1
            return False, Quota(self.limit, 0, reset_ms)
        self._used += 1
        return True, Quota(self.limit, self.limit - self._used, reset_ms)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
