"""Config checks without I/O: each mistake names the field and the fix, and never echoes the key."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from logferry.config.azure import GUID_PATTERN
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.sim.log_analytics import typed_row
from logferry.sinks.log_analytics.config import LogAnalyticsConfig

KEY = base64.b64encode(b"k" * 64).decode()
WORKSPACE = "0b5d6c3e-1111-4222-8333-944455556666"


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LA_KEY", KEY)
    monkeypatch.setenv("LA_BAD_KEY", "not base64 at all: s3cr3t-value!")
    monkeypatch.setenv("LA_UNUSED", "unused")


def parse(tmp_path: Path, **sink: Any) -> LogAnalyticsConfig:
    entry = {
        "type": "log_analytics",
        "inputs": ["src"],
        "workspace_id": WORKSPACE,
        "shared_key": "${env:LA_KEY}",
        "log_type": "MimecastAudit",
        **sink,
    }
    source = {
        "type": "meshstack",
        "api_url": "https://mesh.example.com",
        "client_id": "k",
        "client_secret": "${env:LA_UNUSED}",
    }
    config = parse_config({"sources": {"src": source}, "sinks": {"dst": entry}}, tmp_path).sinks["dst"]
    assert isinstance(config, LogAnalyticsConfig)
    return config


def problems(tmp_path: Path, **sink: Any) -> str:
    with pytest.raises(ConfigError) as exc:
        parse(tmp_path, **sink)
    return "\n".join(exc.value.problems)


def test_defaults_give_the_public_cloud_url(tmp_path: Path) -> None:
    config = parse(tmp_path)
    assert config.url == f"https://{WORKSPACE}.ods.opinsights.azure.com/api/logs?api-version=2016-04-01"
    assert config.batch.max_bytes == 5_000_000


@pytest.mark.parametrize(("cloud", "host"), [("usgov", "azure.us"), ("china", "azure.cn")])
def test_sovereign_clouds_pick_their_host(tmp_path: Path, cloud: str, host: str) -> None:
    assert parse(tmp_path, cloud=cloud).url.startswith(f"https://{WORKSPACE}.ods.opinsights.{host}/api/logs?")


def test_endpoint_override_replaces_the_base_url(tmp_path: Path) -> None:
    config = parse(tmp_path, endpoint="http://127.0.0.1:8080/")
    assert config.url == "http://127.0.0.1:8080/api/logs?api-version=2016-04-01"


def test_plain_http_is_refused_off_loopback(tmp_path: Path) -> None:
    assert "sinks.dst.endpoint" in problems(tmp_path, endpoint="http://ws-proxy.example.com")


def test_workspace_id_must_be_a_guid(tmp_path: Path) -> None:
    assert "sinks.dst.workspace_id" in problems(tmp_path, workspace_id="my-workspace")


def test_a_key_that_is_not_base64_is_refused_without_echoing_it(tmp_path: Path) -> None:
    text = problems(tmp_path, shared_key="${env:LA_BAD_KEY}")
    assert "sinks.dst.shared_key" in text and "${env:LA_BAD_KEY} is not a base64 workspace key" in text
    assert "s3cr3t" not in text


def test_an_inline_key_is_refused(tmp_path: Path) -> None:
    text = problems(tmp_path, shared_key=KEY)
    assert "sinks.dst.shared_key" in text and KEY not in text


@pytest.mark.parametrize("log_type", ["MimecastAudit_CL", "MimecastAudit_cl"])
def test_log_type_with_cl_suffix_is_refused_with_the_fix(tmp_path: Path, log_type: str) -> None:
    text = problems(tmp_path, log_type=log_type)
    assert "sinks.dst.log_type" in text and "write 'MimecastAudit'" in text


@pytest.mark.parametrize("log_type", ["Mimecast-Audit", "x" * 101, ""])
def test_log_type_follows_the_api_rules(tmp_path: Path, log_type: str) -> None:
    assert "sinks.dst.log_type" in problems(tmp_path, log_type=log_type)


def test_batch_cannot_exceed_the_30_mb_post_limit(tmp_path: Path) -> None:
    assert parse(tmp_path, batch={"max_bytes": 30_000_000}).batch.max_bytes == 30_000_000
    assert "sinks.dst.batch.max_bytes" in problems(tmp_path, batch={"max_bytes": 30_000_001})


def test_the_batch_cap_error_names_the_limit_and_the_fix(tmp_path: Path) -> None:
    text = problems(tmp_path, batch={"max_bytes": 30_000_001})
    assert "exceeds the Data Collector API's 30 MB per post; set it to 30000000 or less" in text


@pytest.mark.parametrize(
    "resource_id",
    [
        "/subscriptions/0000/resourceGroups/rg\x01x",  # a control character: aiohttp refuses to send it
        "/subscriptions/a\x00b",
        "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Web/sites/café",
        "/subscriptions/0000/resource Groups/rg",
        "/subscriptions/0000/rg/\u2028x",
    ],
)
def test_azure_resource_id_must_fit_a_header(tmp_path: Path, resource_id: str) -> None:
    text = problems(tmp_path, azure_resource_id=resource_id)
    assert "sinks.dst.azure_resource_id: azure_resource_id must start with /subscriptions/" in text
    assert "printable ASCII" in text


def test_a_resource_id_of_printable_ascii_is_kept(tmp_path: Path) -> None:
    rid = "/subscriptions/0000/resourceGroups/rg(1)/providers/Microsoft.Web/sites/app-1_x.y"
    assert parse(tmp_path, azure_resource_id=rid).azure_resource_id == rid


def test_an_unset_key_is_reported_only_as_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `logferry azure template` leaves such a reference empty: an empty key is not a malformed one.
    monkeypatch.delenv("LA_UNSET_KEY", raising=False)
    text = problems(tmp_path, shared_key="${env:LA_UNSET_KEY}")
    assert text == "sinks.dst.shared_key: environment variable LA_UNSET_KEY is not set; export it"


@pytest.mark.parametrize(
    "value",
    [
        "0b5d6c3e-1111-4222-8333-944455556666",
        "0B5D6C3E-1111-4222-8333-944455556666",
        "0b5d6c3e1111",
        "x" * 36,
    ],
)
def test_the_config_and_the_simulator_agree_on_what_a_guid_is(tmp_path: Path, value: str) -> None:
    # One pattern (logferry.config.azure) for the workspace id check and the service's _g column type.
    typed_as_guid = "id_g" in typed_row({"id": value}, "T_CL", datetime.now(UTC))
    try:
        parse(tmp_path, workspace_id=value)
    except ConfigError:
        assert not typed_as_guid
    else:
        assert typed_as_guid
    assert LogAnalyticsConfig.model_json_schema()["properties"]["workspace_id"]["pattern"] == GUID_PATTERN
