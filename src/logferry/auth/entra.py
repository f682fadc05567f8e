"""Entra ID (Azure AD) app-only tokens through msal, Microsoft's own client.

Client secret or certificate (PEM holding the private key and the certificate), any
authority host (sovereign clouds: ``https://login.microsoftonline.us``,
``https://login.chinacloudapi.cn``) and any scope. msal is synchronous, so token requests
run in a worker thread; caching and single-flight refresh come from ``CachedTokenProvider``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from logferry.auth.tokens import CachedTokenProvider, Token
from logferry.core.errors import AuthError

__all__ = ["KNOWN_AUTHORITY_HOSTS", "EntraTokenProvider", "certificate_credential"]

#: Hosts msal knows; any other host (a private simulator, a proxy) skips instance discovery.
KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)


class _ConfiguredVerifySession(requests.Session):
    """A requests session whose ``verify`` setting wins over REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE.

    requests lets those environment variables override a session's CA bundle
    (psf/requests#3829), which would silently ignore a configured ``tls.ca_file``.
    Proxies and the rest of the environment still apply.
    """

    def merge_environment_settings(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        settings: dict[str, Any] = super().merge_environment_settings(*args, **kwargs)
        settings["verify"] = self.verify
        return settings


def certificate_credential(pem: str) -> dict[str, str]:
    """msal's certificate credential from one PEM holding the key and the certificate."""
    cert_pem = pem[pem.index("-----BEGIN CERTIFICATE-----") :] if "BEGIN CERTIFICATE" in pem else ""
    if not cert_pem or "PRIVATE KEY-----" not in pem:
        raise AuthError("the certificate PEM must contain both the private key and the certificate")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return {
        "private_key": pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),
        "public_certificate": cert_pem,
    }


class EntraTokenProvider(CachedTokenProvider):
    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        scope: str,
        client_secret: str | None = None,
        certificate_pem: str | None = None,
        authority_host: str = "https://login.microsoftonline.com",
        verify: bool | str = True,
    ) -> None:
        super().__init__()
        if (client_secret is None) == (certificate_pem is None):
            raise AuthError("give exactly one of client_secret or certificate")
        credential: Any = (
            client_secret if client_secret is not None else certificate_credential(certificate_pem or "")
        )
        host = authority_host.rstrip("/")
        self.scope = scope
        http: requests.Session | None = None
        if verify is not True:
            http = _ConfiguredVerifySession()
            http.verify = verify
        self._app = msal.ConfidentialClientApplication(
            client_id,
            client_credential=credential,
            authority=f"{host}/{tenant_id}",
            verify=verify,
            http_client=http,
            instance_discovery=host.removeprefix("https://") in KNOWN_AUTHORITY_HOSTS,
            validate_authority=host.removeprefix("https://") in KNOWN_AUTHORITY_HOSTS,
        )

    async def fetch(self) -> Token:
        result = await asyncio.to_thread(self._acquire)
        if "access_token" not in result:
            code = result.get("error", "error")
            desc = str(result.get("error_description", "")).splitlines()[0:1]
            raise AuthError(f"Entra ID refused the token request: {code}: {' '.join(desc)}")
        return str(result["access_token"]), float(result.get("expires_in", 3600))

    def _acquire(self) -> dict[str, Any]:
        try:
            result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[self.scope])
        except (ValueError, OSError) as exc:  # msal raises on unreachable or invalid authorities
            raise AuthError(f"cannot reach Entra ID: {exc}") from exc
        return result

    def invalidate(self, token: str) -> None:
        super().invalidate(token)
        # msal keeps its own cache; without this it would hand back the refused token.
        self._app.remove_tokens_for_client()
