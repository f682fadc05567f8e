"""TLS settings shared by every outbound connection: verification is on unless turned off."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

__all__ = ["TLSSettings"]


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
