"""Splunk HTTP Event Collector simulator, plus a generic JSON ``POST /ingest`` endpoint for the ``http`` sink.

HEC, as Splunk documents and clients observe it:

* ``POST /services/collector/event`` (also ``/services/collector`` and ``/event/1.0``): events as
  JSON objects concatenated with optional whitespace between them (no array), each
  ``{"time", "host", "source", "sourcetype", "index", "event", "fields"}``; ``Authorization: Splunk
  TOKEN``; gzip bodies with ``Content-Encoding: gzip``. Success is 200
  ``{"text":"Success","code":0}``, with ``"ackId": N`` when indexer acknowledgement is on.
* ``POST /services/collector/raw``: one event per line; always needs a channel.
* ``POST /services/collector/ack`` ``{"acks":[N,...]}`` → ``{"acks":{"N":true|false}}``. With ``ack``
  on, every data request needs ``X-Splunk-Request-Channel`` (or ``?channel=``), a UUID. An ack turns
  true ``ack_delay_secs`` after the request and is forgotten once reported true. ``POST
  /sim/restart`` plays an indexer restart: events not yet acknowledged are lost and their acks stay
  false forever, so a client must resend after its ack timeout.
* ``GET /services/collector/health`` → 200 ``{"text":"HEC is healthy","code":17}`` whatever the
  token: splunkd does not check it there (vectordotdev/vector#12098). A client checks its token by
  POSTing an empty body to the event endpoint: 400 code 5 "No data" when the token is accepted.
  ``/sim/outage`` and 503 fault rules answer every HEC route with 503 code 9 "Server is busy".

Error bodies are ``{"text", "code"}`` with Splunk's codes: 1 token disabled (403), 2 token required
(401), 3 invalid authorization (401), 4 invalid token (403), 5 no data (400), 6 invalid data format
(400), 7 incorrect index (400), 8 internal error (500), 9 server busy (503), 10 data channel missing
(400), 11 invalid data channel (400), 12 event field required (400), 13 event field blank (400), 14
ACK disabled (400), 15 error in handling indexed fields (400), 16 query string authorization not
enabled (400); event errors add ``"invalid-event-number"``, counting from 0. As splunkd does
(moby/moby#35862), the events before the first bad one are indexed and none after it; with
acknowledgement on they are stored at once, without an ackId (unconfirmed for splunkd). (Tokens
cannot be disabled here, so code 1 only comes from a fault rule's ``body``.) Choices where Splunk's
behaviour is unconfirmed: a body over ``max_content_bytes`` answers 413 ``{"text": "Content too
large"}`` (Splunk's exact body is unconfirmed); a non-numeric ``time`` is code 15; an index refused
for an event is code 7 with that event's number.

``POST /ingest`` takes a JSON array or NDJSON (``Content-Type: application/x-ndjson``), gzip or not,
authenticated by Basic, Bearer or an API-key header (any one configured credential), and answers
200 ``{"accepted": n}``. Either endpoint answers 400 to a request holding a record with the
top-level key ``sim_reject`` (a test hook for "one bad record in the batch").

``GET /sim/events?index=NAME`` reads back stored events (HEC envelopes; ``/ingest`` records are in
index ``ingest``); ``/sim/stats`` adds counts per index, pending acks and bytes received.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from .options import opt
from .registry import register
from .server import SimOptions, SimServer, decode_basic, json_response, retry_headers

__all__ = ["DEFAULT_TOKEN", "INGEST_INDEX", "REJECT_KEY", "HecOptions", "HecSim"]

DEFAULT_TOKEN = "5f1e8a2c-4b7d-4e0a-9c3f-1d2e3f4a5b6c"
RESTRICTED_TOKEN = "0a9b8c7d-6e5f-4a3b-8c1d-0e9f8a7b6c5d"
INGEST_INDEX = "ingest"
REJECT_KEY = "sim_reject"
_EVENT_PATHS = ("/services/collector", "/services/collector/event", "/services/collector/event/1.0")
#: The HEC status code each HTTP status carries when the harness injects a fault or an outage.
_FAULT_CODES = {400: 6, 401: 2, 403: 4, 500: 8, 503: 9}
_CHANNEL_HEADER = "X-Splunk-Request-Channel"


@dataclass(frozen=True, kw_only=True)
class HecOptions(SimOptions):
    tokens: str = opt(
        f"{DEFAULT_TOKEN}=*,{RESTRICTED_TOKEN}=main",
        "comma-separated TOKEN=INDEX|INDEX... ('*': any index)",
    )
    default_index: str = opt("main", "index of events that name none, for tokens allowed any index")
    ack: bool = opt(False, "indexer acknowledgement on for every token (channels required)")
    ack_delay_secs: float = opt(0.0, "seconds after a request before its ack turns true")
    max_content_bytes: int = opt(10_000_000, "largest request body (after gzip) before 413")
    store_events: bool = opt(True, "keep events for /sim/events (off: count only, for benchmarks)")
    ingest_user: str = opt("logferry", "Basic user accepted by /ingest")
    ingest_password: str = opt("ingest-password-1", "Basic password accepted by /ingest")
    ingest_bearer: str = opt("ingest-bearer-token-1", "Bearer token accepted by /ingest")
    ingest_header: str = opt(
        "X-Api-Key: ingest-api-key-1", "'NAME: VALUE' API-key header accepted by /ingest"
    )


class _Refused(Exception):
    """A request HEC refuses, with its HTTP status, HEC code and text."""

    def __init__(self, status: int, code: int | None, text: str, event: int | None = None) -> None:
        super().__init__(text)
        self.status, self.code, self.text, self.event = status, code, text, event

    def response(self) -> web.Response:
        body: dict[str, Any] = {"text": self.text}
        if self.code is not None:
            body["code"] = self.code
        if self.event is not None:
            body["invalid-event-number"] = self.event
        return json_response(body, self.status)


@dataclass
class _Channel:
    next_id: int = 0
    #: ackId → (monotonic time it gets indexed, its events): a restart before then loses them.
    waiting: dict[int, tuple[float, list[dict[str, Any]]]] = field(default_factory=dict)
    #: ackIds indexed but not yet reported true (Splunk forgets an ack once it reported it).
    indexed: set[int] = field(default_factory=set)


@register("splunk_hec")
class HecSim(SimServer[HecOptions]):
    """Splunk HEC (event, raw, ack, health) and a generic ``/ingest`` endpoint, in one server."""

    options_type = HecOptions
    max_body_bytes = 256 * 1024 * 1024  # read oversized bodies so they get HEC's 413, not aiohttp's

    def __init__(self, options: HecOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        self.tokens = _parse_tokens(self.options.tokens)
        self.events: list[dict[str, Any]] = []
        self.counts: Counter[str] = Counter()
        self.channels: dict[str, _Channel] = {}
        self.bytes_received = 0
        self.gzip_requests = 0
        self.restarts = 0

    @property
    def credentials(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "token": next(iter(self.tokens)),
            "tokens": {t: sorted(i) if i else "*" for t, i in self.tokens.items()},
            "ack": self.options.ack,
            "ingest_url": f"{self.url}/ingest",
        }

    def generated(self) -> int:
        return sum(self.counts.values())

    def extra_stats(self) -> dict[str, Any]:
        return {
            "events_by_index": dict(self.counts),
            "acks_waiting": sum(len(c.waiting) for c in self.channels.values()),
            "channels": len(self.channels),
            "bytes_received": self.bytes_received,
            "gzip_requests": self.gzip_requests,
            "restarts": self.restarts,
        }

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        hec_code = _FAULT_CODES.get(status, 8)
        text = "Server is busy" if hec_code == 9 else message
        return json_response({"text": text, "code": hec_code}, status, retry_headers(retry_after))

    def add_routes(self, app: web.Application) -> None:
        for path in _EVENT_PATHS:
            app.router.add_post(path, self._event)
        app.router.add_post("/services/collector/raw", self._raw)
        app.router.add_post("/services/collector/ack", self._ack)
        app.router.add_get("/services/collector/health", self._health)
        app.router.add_post("/ingest", self._ingest)
        app.router.add_get("/sim/events", self._read_events)
        app.router.add_post("/sim/restart", self._restart)

    # --- HEC -----------------------------------------------------------------------------------

    async def _event(self, request: web.Request) -> web.Response:
        events: list[dict[str, Any]] = []
        try:
            allowed = self._token(request)
            channel = self._channel(request, required=self.options.ack)
            values, unreadable = _split_events(await self._body(request))
            for i, value in enumerate(values):
                events.append(self._envelope(value, i, allowed))
            if unreadable is not None:
                raise unreadable
        except _Refused as exc:
            self._store(events)  # splunkd keeps the events before the first bad one
            return exc.response()
        return self._accept(events, channel)

    async def _raw(self, request: web.Request) -> web.Response:
        try:
            allowed = self._token(request)
            channel = self._channel(request, required=True)
            body = await self._body(request)
            index = request.query.get("index") or self._default_index(allowed)
            self._check_index(index, allowed, None)
            meta = {k: request.query[k] for k in ("host", "source", "sourcetype") if k in request.query}
            events = [
                {**meta, "index": index, "event": ln.decode("utf-8", "replace")} for ln in body.splitlines()
            ]
            events = [e for e in events if e["event"].strip()]
            if not events:
                raise _Refused(400, 5, "No data")
        except _Refused as exc:
            return exc.response()
        return self._accept(events, channel)

    async def _ack(self, request: web.Request) -> web.Response:
        try:
            self._token(request)
            if not self.options.ack:
                raise _Refused(400, 14, "ACK is disabled")
            channel = self._channel(request, required=True)
            body = await _json(request)
            ids = body.get("acks") if isinstance(body, dict) else None
            if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
                raise _Refused(400, 6, "Invalid data format")
        except _Refused as exc:
            return exc.response()
        assert channel is not None
        self._index_due()
        state = self.channels.get(channel, _Channel())
        answer: dict[str, bool] = {}
        for ack_id in ids:
            answer[str(ack_id)] = ack_id in state.indexed
            state.indexed.discard(ack_id)
        return json_response({"acks": answer})

    async def _health(self, request: web.Request) -> web.Response:
        return json_response({"text": "HEC is healthy", "code": 17})

    def _accept(self, events: list[dict[str, Any]], channel: str | None) -> web.Response:
        if not self.options.ack:
            self._store(events)
            return json_response({"text": "Success", "code": 0})
        assert channel is not None
        state = self.channels.setdefault(channel, _Channel())
        ack_id = state.next_id
        state.next_id += 1
        state.waiting[ack_id] = (time.monotonic() + self.options.ack_delay_secs, events)
        self._index_due()
        return json_response({"text": "Success", "code": 0, "ackId": ack_id})

    def _index_due(self) -> None:
        now = time.monotonic()
        for state in self.channels.values():
            for ack_id, (due, events) in list(state.waiting.items()):
                if due <= now:
                    self._store(events)
                    state.indexed.add(ack_id)
                    del state.waiting[ack_id]

    def _store(self, events: list[dict[str, Any]]) -> None:
        for e in events:
            self.counts[e["index"]] += 1
        if self.options.store_events:
            self.events.extend(events)

    async def _restart(self, request: web.Request) -> web.Response:
        self._index_due()
        lost = 0
        for state in self.channels.values():
            lost += sum(len(events) for _, events in state.waiting.values())
            state.waiting.clear()  # their acks stay false forever: the client must resend
        self.restarts += 1
        return json_response({"events_lost": lost})

    def _token(self, request: web.Request) -> frozenset[str]:
        """The indexes the request's token may write to (empty: any)."""
        if "token" in request.query:
            raise _Refused(400, 16, "Query string authorization is not enabled")
        header = request.headers.get("Authorization")
        if header is None:
            raise _Refused(401, 2, "Token is required")
        scheme, _, token = header.partition(" ")
        if scheme != "Splunk" or not token.strip():
            raise _Refused(401, 3, "Invalid authorization")
        allowed = self.tokens.get(token.strip())
        if allowed is None:
            raise _Refused(403, 4, "Invalid token")
        return allowed

    def _channel(self, request: web.Request, *, required: bool) -> str | None:
        channel = request.headers.get(_CHANNEL_HEADER) or request.query.get("channel")
        if channel is None:
            if required:
                raise _Refused(400, 10, "Data channel is missing")
            return None
        try:
            uuid.UUID(channel)
        except ValueError:
            raise _Refused(400, 11, "Invalid data channel") from None
        return channel

    async def _body(self, request: web.Request, allow_empty: bool = False) -> bytes:
        body = await request.read()  # aiohttp has inflated a gzip body already
        self.bytes_received += request.content_length or len(body)
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            self.gzip_requests += 1
        if (request.content_length or len(body)) > self.options.max_content_bytes:
            raise _Refused(413, None, "Content too large")
        if not allow_empty and not body.strip():
            raise _Refused(400, 5, "No data")
        return body

    def _default_index(self, allowed: frozenset[str]) -> str:
        return min(allowed) if len(allowed) == 1 else self.options.default_index

    def _check_index(self, index: Any, allowed: frozenset[str], event: int | None) -> None:
        if not isinstance(index, str) or not index or (allowed and index not in allowed):
            raise _Refused(400, 7, "Incorrect index", event)

    def _envelope(self, raw: Any, i: int, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise _Refused(400, 6, "Invalid data format", i)
        if "event" not in raw:
            raise _Refused(400, 12, "Event field is required", i)
        event = raw["event"]
        if event is None or (isinstance(event, str) and not event.strip()):
            raise _Refused(400, 13, "Event field cannot be blank", i)
        if isinstance(event, dict) and REJECT_KEY in event:
            raise _Refused(400, 6, "Invalid data format", i)
        if "time" in raw and not _is_epoch(raw["time"]):
            raise _Refused(400, 15, "Error in handling indexed fields", i)
        fields = raw.get("fields")
        if fields is not None and not _flat_fields(fields):
            raise _Refused(400, 15, "Error in handling indexed fields", i)
        index = raw.get("index") or self._default_index(allowed)
        self._check_index(index, allowed, i)
        return {**raw, "index": index}

    # --- generic /ingest -----------------------------------------------------------------------

    async def _ingest(self, request: web.Request) -> web.Response:
        if not self._ingest_authorized(request):
            return json_response({"error": "unauthorized: send Basic, Bearer or the API-key header"}, 401)
        try:
            body = await self._body(request, allow_empty=True)
        except _Refused as exc:
            return json_response({"error": exc.text}, exc.status)
        try:
            if "ndjson" in request.headers.get("Content-Type", ""):
                records = [orjson.loads(ln) for ln in body.splitlines() if ln.strip()]
            else:
                records = orjson.loads(body or b"[]")
                if not isinstance(records, list):
                    return json_response({"error": "body must be a JSON array"}, 400)
        except orjson.JSONDecodeError as exc:
            return json_response({"error": f"body is not JSON: {exc}"}, 400)
        if any(isinstance(r, dict) and REJECT_KEY in r for r in records):
            return json_response({"error": "a record was rejected (sim_reject)"}, 400)
        self._store([{"index": INGEST_INDEX, "event": r} for r in records])
        return json_response({"accepted": len(records)})

    def _ingest_authorized(self, request: web.Request) -> bool:
        o = self.options
        header = request.headers.get("Authorization", "")
        if decode_basic(header) == (o.ingest_user, o.ingest_password):
            return True
        if header == f"Bearer {o.ingest_bearer}":
            return True
        name, _, value = o.ingest_header.partition(":")
        return bool(name) and request.headers.get(name.strip()) == value.strip()

    # --- harness -------------------------------------------------------------------------------

    async def _read_events(self, request: web.Request) -> web.Response:
        self._index_due()
        index = request.query.get("index")
        events = self.events if index is None else [e for e in self.events if e["index"] == index]
        return json_response(events)


def _parse_tokens(spec: str) -> dict[str, frozenset[str]]:
    tokens: dict[str, frozenset[str]] = {}
    for item in spec.split(","):
        token, _, indexes = item.strip().partition("=")
        if not token:
            raise ValueError(f"tokens: {item!r} is not TOKEN=INDEX|INDEX or TOKEN=*")
        tokens[token] = frozenset() if indexes in ("", "*") else frozenset(indexes.split("|"))
    if not tokens:
        raise ValueError("tokens: give at least one TOKEN=INDEX")
    return tokens


def _split_events(body: bytes) -> tuple[list[Any], _Refused | None]:
    """The JSON values of a HEC body (objects one after another, with or without whitespace between),
    and the refusal of the first unreadable one, if any: those before it still count."""
    try:  # the common case, one event per line, at orjson speed
        return [orjson.loads(line) for line in body.splitlines() if line.strip()], None
    except orjson.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    text = body.decode("utf-8", "replace")
    out: list[Any] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return out, None
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return out, _Refused(400, 6, "Invalid data format", len(out))
        out.append(value)


def _is_epoch(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _flat_fields(fields: Any) -> bool:
    """Indexed fields are a flat object of strings or numbers (or lists of them)."""
    if not isinstance(fields, dict):
        return False
    scalar = (str, int, float)
    return all(
        isinstance(v, scalar) or (isinstance(v, list) and all(isinstance(x, scalar) for x in v))
        for v in fields.values()
    )


async def _json(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        raise _Refused(400, 6, "Invalid data format") from None
