"""How a component signs in to Entra ID: one config shape for every Microsoft API.

The Sentinel sink, the Office 365 and the Graph sources all take the same ``auth`` block::

    auth:
      type: client_secret            # or: certificate
      tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
      client_id: 0b5d6c3e-1111-4222-8333-944455556666
      client_secret: ${env:APP_CLIENT_SECRET}
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from logferry.auth.entra import EntraTokenProvider, TokenVersion
from logferry.config.base import Model, TLSConfig
from logferry.config.secrets import Secret

__all__ = ["CertificateAuth", "ClientSecretAuth", "EntraAuth", "entra_provider"]

_TENANT = Field(
    description="Directory (tenant) id of the app registration.",
    examples=["72f988bf-86f1-41af-91ab-2d7cd011db47"],
    min_length=1,
)
_CLIENT = Field(
    description="Application (client) id of the app registration.",
    examples=["0b5d6c3e-1111-4222-8333-944455556666"],
    min_length=1,
)


class ClientSecretAuth(Model):
    type: Literal["client_secret"] = Field(description="Authenticate with a client secret.")
    tenant_id: str = _TENANT
    client_id: str = _CLIENT
    client_secret: Secret = Field(
        description="The app's client secret, by reference.", examples=["${env:APP_CLIENT_SECRET}"]
    )


class CertificateAuth(Model):
    type: Literal["certificate"] = Field(description="Authenticate with a certificate (no shared secret).")
    tenant_id: str = _TENANT
    client_id: str = _CLIENT
    certificate: Secret = Field(
        description="PEM text holding the private key and the certificate uploaded to the app, by reference.",
        examples=["${file:/etc/logferry/app.pem}"],
    )
    passphrase: Secret | None = Field(
        default=None,
        description="Passphrase of an encrypted private key, by reference.",
        examples=["${env:APP_CERT_PASSPHRASE}"],
    )


EntraAuth = Annotated[ClientSecretAuth | CertificateAuth, Field(discriminator="type")]


def entra_provider(
    auth: ClientSecretAuth | CertificateAuth,
    *,
    scope: str,
    authority_host: str,
    tls: TLSConfig,
    tenant_id: str | None = None,
    version: TokenVersion = "v2",
) -> EntraTokenProvider:
    """A token provider for ``scope``; ``tenant_id`` signs in to another tenant than the app's
    own (a multi-tenant app consented there)."""
    verify: bool | str = tls.ca_file if (tls.verify and tls.ca_file) else tls.verify
    cert = auth if isinstance(auth, CertificateAuth) else None
    return EntraTokenProvider(
        tenant_id=tenant_id or auth.tenant_id,
        client_id=auth.client_id,
        scope=scope,
        client_secret=auth.client_secret.reveal() if isinstance(auth, ClientSecretAuth) else None,
        certificate_pem=cert.certificate.reveal() if cert else None,
        passphrase=cert.passphrase.reveal() if cert and cert.passphrase else None,
        authority_host=authority_host,
        verify=verify,
        version=version,
    )
