"""Entra ID (Azure AD) app-only tokens: v2 ``scope`` through msal, v1 ``resource`` by hand.

Client secret or certificate (PEM holding the private key — encrypted with a passphrase or not —
and the certificate), any authority host (sovereign clouds: ``https://login.microsoftonline.us``,
``https://login.chinacloudapi.cn``) and either token form. The v2 endpoint (``…/oauth2/v2.0/token``
with ``scope={resource}/.default``) goes through msal, Microsoft's own client. The v1 endpoint
(``…/oauth2/token`` with ``resource=``), which the Office 365 Management API documents first and
some tenants' conditional-access setups still expect, is one form POST that msal does not offer.
Both are synchronous (msal discovers the tenant while it is constructed), so token requests run
in a worker thread; caching and single-flight refresh come from ``CachedTokenProvider``.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any, Literal

import jwt
import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from logferry.auth.tokens import CachedTokenProvider, Token
from logferry.core.errors import AuthError

__all__ = ["KNOWN_AUTHORITY_HOSTS", "EntraTokenProvider", "TokenVersion", "certificate_credential"]

#: Hosts msal knows; any other host (a private simulator, a proxy) skips instance discovery.
KNOWN_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
    }
)

TokenVersion = Literal["v1", "v2"]
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Lifetime of a client assertion (Microsoft's example uses ten minutes).
_ASSERTION_SECS = 600
_TIMEOUT_SECS = 30.0


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


def certificate_credential(pem: str, passphrase: str | None = None) -> dict[str, str]:
    """msal's certificate credential from one PEM holding the key and the certificate."""
    cert_pem = pem[pem.index("-----BEGIN CERTIFICATE-----") :] if "BEGIN CERTIFICATE" in pem else ""
    if not cert_pem or "PRIVATE KEY-----" not in pem:
        raise AuthError("the certificate PEM must contain both the private key and the certificate")
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    credential = {
        "private_key": pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex().upper(),
        "public_certificate": cert_pem,
    }
    if passphrase is not None:
        credential["passphrase"] = passphrase
    return credential


class EntraTokenProvider(CachedTokenProvider):
    """Tokens for one app registration in one tenant, for one API.

    ``scope`` is ``{resource}/.default`` (``https://manage.office.com/.default``); the v1 form sends
    the resource part. Construction does no I/O: the first ``token()`` call reaches Entra ID.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        scope: str,
        client_secret: str | None = None,
        certificate_pem: str | None = None,
        passphrase: str | None = None,
        authority_host: str = "https://login.microsoftonline.com",
        verify: bool | str = True,
        version: TokenVersion = "v2",
    ) -> None:
        super().__init__()
        if (client_secret is None) == (certificate_pem is None):
            raise AuthError("give exactly one of client_secret or certificate")
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.scope = scope
        self.resource = scope.removesuffix("/.default")
        self.version: TokenVersion = version
        self._host = authority_host.rstrip("/")
        self._secret = client_secret
        self._certificate = (
            certificate_credential(certificate_pem, passphrase) if certificate_pem is not None else None
        )
        self._verify = verify
        self._http = _ConfiguredVerifySession()
        self._http.verify = verify
        self._app: msal.ConfidentialClientApplication | None = None

    @property
    def token_endpoint(self) -> str:
        path = "oauth2/v2.0/token" if self.version == "v2" else "oauth2/token"
        return f"{self._host}/{self.tenant_id}/{path}"

    async def fetch(self) -> Token:
        acquire = self._acquire_v2 if self.version == "v2" else self._acquire_v1
        result = await asyncio.to_thread(acquire)
        if "access_token" not in result:
            code = result.get("error", "error")
            desc = str(result.get("error_description", "")).splitlines()[0:1]
            raise AuthError(f"Entra ID refused the token request: {code}: {' '.join(desc)}")
        return str(result["access_token"]), float(result.get("expires_in", 3600))

    def invalidate(self, token: str) -> None:
        super().invalidate(token)
        if self._app is not None:
            # msal keeps its own cache; without this it would hand back the refused token.
            self._app.remove_tokens_for_client()

    def _acquire_v2(self) -> dict[str, Any]:
        try:
            if self._app is None:
                known = self._host.removeprefix("https://") in KNOWN_AUTHORITY_HOSTS
                self._app = msal.ConfidentialClientApplication(
                    self.client_id,
                    client_credential=self._certificate if self._certificate is not None else self._secret,
                    authority=f"{self._host}/{self.tenant_id}",
                    verify=self._verify,
                    http_client=self._http,
                    instance_discovery=known,
                    validate_authority=known,
                )
            result: dict[str, Any] = self._app.acquire_token_for_client(scopes=[self.scope])
        except (ValueError, OSError) as exc:  # msal: unreachable or invalid authority; bad key
            raise AuthError(f"cannot reach Entra ID or load the credential: {exc}") from exc
        return result

    def _acquire_v1(self) -> dict[str, Any]:
        form = {"grant_type": "client_credentials", "client_id": self.client_id, "resource": self.resource}
        if self._certificate is not None:
            form["client_assertion_type"] = _JWT_BEARER
            form["client_assertion"] = self._assertion()
        else:
            form["client_secret"] = self._secret or ""
        try:
            resp = self._http.post(self.token_endpoint, data=form, timeout=_TIMEOUT_SECS)
        except requests.RequestException as exc:
            raise AuthError(f"cannot reach Entra ID at {self.token_endpoint}: {exc}") from exc
        try:
            body: dict[str, Any] = resp.json()
        except ValueError:
            return {"error": f"HTTP {resp.status_code}", "error_description": resp.text[:200]}
        return body

    def _assertion(self) -> str:
        """The signed JWT of Microsoft's certificate-credential flow (x5t = base64url SHA-1)."""
        assert self._certificate is not None
        passphrase = self._certificate.get("passphrase")
        try:
            key = serialization.load_pem_private_key(
                self._certificate["private_key"].encode(), passphrase.encode() if passphrase else None
            )
        except (ValueError, TypeError) as exc:
            raise AuthError(f"cannot load the certificate's private key: {exc}") from exc
        now = int(time.time())
        claims = {
            "aud": self.token_endpoint,
            "iss": self.client_id,
            "sub": self.client_id,
            "jti": str(uuid.uuid4()),
            "nbf": now,
            "exp": now + _ASSERTION_SECS,
        }
        x5t = base64.urlsafe_b64encode(bytes.fromhex(self._certificate["thumbprint"])).decode().rstrip("=")
        return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": x5t})  # type: ignore[arg-type]
