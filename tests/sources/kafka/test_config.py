"""The librdkafka settings each config type builds, as units (the Event Hubs login itself runs against
the simulator's Kafka endpoint in test_event_hubs_endpoint.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.sources.kafka.config import EventHubsConfig, KafkaConfig
from logferry.sources.kafka.settings import ConsumerSettings, describe
from tests.conftest import secret_ref

KEY = "q1w2e3r4t5y6u7i8o9p0AbCdEfGhIjKlMnOpQrStUvW="
NAMESPACE_CS = f"Endpoint=sb://contoso-logs.servicebus.windows.net/;SharedAccessKeyName=logferry-listen;SharedAccessKey={KEY}"


def load(source: dict[str, Any], tmp_path: Path) -> Any:
    cfg = {"sources": {"s": source}, "sinks": {"o": {"type": "stdout", "inputs": ["s"]}}}
    return parse_config(cfg, tmp_path).sources["s"]


def event_hubs(tmp_path: Path, conn: str = NAMESPACE_CS, **extra: Any) -> ConsumerSettings:
    cfg = load({"type": "event_hubs", "connection_string": secret_ref("TEST_EH_CS", conn), **extra}, tmp_path)
    assert isinstance(cfg, EventHubsConfig)
    return cfg.consumer_settings("entra")


def test_event_hubs_builds_the_kafka_endpoint_settings(tmp_path: Path) -> None:
    s = event_hubs(tmp_path, event_hub="insights-logs-signinlogs", consumer_group="logferry")
    assert s.problem is None
    assert s.topics == ["insights-logs-signinlogs"]
    p = dict(s.props)
    assert p["bootstrap.servers"] == "contoso-logs.servicebus.windows.net:9093"
    assert p["security.protocol"] == "SASL_SSL"
    assert p["sasl.mechanism"] == "PLAIN"
    assert p["sasl.username"] == "$ConnectionString"
    assert p["sasl.password"] == NAMESPACE_CS
    assert p["group.id"] == "logferry"
    # TLS verified; offsets only ever committed by logferry; librdkafka debug output off.
    assert p["enable.ssl.certificate.verification"] is True
    assert p["ssl.endpoint.identification.algorithm"] == "https"
    assert p["enable.auto.commit"] is False and p["enable.auto.offset.store"] is False
    assert "debug" not in p
    assert s.envelope.unwrap_records is True


def test_event_hubs_defaults_hub_from_entity_path_and_group_to_default(tmp_path: Path) -> None:
    s = event_hubs(tmp_path, conn=NAMESPACE_CS + ";EntityPath=insights-logs-auditlogs")
    assert s.problem is None
    assert s.topics == ["insights-logs-auditlogs"]
    assert s.props["group.id"] == "$Default"


@pytest.mark.parametrize(
    ("endpoint", "bootstrap"),
    [
        ("sb://emulator.local:19093/", "emulator.local:19093"),
        ("sb://[::1]:19093/", "[::1]:19093"),
        ("sb://contoso-logs.servicebus.windows.net/", "contoso-logs.servicebus.windows.net:9093"),
    ],
)
def test_a_port_in_the_endpoint_replaces_9093(tmp_path: Path, endpoint: str, bootstrap: str) -> None:
    conn = NAMESPACE_CS.replace("sb://contoso-logs.servicebus.windows.net/", endpoint)
    s = event_hubs(tmp_path, conn=conn, event_hub="h")
    assert s.problem is None
    assert s.props["bootstrap.servers"] == bootstrap
    assert f"Event Hubs {bootstrap} hub h" in s.where


@pytest.mark.parametrize(
    ("conn", "extra", "problem"),
    [
        (NAMESPACE_CS, {}, "event_hub: required because the connection string has no EntityPath"),
        (
            NAMESPACE_CS + ";EntityPath=a",
            {"event_hub": "b"},
            "differs from the connection string's EntityPath",
        ),
        (f"SharedAccessKeyName=x;SharedAccessKey={KEY}", {"event_hub": "h"}, "has no Endpoint=sb://"),
        (
            NAMESPACE_CS.replace(".windows.net/", ".windows.net:port/"),
            {"event_hub": "h"},
            "Endpoint is not a URL like sb://",
        ),
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y",
            {"event_hub": "h"},
            "not a generated SAS token",
        ),
    ],
)
def test_event_hubs_connection_string_problems_are_named_without_the_key(
    tmp_path: Path, conn: str, extra: dict[str, Any], problem: str
) -> None:
    s = event_hubs(tmp_path, conn=conn, **extra)
    assert s.problem is not None and problem in s.problem, s.problem
    assert KEY not in s.problem and "sig=y" not in s.problem


def test_event_hubs_connection_string_must_be_a_reference(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load({"type": "event_hubs", "connection_string": NAMESPACE_CS, "event_hub": "h"}, tmp_path)
    assert "sources.s.connection_string" in str(exc.value)
    assert KEY not in str(exc.value)


def test_secrets_stay_out_of_reprs_and_descriptions(tmp_path: Path) -> None:
    s = event_hubs(tmp_path, event_hub="h")
    shown = repr(s) + str(describe(s.props)) + s.where
    assert KEY not in shown and "sasl.password" in str(describe(s.props))


def kafka(tmp_path: Path, **extra: Any) -> Any:
    return load(
        {
            "type": "kafka",
            "bootstrap_servers": ["k1:9093", "k2:9093"],
            "topics": ["t"],
            "group_id": "g",
            **extra,
        },
        tmp_path,
    )


def test_kafka_sasl_ssl_settings(tmp_path: Path) -> None:
    cfg = kafka(
        tmp_path,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="logferry",
        sasl_password=secret_ref("TEST_KAFKA_PW", "pw-123456"),
        tls={"ca_file": "/etc/ssl/corp-ca.pem"},
    )
    assert isinstance(cfg, KafkaConfig)
    p = cfg.consumer_settings("app").props
    assert p["bootstrap.servers"] == "k1:9093,k2:9093"
    assert (p["security.protocol"], p["sasl.mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (p["sasl.username"], p["sasl.password"]) == ("logferry", "pw-123456")
    assert p["ssl.ca.location"] == "/etc/ssl/corp-ca.pem"
    assert p["enable.ssl.certificate.verification"] is True


def test_kafka_plaintext_has_no_tls_or_sasl_settings(tmp_path: Path) -> None:
    p = kafka(tmp_path).consumer_settings("app").props
    assert p["security.protocol"] == "PLAINTEXT"
    assert not [k for k in p if k.startswith(("ssl.", "sasl.", "enable.ssl"))]
    assert p["auto.offset.reset"] == "earliest"


def test_kafka_tls_verification_can_be_turned_off_explicitly(tmp_path: Path) -> None:
    p = kafka(tmp_path, security_protocol="SSL", tls={"verify": False}).consumer_settings("app").props
    assert p["enable.ssl.certificate.verification"] is False
    assert p["ssl.endpoint.identification.algorithm"] == "none"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"security_protocol": "SASL_SSL"}, "SASL_SSL needs sasl_username and sasl_password"),
        ({"sasl_username": "u"}, "used only with security_protocol SASL_SSL"),
        ({"security_protocol": "SASL_PLAINTEXT"}, "security_protocol"),
        ({"bootstrap_servers": ["k1"]}, "'k1' is not host:port"),
        ({"categories": [""]}, "categories must not contain empty names"),
        ({"batch_max_events": 0}, "batch_max_events"),
    ],
)
def test_kafka_config_errors_name_the_field_and_the_fix(
    tmp_path: Path, extra: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        kafka(tmp_path, **extra)
    assert problem in str(exc.value)


def test_kafka_password_must_be_a_reference(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        kafka(tmp_path, security_protocol="SASL_SSL", sasl_username="u", sasl_password="hunter22")
    assert "sources.s.sasl_password" in str(exc.value) and "hunter22" not in str(exc.value)
