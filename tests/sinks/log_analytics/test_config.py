"""Config checks without I/O: each mistake names the field and the fix, and never echoes the key."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
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
