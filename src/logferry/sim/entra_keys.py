"""Key material of the Entra ID simulator: its token-signing key and the client's certificate.

The signing key is published as a JWKS entry shaped like Entra's (``kid`` = ``x5t`` = base64url
SHA-1 thumbprint, plus ``x5c``). The client certificate is what an app registration would hold;
:meth:`ClientCertificate.verify_assertion` applies the checks Entra applies to a
``private_key_jwt`` client assertion (RFC 7523): header thumbprint, signature, ``aud``,
``iss``/``sub`` and the validity window.
"""

from __future__ import annotations

import base64
import binascii
import shutil
import tempfile
import weakref
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from jwt.algorithms import RSAAlgorithm

from .bearer import Claims, decode_token
from .tls import CertBundle, make_self_signed

__all__ = ["AssertionRejected", "ClientCertificate", "SigningKey"]

#: Clock skew Entra tolerates on client assertions.
_ASSERTION_LEEWAY_SECS = 300


class AssertionRejected(Exception):
    """A client assertion was refused; ``code`` is the AADSTS number Entra would report."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SigningKey:
    """The simulator's RS256 token-signing key."""

    def __init__(self) -> None:
        self.bundle = make_self_signed("logferry-sim-entra-signing")
        self.kid = _b64url(self.bundle.sha1_thumbprint)

    def jwk(self, issuer: str) -> dict[str, Any]:
        jwk: dict[str, Any] = dict(RSAAlgorithm.to_jwk(self.bundle.key.public_key(), as_dict=True))
        der = self.bundle.cert.public_bytes(serialization.Encoding.DER)
        jwk.update(kid=self.kid, x5t=self.kid, use="sig", x5c=[base64.b64encode(der).decode()], issuer=issuer)
        return jwk

    def sign(self, claims: Claims) -> str:
        return jwt.encode(
            claims, self.bundle.key, algorithm="RS256", headers={"kid": self.kid, "x5t": self.kid}
        )

    def verify(self, token: str, audience: str, issuer: str | Sequence[str]) -> Claims:
        return decode_token(token, self.bundle.key.public_key(), audience, issuer)


class ClientCertificate:
    """The certificate registered for the simulated app, with PEM/PFX files a client can load."""

    def __init__(self) -> None:
        self.bundle: CertBundle = make_self_signed("logferry-sim-client")
        self.directory: Path | None = None

    @property
    def sha1_hex(self) -> str:
        """The thumbprint as the Azure portal shows it (and msal's ``thumbprint`` takes)."""
        return self.bundle.sha1_thumbprint.hex().upper()

    def write_files(self) -> dict[str, str]:
        """Write key+cert PEM, cert-only PEM and PFX into a private temp dir; returns their paths."""
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="logferry-sim-entra-"))
            # Removed on stop; the finalizer covers a simulator that is never stopped.
            weakref.finalize(self, shutil.rmtree, self.directory, True)
        files = {
            "certificate_file": self.directory / "client.pem",
            "certificate_cert_file": self.directory / "client-cert.pem",
            "certificate_pfx_file": self.directory / "client.pfx",
        }
        pfx = pkcs12.serialize_key_and_certificates(
            b"logferry-sim-client", self.bundle.key, self.bundle.cert, None, serialization.NoEncryption()
        )
        contents = {
            "certificate_file": self.bundle.key_pem + self.bundle.cert_pem,
            "certificate_cert_file": self.bundle.cert_pem,
            "certificate_pfx_file": pfx,
        }
        for name, path in files.items():
            path.touch(mode=0o600)
            path.write_bytes(contents[name])
        return {name: str(path) for name, path in files.items()}

    def remove_files(self) -> None:
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def verify_assertion(self, assertion: str, client_id: str, token_endpoints: Collection[str]) -> Claims:
        """Check a client assertion signed with this certificate's key; raise ``AssertionRejected``."""
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError:
            raise AssertionRejected(50027, "JWT token is invalid or malformed.") from None
        if not self._thumbprint_matches(header):
            raise AssertionRejected(
                700027,
                "The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{header.get('x5t#S256') or header.get('x5t')}', Configured keys: '{self.sha1_hex}']",
            )
        try:
            claims = jwt.decode(
                assertion,
                self.bundle.key.public_key(),
                algorithms=["RS256", "PS256"],
                audience=list(token_endpoints),
                leeway=_ASSERTION_LEEWAY_SECS,
                options={"require": ["exp", "aud", "iss", "sub"]},
            )
        except jwt.InvalidSignatureError:
            raise AssertionRejected(700027, "Client assertion failed signature validation.") from None
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError):
            raise AssertionRejected(700024, "Client assertion is not within its valid time range.") from None
        except jwt.InvalidAudienceError:
            # Unconfirmed code: Entra's exact AADSTS number for a wrong assertion `aud` is not documented.
            raise AssertionRejected(
                50027,
                f"Invalid JWT token. The client assertion audience must be one of {sorted(token_endpoints)}.",
            ) from None
        except jwt.InvalidTokenError as exc:
            raise AssertionRejected(50027, f"JWT token is invalid or malformed: {exc}") from None
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise AssertionRejected(
                700021, "Client assertion application identifier doesn't match 'client_id' parameter."
            )
        return claims

    def _thumbprint_matches(self, header: dict[str, Any]) -> bool:
        expected = {"x5t": self.bundle.sha1_thumbprint, "x5t#S256": self.bundle.sha256_thumbprint}
        given = {k: _unb64url(v) for k, v in header.items() if k in expected and isinstance(v, str)}
        return bool(given) and all(given[k] == expected[k] for k in given)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64url(text: str) -> bytes | None:
    # msal and azure-identity send thumbprints with '=' padding, other clients without.
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except (binascii.Error, ValueError):
        return None
