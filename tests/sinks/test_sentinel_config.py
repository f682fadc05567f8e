"""SentinelConfig validation and the record encoder: pure, no sockets."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

import logferry.sinks.sentinel as sentinel_pkg
from logferry.config.secrets import Ref
from logferry.core.batcher import pack, request_size
from logferry.core.registry import SINK_TYPES
from logferry.core.sink import BatchLimits
from logferry.sinks.bodies import BodyEncoder
from logferry.sinks.sentinel import SentinelConfig
from logferry.sinks.sentinel.config import API_MAX_BYTES
from logferry.sinks.sentinel.encoder import RecordEncoder

DCR = "dcr-00112233445566778899aabbccddeeff"
TABLE = "meshStackEventLogs_CL"
EVENT_ID = "6f1c2b9e-0000-4000-8000-000000000001"
MESH_COLUMNS = {
    "TimeGenerated",
    "EventTitle",
    "EventDescription",
    "EventType",
    "WorkspaceName",
    "EventContent",
    "AuthorIdentifier",
    "AuthorType",
}


def raw_config(**overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "type": "sentinel",
        "inputs": ["mesh"],
        "endpoint": "https://my-dce-5kyl.eastus-1.ingest.monitor.azure.com",
        "dcr_immutable_id": DCR,
        "table": "meshStackEventLogs_CL",
        "auth": {
            "type": "client_secret",
            "tenant_id": "tenant",
            "client_id": "client",
            "client_secret": Ref("s3cret-value", "${env:SENTINEL_SECRET}"),
        },
    }
    cfg.update(overrides)
    return cfg


def errors_of(raw: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        SentinelConfig.model_validate(raw)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in info.value.errors()]


def mesh_record(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Building Block Run Requested",
        "eventType": "Requested",
        "description": "A run was requested",
        "workspaceRef": {"name": "likvid-mobile", "kind": "meshWorkspace"},
        "content": {"Building Block Name": "postgres", "Building Block UUID": "b1"},
        "author": {"authorType": "ApiKey", "identifier": "key-17"},
    }
    base.update(spec)
    return {
        "kind": "meshEventLog",
        "apiVersion": "v1-preview",
        "metadata": {
            "uuid": "6f1c2b9e-0000-4000-8000-000000000001",
            "createdAt": "2025-12-10T11:06:49.999377Z",
        },
        "spec": base,
        "_links": {"self": {"href": "https://mesh.example/api/meshobjects/mesheventlogs/6f1c"}},
    }


def test_package_exports_config_and_sink() -> None:
    assert sentinel_pkg.__all__ == ["SentinelConfig", "SentinelSink"]
    assert SINK_TYPES["sentinel"] is SentinelConfig


def test_validate_fills_defaults_from_cloud_and_table() -> None:
    cfg = SentinelConfig.model_validate(raw_config())
    assert cfg.batch.max_bytes == API_MAX_BYTES == 1_048_576
    assert cfg.batch.max_events == 10_000
    assert (cfg.compression, cfg.gzip_level) == ("gzip", 1)
    assert cfg.stream == "Custom-meshStackEventLogs_CL"
    assert cfg.ingest_url == (
        "https://my-dce-5kyl.eastus-1.ingest.monitor.azure.com/dataCollectionRules/"
        f"{DCR}/streams/Custom-meshStackEventLogs_CL?api-version=2023-01-01"
    )
    assert cfg.resolved_authority_host == "https://login.microsoftonline.com"
    assert cfg.resolved_token_scope == "https://monitor.azure.com/.default"


@pytest.mark.parametrize(
    ("cloud", "host", "scope"),
    [
        ("usgov", "https://login.microsoftonline.us", "https://monitor.azure.us/.default"),
        ("china", "https://login.chinacloudapi.cn", "https://monitor.azure.cn/.default"),
    ],
    ids=["usgov", "china"],
)
def test_validate_picks_sovereign_cloud_presets(cloud: str, host: str, scope: str) -> None:
    cfg = SentinelConfig.model_validate(raw_config(cloud=cloud))
    assert (cfg.resolved_authority_host, cfg.resolved_token_scope) == (host, scope)


def test_authority_host_and_token_scope_override_the_cloud() -> None:
    cfg = SentinelConfig.model_validate(
        raw_config(
            cloud="usgov", authority_host="https://login.example.test/", token_scope="api://x/.default"
        )
    )
    assert (cfg.resolved_authority_host, cfg.resolved_token_scope) == (
        "https://login.example.test",
        "api://x/.default",
    )


def test_validate_rejects_max_bytes_over_api_limit() -> None:
    errors = errors_of(raw_config(batch={"max_bytes": 2_000_000}))
    assert len(errors) == 1
    loc, msg = errors[0]
    assert loc == "batch.max_bytes"
    assert "1048576" in msg


def test_validate_accepts_max_bytes_at_the_limit_and_below() -> None:
    assert (
        SentinelConfig.model_validate(raw_config(batch={"max_bytes": 1_048_576})).batch.max_bytes == 1_048_576
    )
    assert SentinelConfig.model_validate(raw_config(batch={"max_bytes": 500_000})).batch.max_bytes == 500_000


@pytest.mark.parametrize(
    "endpoint",
    ["http://my-dce.eastus-1.ingest.monitor.azure.com", "http://10.0.0.5:8080", "ftp://dce.example.com"],
    ids=["plain-http-public-host", "plain-http-private-ip", "not-http"],
)
def test_validate_rejects_non_https_non_loopback_endpoint(endpoint: str) -> None:
    [(loc, msg)] = errors_of(raw_config(endpoint=endpoint))
    assert loc == "endpoint"
    assert "https" in msg


@pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:8443", "http://localhost:9000/"], ids=["ipv4", "localhost"]
)
def test_validate_allows_plain_http_to_a_loopback_endpoint(endpoint: str) -> None:
    assert SentinelConfig.model_validate(raw_config(endpoint=endpoint)).endpoint == endpoint.rstrip("/")


def test_validate_rejects_an_inline_secret() -> None:
    raw = raw_config()
    raw["auth"] = {**raw["auth"], "client_secret": "an-inline-secret"}
    [(loc, msg)] = errors_of(raw)
    assert loc == "auth.client_secret.client_secret"
    assert "inline" in msg and "${env:NAME}" in msg


def test_validate_rejects_an_inline_certificate() -> None:
    raw = raw_config(
        auth={"type": "certificate", "tenant_id": "t", "client_id": "c", "certificate": "-----BEGIN"}
    )
    [(loc, msg)] = errors_of(raw)
    assert loc == "auth.certificate.certificate"
    assert "inline" in msg


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"dcr_immutable_id": "dcr-XYZ"}, "dcr_immutable_id"),
        ({"table": "NoSuchTable_CL"}, "table"),
        ({"stream_name": "MyTable"}, "stream_name"),
        ({"gzip_level": 0}, "gzip_level"),
        ({"batch": {"max_events": 0}}, "batch.max_events"),
        ({"unknown_option": 1}, "unknown_option"),
        ({"auth": {"type": "managed_identity"}}, "auth"),
    ],
    ids=[
        "dcr-id-pattern",
        "unknown-table",
        "stream-prefix",
        "gzip-level",
        "zero-events",
        "extra-key",
        "auth-type",
    ],
)
def test_validate_rejects_bad_values_naming_the_field(override: dict[str, Any], field: str) -> None:
    errors = errors_of(raw_config(**override))
    assert any(loc == field for loc, _ in errors), errors


def test_validate_needs_a_stream_when_records_pass_through() -> None:
    [(_, msg)] = errors_of(raw_config(table=None))
    assert "stream_name is required" in msg
    cfg = SentinelConfig.model_validate(raw_config(table=None, stream_name="Custom-Raw_CL"))
    assert cfg.stream == "Custom-Raw_CL"


def test_secret_never_shows_in_the_config_repr_or_dump() -> None:
    cfg = SentinelConfig.model_validate(raw_config())
    assert "s3cret-value" not in repr(cfg)
    assert "s3cret-value" not in cfg.model_dump_json()


def test_encoder_maps_a_meshstack_record_to_exactly_the_eight_columns() -> None:
    [line] = RecordEncoder("meshStackEventLogs_CL").encode([mesh_record()])
    row = orjson.loads(line)
    assert set(row) == MESH_COLUMNS
    assert row["TimeGenerated"] == "2025-12-10T11:06:49.999377Z"
    assert row["EventContent"] == {"Building Block Name": "postgres", "Building Block UUID": "b1"}
    assert row["WorkspaceName"] == "likvid-mobile"
    assert (row["AuthorIdentifier"], row["AuthorType"]) == ("key-17", "ApiKey")
    assert (row["EventTitle"], row["EventType"]) == ("Building Block Run Requested", "Requested")


def test_encoder_leaves_workspace_name_out_when_workspace_ref_is_missing() -> None:
    lines = RecordEncoder("meshStackEventLogs_CL").encode([mesh_record(workspaceRef=None)])
    row = orjson.loads(lines[0])
    assert "WorkspaceName" not in row
    assert set(row) == MESH_COLUMNS - {"WorkspaceName"}


def test_encoder_adds_event_id_only_with_include_event_id() -> None:
    without = orjson.loads(RecordEncoder("meshStackEventLogs_CL").encode([mesh_record()])[0])
    with_id = orjson.loads(
        RecordEncoder("meshStackEventLogs_CL", include_event_id=True).encode([mesh_record()])[0]
    )
    assert "EventId" not in without
    assert with_id["EventId"] == EVENT_ID
    assert set(with_id) == MESH_COLUMNS | {"EventId"}


def test_encoder_passes_records_through_without_a_table() -> None:
    rec = {"a": 1, "nested": {"b": [1, 2]}, "text": "line one\nline two"}
    [line] = RecordEncoder().encode([rec])
    assert orjson.loads(line) == rec
    assert b"\n" not in line  # one line per record, even with newlines inside values


def test_encoder_writes_values_orjson_cannot_encode_as_text() -> None:
    from decimal import Decimal

    [line] = RecordEncoder().encode([{"amount": Decimal("1.50")}])
    assert orjson.loads(line) == {"amount": "1.50"}


def test_body_is_a_gzip_json_array_of_the_lines() -> None:
    limits = BatchLimits(API_MAX_BYTES, 10)
    lines = RecordEncoder("meshStackEventLogs_CL").encode([mesh_record(), mesh_record(title="second")])
    body = BodyEncoder(limits.frame, 1).compress(limits.frame(lines))
    rows = orjson.loads(gzip.decompress(body))
    assert [r["EventTitle"] for r in rows] == ["Building Block Run Requested", "second"]


def test_batcher_packs_encoded_lines_under_the_uncompressed_api_limit() -> None:
    cfg = SentinelConfig.model_validate(raw_config(batch={"max_bytes": 4096}))
    limits = BatchLimits(cfg.batch.max_bytes, cfg.batch.max_events)
    lines = RecordEncoder("meshStackEventLogs_CL").encode([mesh_record()] * 50)
    slices = list(pack(limits, lines))
    assert len(slices) > 1
    assert all(request_size(limits, lines[i:j]) <= 4096 for i, j in slices)
    assert all(len(orjson.loads(limits.frame(lines[i:j]))) == j - i for i, j in slices)
