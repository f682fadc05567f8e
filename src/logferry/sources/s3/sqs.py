"""S3 event notifications as they arrive on SQS: which objects were created.

A bucket notifies its queue directly (``{"Records": [{"eventName": "ObjectCreated:Put", "s3":
{"bucket": {"name": …}, "object": {"key": …}}}]}``) or through an SNS topic, which wraps that
document as a string in ``Message``. Keys arrive URL-encoded with ``+`` for spaces. The test
event S3 sends when notifications are first configured (``"Event": "s3:TestEvent"``) names no
object. Anything else is not a notification: the caller dead-letters it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote_plus

import orjson

__all__ = ["Notification", "parse_notification"]


@dataclass(frozen=True)
class Notification:
    #: ``(bucket, key)`` of every object the message says was created, in message order.
    created: list[tuple[str, str]]


def parse_notification(body: str) -> Notification:
    """The created objects a message names; ``ValueError`` (with why) when it is not a notification."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"SQS message is not JSON: {exc}") from None
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str):
        return parse_notification(doc["Message"])
    if isinstance(doc, dict) and doc.get("Event") == "s3:TestEvent":
        return Notification([])
    records = doc.get("Records") if isinstance(doc, dict) else None
    if not isinstance(records, list):
        raise ValueError("SQS message is not an S3 event notification (no Records list)")
    created: list[tuple[str, str]] = []
    for rec in records:
        if not isinstance(rec, dict) or not str(rec.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = rec.get("s3")
        bucket = s3.get("bucket") if isinstance(s3, dict) else None
        obj = s3.get("object") if isinstance(s3, dict) else None
        name = bucket.get("name") if isinstance(bucket, dict) else None
        key = obj.get("key") if isinstance(obj, dict) else None
        if not isinstance(name, str) or not isinstance(key, str):
            raise ValueError("S3 event record lacks s3.bucket.name or s3.object.key")
        created.append((name, unquote_plus(key)))
    return Notification(created)
