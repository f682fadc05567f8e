"""meshStack API credentials and the access tokens ``/api/login`` hands out.

The real tokens are Keycloak JWTs from the ``meshfed`` realm (meshstack.md §1.1); the simulator
signs its own with HS256 so a client that peeks at ``exp`` sees a realistic token, and rejects an
expired one with 401 so clients can exercise their refresh path.
"""

from __future__ import annotations

import base64
import hmac
import random
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from .server import decode_basic

__all__ = ["KEYCLOAK_TOKEN_PATH", "InvalidCredentials", "MeshCredentials", "MeshTokens"]

#: Keycloak realm path the form login redirects to (meshstack.md §1.1 variant A).
KEYCLOAK_TOKEN_PATH = "/auth/realms/meshfed/protocol/openid-connect/token"


class InvalidCredentials(Exception):
    """A key, user or token was not accepted; the message says why (shown in the 401 body)."""


@dataclass(frozen=True)
class MeshCredentials:
    """One API key (client id/secret) and one legacy Basic-auth API user."""

    client_id: str
    client_secret: str
    api_user: str
    api_password: str

    @classmethod
    def from_seed(cls, seed: int) -> MeshCredentials:
        rng = random.Random(f"{seed}:credentials")
        return cls(
            client_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            client_secret=_token(rng, 32),
            api_user="logferry-sim",
            api_password=_token(rng, 24),
        )

    def check_key(self, client_id: Any, client_secret: Any) -> None:
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            raise InvalidCredentials("client id and secret are required")
        if not (_same(client_id, self.client_id) and _same(client_secret, self.client_secret)):
            raise InvalidCredentials("invalid client credentials")

    def check_basic(self, header: str) -> str:
        """Validate an ``Authorization: Basic`` header; returns the rate-limit key for the API user."""
        decoded = decode_basic(header)
        if decoded is None:
            raise InvalidCredentials("malformed Basic credentials")
        user, password = decoded
        if not (_same(user, self.api_user) and _same(password, self.api_password)):
            raise InvalidCredentials("invalid API user credentials")
        return f"user:{user}"


class MeshTokens:
    """Issues and checks the bearer tokens of one simulator instance."""

    def __init__(self, lifetime_secs: int) -> None:
        self.lifetime_secs = lifetime_secs
        # 64 bytes: PyJWT warns about shorter HMAC keys.
        self._secret = secrets.token_bytes(64)
        # JWT `exp` has whole seconds, so a 1 s token could live anywhere from 0 to 1 s; the exact
        # expiry is kept here (by jti) so short lifetimes in tests expire when they should.
        self._expiry: dict[str, float] = {}
        self.issued = 0

    def issue(self, client_id: str, issuer: str) -> dict[str, Any]:
        """The token response body, shaped like meshStack's (meshstack.md §1.1)."""
        now = time.time()
        expires = now + self.lifetime_secs
        jti = str(uuid.uuid4())
        claims = {
            "exp": int(expires),
            "iat": int(now),
            "jti": jti,
            "iss": issuer,
            "typ": "Bearer",
            "azp": client_id,
            "clientId": client_id,
            "scope": "profile email",
        }
        self._forget_expired(now)
        self._expiry[jti] = expires
        self.issued += 1
        return {
            "access_token": jwt.encode(claims, self._secret, algorithm="HS256"),
            "expires_in": self.lifetime_secs,
            "refresh_expires_in": 0,
            "token_type": "Bearer",
            "not-before-policy": 0,
            "scope": "profile email",
        }

    def verify(self, token: str) -> str:
        """The rate-limit key of the token's client; ``InvalidCredentials`` if the token is bad or expired."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["jti", "azp"], "verify_exp": False},
            )
        except jwt.InvalidTokenError:
            raise InvalidCredentials("invalid token") from None
        expires = self._expiry.get(claims["jti"])
        if expires is None or time.time() >= expires:
            raise InvalidCredentials("token expired")
        return f"key:{claims['azp']}"

    def _forget_expired(self, now: float) -> None:
        if len(self._expiry) > 1000:
            self._expiry = {jti: exp for jti, exp in self._expiry.items() if exp > now}


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def _token(rng: random.Random, n: int) -> str:
    return base64.urlsafe_b64encode(rng.randbytes(n)).decode().rstrip("=")
