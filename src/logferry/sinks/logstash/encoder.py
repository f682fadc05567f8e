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
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime

import orjson

from logferry import __version__
from logferry.core.types import Record

__all__ = ["BeatsEncoder", "fingerprint"]


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
            if "@timestamp" in record or "@metadata" in record:
                out.append(dumps(_merged(record, stamp, meta)))
            elif len(body) > 2:
                # Splice the header in front of the record's own fields rather than serialize twice.
                out.append(join((head, dumps(meta), b",", memoryview(body)[1:])))
            else:
                out.append(join((head, dumps(meta), b"}")))
        return out


def _merged(record: Record, stamp: str, meta: dict[str, str]) -> Record:
    own = record.get("@metadata")
    merged = {**own, **meta} if isinstance(own, dict) else meta
    return {**record, "@timestamp": record.get("@timestamp", stamp), "@metadata": merged}
