"""Reading HEC's answers: ``{"text", "code", "invalid-event-number"}``, ``ackId`` and ack states."""

from __future__ import annotations

from typing import Any

import orjson

from logferry.sinks.http_post import ApiResponse, clip, default_error_text

__all__ = ["ack_id", "acked", "hec_code", "hec_error_text", "invalid_event"]


def _answer(resp: ApiResponse) -> dict[str, Any] | None:
    """HEC's JSON object, or ``None`` when the body is something else (a proxy's or web server's page)."""
    try:
        body = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def hec_error_text(resp: ApiResponse) -> str:
    """``HTTP 400 HEC code 6: Invalid data format (event 3 of the request)`` from HEC's error body."""
    body = _answer(resp)
    if body is None or "code" not in body:
        return default_error_text(resp)
    event = invalid_event(resp)
    where = f" (event {event} of the request, counting from 0)" if event is not None else ""
    return clip(f"HTTP {resp.status} HEC code {body.get('code')}: {body.get('text', '')}{where}")


def hec_code(resp: ApiResponse) -> int | None:
    """HEC's ``code`` in an answer, or ``None`` when the answer has none (it is not from HEC)."""
    body = _answer(resp)
    return None if body is None else _int(body.get("code"))


def invalid_event(resp: ApiResponse) -> int | None:
    """``invalid-event-number``: HEC indexed the events before it (counting from 0) and none after it."""
    body = _answer(resp)
    return None if body is None else _int(body.get("invalid-event-number"))


def ack_id(resp: ApiResponse) -> int | None:
    """The ``ackId`` of a successful event request, or ``None`` when the token has no acknowledgement."""
    body = _answer(resp)
    return None if body is None else _int(body.get("ackId"))


def acked(resp: ApiResponse, ack: int) -> bool:
    """Whether an ``/ack`` answer says ``ack`` is indexed."""
    body = _answer(resp)
    acks = None if body is None else body.get("acks")
    return isinstance(acks, dict) and acks.get(str(ack)) is True
