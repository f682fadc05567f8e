"""Records → Beats-shaped JSON documents, one line each, made once when a batch is committed.

Each document is the record's own fields plus what Filebeat's Logstash output adds and what
Logstash pipelines written for Filebeat read:

- ``@timestamp``: when logferry committed the record (Filebeat's is the time it read the line);
  a record that already has ``@timestamp`` keeps it. The event's own time stays in its fields.
- ``@metadata.beat`` (the ``index`` option), ``@metadata.type`` (``_doc``) and
  ``@metadata.version`` (logferry's), as Filebeat sends them.
- ``@metadata._id``: a fingerprint of the record, the SHA-1 of its JSON in hex (not a security
  use; the same value the Splunk HEC sink's ``id_field`` gives the same record). Delivery is
  at-least-once, so a resent window can arrive twice; ``document_id => "%{[@metadata][_id]}"``
  in Logstash's elasticsearch output makes the copy overwrite the original.
- ``@metadata.source``: the logferry source the record came from, for routing in the pipeline.

``@metadata`` never leaves Logstash, so none of this reaches the index unless the pipeline
copies it.

The beats input takes ``message`` (or, when there is none, ``line``) out of every event and runs
it through its codec as text (logstash-input-beats ``message_listener.rb``,
``extract_target_field``): a structured ``message`` would become a Java ``toString`` such as
``{code=4625, text=login failed}``, and a record's own ``line`` (a line number, say) would be moved
to ``message``. So the documents are shaped for that: a ``message`` that is not a string is sent as
its JSON text, the value itself kept under ``message_data`` (unless the record has that field);
a record with ``line`` but no ``message`` gets ``message`` set to the record's own JSON, so
``line`` stays where it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from logferry import __version__
from logferry.core.types import Record

__all__ = ["MESSAGE_DATA", "BeatsEncoder", "fingerprint"]

#: Where a structured ``message`` is kept next to its JSON text.
MESSAGE_DATA = "message_data"


def fingerprint(record_json: bytes) -> str:
    return hashlib.sha1(record_json, usedforsecurity=False).hexdigest()


def _now() -> str:
    # Filebeat's layout: UTC with milliseconds and a Z.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class BeatsEncoder:
    def __init__(self, index: str) -> None:
        self._index = index

    def encode(self, source: str, records: Sequence[Record]) -> list[bytes]:
        stamp = _now()
        head = b'{"@timestamp":' + orjson.dumps(stamp) + b',"@metadata":'
        base_meta: dict[str, str] = {"beat": self._index, "type": "_doc", "version": __version__}
        if source:
            base_meta["source"] = source
        dumps, join = orjson.dumps, b"".join
        out: list[bytes] = []
        for record in records:
            body = dumps(record)
            meta = {**base_meta, "_id": fingerprint(body)}
            shaped = _message_as_text(record, body)
            if shaped is not None:
                out.append(dumps(_merged(shaped, stamp, meta)))
            elif "@timestamp" in record or "@metadata" in record:
                out.append(dumps(_merged(record, stamp, meta)))
            elif len(body) > 2:
                # Splice the header in front of the record's own fields rather than serialize twice.
                out.append(join((head, dumps(meta), b",", memoryview(body)[1:])))
            else:
                out.append(join((head, dumps(meta), b"}")))
        return out


def _message_as_text(record: Record, body: bytes) -> Record | None:
    """The record with a ``message`` the beats input keeps as it is, or None if it has one already."""
    message = record.get("message")
    if isinstance(message, str):
        return None
    if message is None:
        # Logstash tests for nil, so a null message counts as none and a null line is left alone.
        if record.get("line") is None:
            return None
        return {**record, "message": body.decode()}
    shaped = {**record, "message": orjson.dumps(message).decode()}
    shaped.setdefault(MESSAGE_DATA, message)
    return shaped


def _merged(record: Record, stamp: str, meta: dict[str, str]) -> Record:
    own = record.get("@metadata")
    merged = {**own, **meta} if isinstance(own, dict) else meta
    return {**record, "@timestamp": record.get("@timestamp", stamp), "@metadata": merged}
