"""Reading HEC's answers: ``{"text", "code", "invalid-event-number"}``, ``ackId`` and ack states."""

from __future__ import annotations

import orjson

from logferry.sinks.http_post import ApiResponse, clip, default_error_text

__all__ = ["ack_id", "acked", "hec_code", "hec_error_text"]


def hec_error_text(resp: ApiResponse) -> str:
    """``HTTP 400 HEC code 6: Invalid data format (event 3 of the request)`` from HEC's error body."""
    try:
        body = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict) or "code" not in body:
        return default_error_text(resp)
    event = body.get("invalid-event-number")
    where = f" (event {event} of the request)" if isinstance(event, int) else ""
    return clip(f"HTTP {resp.status} HEC code {body.get('code')}: {body.get('text', '')}{where}")


def hec_code(resp: ApiResponse) -> int | None:
    """HEC's ``code`` in an answer, if it has one."""
    try:
        code = orjson.loads(resp.body).get("code")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def ack_id(resp: ApiResponse) -> int | None:
    """The ``ackId`` of a successful event request, or ``None`` when the token has no acknowledgement."""
    try:
        value = orjson.loads(resp.body).get("ackId")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def acked(resp: ApiResponse, ack: int) -> bool:
    """Whether an ``/ack`` answer says ``ack`` is indexed."""
    try:
        acks = orjson.loads(resp.body).get("acks")
    except (orjson.JSONDecodeError, AttributeError):
        return False
    return isinstance(acks, dict) and acks.get(str(ack)) is True
