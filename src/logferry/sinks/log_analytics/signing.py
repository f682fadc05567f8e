"""The Data Collector API's SharedKey signature (azure_monitor.md §3.2).

The signed string holds the byte length of the body actually sent and the exact Content-Type
value, so the request must carry ``Content-Type: application/json`` with no charset parameter
(adding one makes the service answer 403 InvalidAuthorization).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from email.utils import formatdate

__all__ = ["CONTENT_TYPE", "RESOURCE", "SharedKeySigner", "rfc1123_date", "string_to_sign"]

CONTENT_TYPE = "application/json"
RESOURCE = "/api/logs"


def rfc1123_date(now: float | None = None) -> str:
    """``x-ms-date``'s format, e.g. ``Mon, 04 Apr 2016 08:00:00 GMT``."""
    return formatdate(now, usegmt=True)


def string_to_sign(content_length: int, date: str, content_type: str = CONTENT_TYPE) -> str:
    return f"POST\n{content_length}\n{content_type}\nx-ms-date:{date}\n{RESOURCE}"


class SharedKeySigner:
    """Signs requests for one workspace; the decoded key lives only inside this object."""

    __slots__ = ("_key", "_workspace_id")

    def __init__(self, workspace_id: str, shared_key: str) -> None:
        self._workspace_id = workspace_id
        self._key = base64.b64decode(shared_key, validate=True)

    def __repr__(self) -> str:
        return f"SharedKeySigner({self._workspace_id!r})"

    def signature(self, content_length: int, date: str) -> str:
        mac = hmac.new(self._key, string_to_sign(content_length, date).encode(), hashlib.sha256)
        return base64.b64encode(mac.digest()).decode()

    def authorization(self, body: bytes, date: str) -> str:
        """The ``Authorization`` header value for ``body`` sent with ``x-ms-date: date``."""
        return f"SharedKey {self._workspace_id}:{self.signature(len(body), date)}"
