"""TLS settings shared by every outbound connection: verification is on unless turned off."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

__all__ = ["TLSSettings", "load_cert_chain"]


@dataclass(frozen=True)
class TLSSettings:
    verify: bool = True
    ca_file: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


class _NoPassphrase(Exception):
    pass


def _refuse_prompt() -> str:
    raise _NoPassphrase


def load_cert_chain(
    ctx: ssl.SSLContext, cert_file: str, key_file: str | None, passphrase: str | None
) -> None:
    """Load a certificate and its key into ``ctx``; ``ValueError`` says what is wrong.

    Without a passphrase OpenSSL would prompt on the terminal for an encrypted key (``logferry run``
    would hang at "Enter PEM pass phrase"); a callback that refuses turns that into an error.
    """
    try:
        ctx.load_cert_chain(cert_file, key_file, passphrase if passphrase is not None else _refuse_prompt)
    except _NoPassphrase:
        raise ValueError("the key is encrypted and no passphrase is set") from None
    except ssl.SSLError as exc:
        why = exc.reason or str(exc)
        raise ValueError(f"{why} (a wrong passphrase, or a key not matching the certificate)") from None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
