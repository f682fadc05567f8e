"""Health of the Kafka source: red with a plain reason while the brokers are down, green after."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError

from logferry.config.loader import parse_config
from logferry.service import Service
from logferry.sim.peers import free_port
from logferry.sources.kafka.source import explain
from tests.conftest import read_ndjson, running, secret_ref, wait_for
from tests.sources.kafka.conftest import Broker, kafka_source


def health(svc: Service, name: str) -> Any:
    return next(c for c in svc.pipeline.status().components if c.name == name)


async def test_broker_down_at_start_turns_red_then_recovers(stopped_broker: Broker, tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    cfg = {
        "sources": {"k": kafka_source(stopped_broker.bootstrap, "t", stale_after_secs=1.5)},
        "sinks": {"out": {"type": "file", "inputs": ["k"], "path": str(out)}},
    }
    async with running(cfg, tmp_path) as svc:
        # Red, and the reason is the last error, not only the silence.
        await wait_for(lambda: "last error" in (health(svc, "k").reason or ""), timeout=30)
        reason = health(svc, "k").reason
        assert f"cannot reach Kafka brokers {stopped_broker.bootstrap}" in reason, reason
        assert "Connection refused" in reason or "brokers are down" in reason, reason
        assert "Traceback" not in reason

        stopped_broker.start()
        stopped_broker.create_topic("t")
        stopped_broker.produce("t", [{"n": 1}])
        await wait_for(lambda: out.exists() and read_ndjson(out) == [{"n": 1}], timeout=60)
        await wait_for(lambda: health(svc, "k").healthy, timeout=30)


async def test_check_says_what_is_wrong(broker: Broker, tmp_path: Path) -> None:
    broker.create_topic("present", partitions=2)

    def source(bootstrap: str, topic: str) -> Any:
        cfg = {
            "sources": {"k": kafka_source(bootstrap, topic)},
            "sinks": {"o": {"type": "stdout", "inputs": ["k"]}},
        }
        return Service(parse_config(cfg, tmp_path)).sources["k"]

    ok = await source(broker.bootstrap, "present").check()
    assert ok.ok and "present (2 partitions)" in ok.message, ok.message
    missing = await source(broker.bootstrap, "absent").check()
    assert not missing.ok and "topic 'absent' does not exist" in missing.message, missing.message
    down = await source(f"127.0.0.1:{free_port()}", "present").check()
    assert not down.ok and "cannot reach Kafka brokers" in down.message, down.message


async def test_event_hubs_connection_string_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The Kafka endpoint of a namespace that cannot be reached here (nothing listens on 127.0.0.1:9093
    # with TLS): the source fails to connect, and nothing it logs or reports holds the key.
    key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0xMjM0NTY3ODkw"
    conn = f"Endpoint=sb://127.0.0.1/;SharedAccessKeyName=listen;SharedAccessKey={key};EntityPath=signins"
    cfg = {
        "sources": {
            "eh": {
                "type": "event_hubs",
                "connection_string": secret_ref("TEST_EH_CONN", conn),
                "stale_after_secs": 1.0,
                "batch_wait_secs": 0.2,
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["eh"], "path": str(tmp_path / "out.ndjson")}},
    }
    caplog.set_level(logging.DEBUG)
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: "last error" in (health(svc, "eh").reason or ""), timeout=30)
        status = svc.pipeline.status().to_json().decode()
        assert "Event Hubs 127.0.0.1:9093 hub signins" in status
    assert caplog.records, "expected the failed connection to be logged"
    text = caplog.text + status
    assert key not in text
    assert "SharedAccessKey=" not in text


async def test_settings_librdkafka_refuses_are_a_plain_reason(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    src = kafka_source("127.0.0.1:1", "t", security_protocol="SSL", tls={"ca_file": str(missing)})
    cfg = {"sources": {"k": src}, "sinks": {"o": {"type": "stdout", "inputs": ["k"]}}}
    result = await Service(parse_config(cfg, tmp_path)).sources["k"].check()
    assert not result.ok
    assert "cannot set up the Kafka client" in result.message and "ssl.ca.location" in result.message


def test_a_poll_interval_exceeded_by_backpressure_is_not_called_unreachable() -> None:
    # librdkafka's error when the application did not call consume() for max.poll.interval.ms:
    # here, because a full outbox held reading back.
    err = explain([KafkaError(KafkaError._MAX_POLL_EXCEEDED)], "Kafka brokers b:9092 (group g)", "check x")
    text = str(err)
    assert "cannot reach" not in text and "check x" not in text, text
    assert "outbox was full" in text and "max.poll.interval" in text and "rebalanced" in text, text
    assert "resumes" in text and "read again" in text, text
