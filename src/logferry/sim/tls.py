"""Self-signed certificates for the simulators' HTTPS listeners and for simulated client identities.

One server certificate (SAN ``DNS:localhost``, ``IP:127.0.0.1``) is generated per process on first use
and shared by every simulator, so a test or the demo that runs several simulators (Sentinel plus its
Entra ID) hands its clients a single CA bundle. RSA key generation costs ~0.1 s, which is also why the
certificate is made once and not per start.

Usage::

    cert = shared_server_certificate()
    site = web.TCPSite(runner, host, port, ssl_context=cert.ssl_context())
    # clients: ssl.create_default_context(cafile=cert.cert_file), requests verify=cert.cert_file
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["CertBundle", "ServerCertificate", "make_self_signed", "shared_server_certificate"]

_KEY_SIZE = 2048


@dataclass(frozen=True)
class CertBundle:
    """An RSA key and the self-signed certificate for it, as objects and as PEM."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def sha1_thumbprint(self) -> bytes:
        # Entra ID's x5t: SHA-1 of the DER certificate (RFC 7515 §4.1.7).
        return self.cert.fingerprint(hashes.SHA1())

    @property
    def sha256_thumbprint(self) -> bytes:
        return self.cert.fingerprint(hashes.SHA256())


def make_self_signed(
    common_name: str,
    *,
    dns_names: tuple[str, ...] = (),
    ip_addresses: tuple[str, ...] = (),
    server: bool = False,
    valid_days: int = 7,
) -> CertBundle:
    """Create a fresh RSA key and a self-signed certificate for it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_SIZE)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # Back-dated so a client whose clock is a little behind still accepts it.
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        # CA:TRUE like `openssl req -x509`: the certificate is its own trust anchor, and OpenSSL only
        # treats a certificate as self-issued when nothing forbids it from signing certificates.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    if server:
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    cert = builder.sign(key, hashes.SHA256())
    return CertBundle(key=key, cert=cert)


class ServerCertificate:
    """A localhost server certificate written to a private temp dir (removed at interpreter exit)."""

    def __init__(self) -> None:
        self.bundle = make_self_signed(
            "logferry-sim", dns_names=("localhost",), ip_addresses=("127.0.0.1",), server=True
        )
        self.directory = Path(tempfile.mkdtemp(prefix="logferry-sim-tls-"))
        self.cert_file = str(self.directory / "cert.pem")
        self.key_file = str(self.directory / "key.pem")
        Path(self.cert_file).write_bytes(self.bundle.cert_pem)
        key_path = Path(self.key_file)
        key_path.touch(mode=0o600)
        key_path.write_bytes(self.bundle.key_pem)
        weakref.finalize(self, shutil.rmtree, self.directory, True)

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


_shared: ServerCertificate | None = None
_shared_lock = threading.Lock()


def shared_server_certificate() -> ServerCertificate:
    """The process-wide simulator server certificate, created on first call."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ServerCertificate()
        return _shared
