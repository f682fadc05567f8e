"""The ``event_hubs`` source against the Event Hubs simulator's Kafka endpoint (TLS, SASL PLAIN
``$ConnectionString``), through the real pipeline and a file sink."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from logferry.sim.eventhubs import EventHubsSim
from tests.conftest import read_ndjson, running, secret_ref, wait_for
from tests.sources.kafka.conftest import SESSION_TIMEOUT_SECS
from tests.sources.kafka.test_delivery import envelope


def publish(sim: EventHubsSim, messages: list[dict[str, Any]]) -> None:
    """Send as Azure diagnostic settings would: one envelope per event, through the same login."""
    assert sim.kafka is not None and sim.ca_file is not None
    producer = Producer(sim.kafka.client_props("127.0.0.1", sim.ca_file))
    reports: list[Any] = []
    for m in messages:
        producer.produce(sim.options.hub, orjson.dumps(m), on_delivery=lambda e, _: reports.append(e))
    assert producer.flush(15) == 0 and reports == [None] * len(messages), reports


def config(sim: EventHubsSim, conn: str, out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "sources": {
            "eh": {
                "type": "event_hubs",
                "connection_string": secret_ref("TEST_EH_ENDPOINT_CS", conn),
                "consumer_group": "logferry",
                "tls": {"ca_file": sim.ca_file},
                "batch_wait_secs": 0.2,
                # Tansu holds a group's first JoinGroup for about half the session timeout.
                "session_timeout_secs": SESSION_TIMEOUT_SECS,
                **extra,
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["eh"], "path": str(out), "rotate_max_bytes": 0}},
    }


def health(svc: Any) -> Any:
    return next(c for c in svc.pipeline.status().components if c.name == "eh")


async def test_diagnostic_envelopes_are_read_through_the_connection_string_login(
    kafka_namespace: EventHubsSim, tmp_path: Path
) -> None:
    await asyncio.to_thread(publish, kafka_namespace, [envelope(5, 5 * i) for i in range(20)])
    out = tmp_path / "out.ndjson"
    conn = kafka_namespace.credentials["kafka_connection_string"]
    async with running(config(kafka_namespace, conn, out), tmp_path) as svc:
        await wait_for(lambda: out.exists() and len(read_ndjson(out)) >= 100, timeout=60)
        assert health(svc).healthy
    assert sorted(r["properties"]["seq"] for r in read_ndjson(out)) == list(range(100))
    assert kafka_namespace.kafka is not None and kafka_namespace.kafka.counters["auth_failures"] == 0


async def test_a_refused_key_turns_health_red_with_the_reason_and_without_the_key(
    kafka_namespace: EventHubsSim, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(publish, kafka_namespace, [envelope(1, 0)])
    wrong_key = base64.b64encode(b"r" * 32).decode()
    conn = kafka_namespace.credentials["kafka_connection_string"].replace(kafka_namespace.sas.key, wrong_key)
    out = tmp_path / "out.ndjson"
    caplog.set_level(logging.DEBUG)
    # A refusal is reported at once as the last error; health turns red after stale_after_secs.
    async with running(config(kafka_namespace, conn, out, stale_after_secs=1.0), tmp_path) as svc:
        await wait_for(lambda: "SharedAccessKey is not valid" in (health(svc).reason or ""), timeout=30)
        assert not health(svc).healthy and "refused the credentials" in health(svc).reason
        status = svc.pipeline.status().to_json().decode()
    assert not out.exists() or read_ndjson(out) == []
    for text in (caplog.text, status):
        assert wrong_key not in text and kafka_namespace.sas.key not in text
