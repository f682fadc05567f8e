"""Claims-based security as Azure Service Bus and Event Hubs do it: SAS tokens put to ``$cbs``.

A client sends ``put-token`` to the ``$cbs`` node (application properties ``operation``, ``type``
``servicebus.windows.net:sastoken``, ``name`` = the audience; body = the token) before it attaches
to an entity. A token is ``SharedAccessSignature sr=<uri>&sig=<sig>&se=<expiry>&skn=<key name>``
with ``sig = base64(HMAC-SHA256(key, quote_plus(sr) + "\\n" + se))``; the key is used as its UTF-8
text, as Azure does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, quote_plus, urlparse

__all__ = ["SAS_TOKEN_TYPE", "Claim", "InvalidToken", "SasKey"]

SAS_TOKEN_TYPE = "servicebus.windows.net:sastoken"


class InvalidToken(Exception):
    """The token does not authorize the request; ``str()`` is the service's message (status 401)."""


@dataclass(frozen=True)
class Claim:
    """What a verified token grants: the entity path it covers ("" for the whole namespace), until when."""

    path: str
    expires: float

    def covers(self, entity: str, now: float) -> bool:
        return now < self.expires and (not self.path or self.path == entity)


@dataclass(frozen=True)
class SasKey:
    """A shared access policy: its name and key."""

    name: str
    key: str

    def verify(self, token: str, entity: str, now: float | None = None) -> Claim:
        """The claim ``token`` grants for ``entity`` (a lower-case path, "" for the namespace).

        ``InvalidToken`` says why it grants none.
        """
        scheme, _, query = token.partition(" ")
        if scheme != "SharedAccessSignature" or not query:
            raise InvalidToken("InvalidToken: the token is not a SharedAccessSignature.")
        fields = {k: v[0] for k, v in parse_qs(query.strip(), keep_blank_values=True).items()}
        resource, signature, expiry, key_name = (fields.get(k) for k in ("sr", "sig", "se", "skn"))
        if not resource or not signature or not expiry or not expiry.isdigit():
            raise InvalidToken("InvalidToken: the SharedAccessSignature needs sr, sig and se.")
        if key_name != self.name:
            raise InvalidToken(
                f"InvalidSignature: the key name {key_name!r} is not a policy of this namespace."
            )
        expected = hmac.new(
            self.key.encode("utf-8"), f"{quote_plus(resource)}\n{expiry}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(base64.b64encode(expected).decode("ascii"), signature):
            raise InvalidToken("InvalidSignature: The token has an invalid signature.")
        now = time.time() if now is None else now
        if int(expiry) <= now:
            raise InvalidToken(f"ExpiredToken: The token is expired. Expiration time: '{expiry}'.")
        granted = entity_path(resource)
        if granted and granted != entity and not entity.startswith(granted + "/"):
            raise InvalidToken(
                f"InvalidAudience: the token's resource {resource!r} does not cover {entity!r}."
            )
        return Claim(entity, float(expiry))


def entity_path(uri: str) -> str:
    """The entity a URI such as ``sb://host/hub`` names, lower-cased ("" for the namespace itself)."""
    parsed = urlparse(uri)
    path = parsed.path if parsed.scheme else uri
    return path.strip("/").lower()
