"""What the ``kafka`` and ``event_hubs`` sink configs build, and how they refuse bad settings.

The Event Hubs Kafka-endpoint client settings are checked here as data; test_event_hubs_kafka.py
runs them against the simulator's endpoint (TLS, SASL PLAIN), the other modules against Tansu.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.net.kafka import describe
from logferry.observe.metrics import Metrics
from logferry.sim.tls import shared_server_certificate
from logferry.sinks.kafka.amqp import AmqpSink
from logferry.sinks.kafka.producer import KafkaSink
from tests.conftest import secret_ref
from tests.sinks.kafka.conftest import full

KEY = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5PQ=="
EMULATOR_CS = (
    f"Endpoint=sb://localhost/;SharedAccessKeyName=k;SharedAccessKey={KEY};UseDevelopmentEmulator=true"
)
NAMESPACE_CS = f"Endpoint=sb://contoso-siem.servicebus.windows.net/;SharedAccessKeyName=logferry-send;SharedAccessKey={KEY}"


def build(entry: dict[str, Any], tmp_path: Path) -> Any:
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    return parse_config(full(entry), tmp_path).sinks["dst"].build("dst", ctx)


def event_hubs(conn: str = NAMESPACE_CS, **extra: Any) -> dict[str, Any]:
    return {"type": "event_hubs", "connection_string": secret_ref("TEST_EH_SINK_CS", conn), **extra}


def test_event_hubs_kafka_endpoint_settings(tmp_path: Path) -> None:
    sink = build(event_hubs(event_hub="securityevents", compression="gzip"), tmp_path)
    assert isinstance(sink, KafkaSink)
    s = sink.settings
    p = dict(s.props)
    assert s.topic == "securityevents"
    assert p["bootstrap.servers"] == "contoso-siem.servicebus.windows.net:9093"
    assert (p["security.protocol"], p["sasl.mechanism"]) == ("SASL_SSL", "PLAIN")
    assert (p["sasl.username"], p["sasl.password"]) == ("$ConnectionString", NAMESPACE_CS)
    assert p["enable.ssl.certificate.verification"] is True
    assert p["ssl.endpoint.identification.algorithm"] == "https"
    assert (p["enable.idempotence"], p["acks"], p["compression.type"]) == (True, "all", "gzip")
    assert p["allow.auto.create.topics"] is False
    # Event Hubs refuses events over 1 MB: our cap plus librdkafka's framing allowance stays below.
    assert int(p["message.max.bytes"]) <= 1_046_528
    assert p["client.id"] == "logferry-dst"
    # Nothing that is shown carries the key.
    shown = repr(s) + str(describe(p)) + s.where + s.hint
    assert KEY not in shown and "contoso-siem.servicebus.windows.net:9093" in s.where


def test_event_hubs_hub_defaults_to_the_entity_path(tmp_path: Path) -> None:
    sink = build(event_hubs(NAMESPACE_CS + ";EntityPath=audit"), tmp_path)
    assert sink.settings.topic == "audit"


@pytest.mark.parametrize(
    ("conn", "extra", "problem"),
    [
        (NAMESPACE_CS, {}, "sinks.dst.event_hub: required because the connection string has no EntityPath"),
        (NAMESPACE_CS + ";EntityPath=a", {"event_hub": "b"}, "a hub-level policy can write only its own hub"),
        (
            f"SharedAccessKeyName=x;SharedAccessKey={KEY}",
            {"event_hub": "h"},
            "sinks.dst.connection_string: the connection string has no Endpoint",
        ),
        (
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y",
            {"event_hub": "h"},
            "not a generated SAS token",
        ),
        (
            NAMESPACE_CS + ";UseDevelopmentEmulator=true",
            {"event_hub": "h"},
            "supported with protocol: amqp only",
        ),
        (
            NAMESPACE_CS + ";UseDevelopmentEmulator=true",
            {"event_hub": "h", "protocol": "amqp"},
            "allowed only for a local emulator",
        ),
        (
            EMULATOR_CS,
            {"event_hub": "h", "protocol": "amqp", "amqp_endpoint": "sb://192.0.2.2:5672"},
            "sinks.dst.amqp_endpoint: UseDevelopmentEmulator=true in the connection string turns TLS off",
        ),
        (
            f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKey={KEY};EntityPath=h",
            {"protocol": "amqp"},
            "sinks.dst.connection_string: the connection string has no SharedAccessKeyName",
        ),
        (
            NAMESPACE_CS,
            {"event_hub": "h", "protocol": "amqp", "amqp_endpoint": "sb://proxy.corp.example:99999"},
            "amqp_endpoint must look like sb://HOST:PORT, got 'sb://proxy.corp.example:99999'",
        ),
        (
            NAMESPACE_CS,
            {"event_hub": "h", "protocol": "amqp", "amqp_endpoint": "sb://proxy.corp.example:abc"},
            "amqp_endpoint must look like sb://HOST:PORT",
        ),
    ],
)
def test_event_hubs_connection_problems_name_the_field_without_the_key(
    tmp_path: Path, conn: str, extra: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        build(event_hubs(conn, **extra), tmp_path)
    assert problem in str(exc.value), str(exc.value)
    assert KEY not in str(exc.value) and "sig=y" not in str(exc.value)


def test_the_emulator_is_allowed_through_a_local_amqp_endpoint(tmp_path: Path) -> None:
    entry = event_hubs(EMULATOR_CS, event_hub="h", protocol="amqp", amqp_endpoint="sb://127.0.0.1:5672")
    assert isinstance(build(entry, tmp_path), AmqpSink)


def test_event_hubs_amqp_builds_the_sdk_sink(tmp_path: Path) -> None:
    sink = build(
        event_hubs(event_hub="h", protocol="amqp", amqp_endpoint="sb://proxy.corp.example:5671"), tmp_path
    )
    assert isinstance(sink, AmqpSink)
    assert KEY not in sink.where


def test_the_connection_string_must_be_a_reference(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        build({"type": "event_hubs", "connection_string": NAMESPACE_CS, "event_hub": "h"}, tmp_path)
    assert "sinks.dst.connection_string" in str(exc.value) and KEY not in str(exc.value)


@pytest.mark.parametrize(
    "entry",
    [
        event_hubs(event_hub="h"),
        event_hubs(event_hub="h", protocol="amqp"),
        {"type": "kafka", "bootstrap_servers": ["k1:9093"], "topic": "logs", "security_protocol": "SSL"},
    ],
    ids=["event_hubs-kafka", "event_hubs-amqp", "kafka"],
)
@pytest.mark.parametrize(("content", "why"), [(None, "No such file"), (b"not a certificate", "")])
def test_a_ca_file_that_does_not_load_is_refused_at_build_naming_the_field(
    tmp_path: Path, entry: dict[str, Any], content: bytes | None, why: str
) -> None:
    ca = tmp_path / "ca.pem"
    if content is not None:
        ca.write_bytes(content)
    with pytest.raises(ConfigError) as exc:
        build({**entry, "tls": {"ca_file": str(ca)}}, tmp_path)
    assert f"sinks.dst.tls.ca_file {ca}: {why}" in str(exc.value), str(exc.value)
    assert KEY not in str(exc.value)


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_event_hubs_refuses_codecs_other_than_gzip_with_the_reason(tmp_path: Path, codec: str) -> None:
    with pytest.raises(ConfigError) as exc:
        build(event_hubs(event_hub="h", compression=codec), tmp_path)
    assert "supports gzip compression only" in str(exc.value), str(exc.value)
    assert build(kafka(compression=codec), tmp_path).settings.props["compression.type"] == codec


def test_the_hub_name_is_compared_without_case(tmp_path: Path) -> None:
    sink = build(
        event_hubs(NAMESPACE_CS + ";EntityPath=securityevents", event_hub="SecurityEvents"), tmp_path
    )
    assert sink.settings.topic == "SecurityEvents"


def kafka(**extra: Any) -> dict[str, Any]:
    return {"type": "kafka", "bootstrap_servers": ["k1:9093", "k2:9093"], "topic": "logs", **extra}


def test_kafka_sasl_scram_and_tls(tmp_path: Path) -> None:
    sink = build(
        kafka(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="logferry",
            sasl_password=secret_ref("TEST_KAFKA_SINK_PW", "pw-98765"),
            tls={"ca_file": shared_server_certificate().cert_file},
            client_id="siem-feed",
            compression="zstd",
            max_message_bytes=2_000_000,
        ),
        tmp_path,
    )
    p = sink.settings.props
    assert p["bootstrap.servers"] == "k1:9093,k2:9093"
    assert (p["sasl.mechanism"], p["sasl.username"], p["sasl.password"]) == (
        "SCRAM-SHA-512",
        "logferry",
        "pw-98765",
    )
    assert (p["ssl.ca.location"], p["client.id"], p["compression.type"]) == (
        shared_server_certificate().cert_file,
        "siem-feed",
        "zstd",
    )
    assert int(p["message.max.bytes"]) > 2_000_000
    assert sink.limits.max_bytes >= 2 * 2_000_000
    assert "pw-98765" not in str(describe(p)) + repr(sink.settings)


def test_kafka_plaintext_has_no_tls_or_sasl(tmp_path: Path) -> None:
    p = build(kafka(), tmp_path).settings.props
    assert p["security.protocol"] == "PLAINTEXT"
    assert not [k for k in p if k.startswith(("ssl.", "sasl.", "enable.ssl"))]


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        (kafka(partition_key="field"), "partition_key: field needs partition_key_field"),
        (kafka(partition_key_field="x"), "partition_key_field is used only with partition_key: field"),
        (kafka(partition_key="region"), "partition_key"),
        (kafka(compression="brotli"), "compression"),
        (kafka(format="ndjson"), "format"),
        (kafka(max_message_bytes=10), "max_message_bytes"),
        (kafka(security_protocol="SASL_SSL"), "SASL_SSL needs sasl_username and sasl_password"),
        (kafka(bootstrap_servers=["k1"]), "'k1' is not host:port"),
        (
            event_hubs(event_hub="h", protocol="amqp", compression="gzip"),
            "compression applies to protocol kafka only",
        ),
        (
            event_hubs(event_hub="h", amqp_endpoint="sb://p:5671"),
            "amqp_endpoint is used only with protocol: amqp",
        ),
        (
            event_hubs(event_hub="h", protocol="amqp", amqp_endpoint="https://p"),
            "amqp_endpoint must look like sb://HOST:PORT",
        ),
        (event_hubs(event_hub="h", max_message_bytes=2_000_000), "max_message_bytes"),
    ],
)
def test_config_errors_name_the_field_and_the_fix(
    tmp_path: Path, entry: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(full(entry), tmp_path)
    assert problem in str(exc.value), str(exc.value)
