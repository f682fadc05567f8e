"""Where a resource simulator gets its bearer tokens checked (Sentinel, Key Vault, …).

Three ways, as Azure resources trust Entra ID: an :class:`EntraSim` in the same process (passed
in), a remote Entra simulator's JWKS (``entra_url``), or an Entra simulator started alongside the
resource on another port — which the guard then also stops, since whoever starts it stops it.
"""

from __future__ import annotations

from typing import Any

from .bearer import Claims, JwksValidator, LocalValidator, TokenValidator
from .entra import EntraSim

__all__ = ["EntraGuard"]


class EntraGuard:
    def __init__(self, entra: EntraSim | None, entra_url: str | None, ca_file: str | None) -> None:
        self.entra = entra
        self.entra_url = entra_url.rstrip("/") if entra_url else None
        self.ca_file = ca_file
        self._validator: TokenValidator | None = None
        self._own = False

    async def start(self, host: str, tls: bool) -> None:
        if self.entra is None and self.entra_url:
            jwks = f"{self.entra_url}/common/discovery/v2.0/keys"
            self._validator = JwksValidator(jwks, self.ca_file)
            return
        if self.entra is None:
            self.entra = EntraSim()
        if not self.entra.started:
            await self.entra.start(host=host, port=0, tls=tls)
            self._own = True
        self._validator = LocalValidator(self.entra.validate_token)

    async def stop(self) -> None:
        if self._own and self.entra is not None:
            await self.entra.stop()
            self._own = False

    async def validate(self, token: str, audience: str) -> Claims:
        """The token's claims, or ``InvalidToken``."""
        if self._validator is None:
            raise RuntimeError("the simulator is not started")
        return await self._validator.validate(token, audience)

    def credentials(self) -> dict[str, Any]:
        """What a client needs to get a token: the Entra credentials, or just the authority."""
        if self.entra is not None:
            return dict(self.entra.credentials)
        return {"authority_host": self.entra_url} if self.entra_url else {}
