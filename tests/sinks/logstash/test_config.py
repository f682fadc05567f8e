"""What the ``logstash`` sink accepts in a config, and how it says what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.observe.metrics import Metrics
from logferry.sinks.logstash.config import parse_host
from tests.sinks.logstash.conftest import sink_config


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGSTASH_TEST_UNUSED", "unused")


def problems(tmp_path: Path, hosts: list[str], **options: Any) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(sink_config(hosts, **options), tmp_path)
    return exc.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ls.example.com", ("ls.example.com", 5044)),
        ("ls.example.com:5045", ("ls.example.com", 5045)),
        ("10.0.0.1:5044", ("10.0.0.1", 5044)),
        ("[::1]:5044", ("::1", 5044)),
        ("[fe80::1]", ("fe80::1", 5044)),
    ],
)
def test_hosts_parse_with_port_5044_by_default(text: str, expected: tuple[str, int]) -> None:
    assert parse_host(text) == expected


@pytest.mark.parametrize(
    ("host", "says"),
    [
        ("tcp://ls:5044", "host:port"),
        ("ls:0", "1 to 65535"),
        ("ls:http", "1 to 65535"),
        ("::1", "[addr]:port"),
        ("", "must not be empty"),
    ],
)
def test_bad_hosts_are_refused_naming_the_field(tmp_path: Path, host: str, says: str) -> None:
    found = problems(tmp_path, [host])
    assert any(p.startswith("sinks.dst.hosts") and says in p for p in found), found


def test_a_host_listed_twice_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, ["ls:5044", "ls"])
    assert any("listed twice" in p for p in found), found


def test_defaults_follow_filebeat(tmp_path: Path) -> None:
    config: Any = parse_config(sink_config(["ls"]), tmp_path).sinks["dst"]
    assert (config.batch.max_events, config.compression_level, config.timeout_secs) == (2048, 3, 30.0)
    assert config.loadbalance is False and config.tls is None and config.index == "logferry"


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    found = problems(tmp_path, ["ls"], tls={"certificate": "/etc/c.pem"})
    assert any(p.startswith("sinks.dst.tls") and "certificate and key go together" in p for p in found)


def test_an_inline_key_passphrase_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, ["ls"], tls={"certificate": "c", "key": "k", "key_passphrase": "hunter22"})
    assert any("key_passphrase" in p and "reference" in p for p in found), found


def test_a_certificate_that_does_not_load_is_a_config_error_at_build(tmp_path: Path) -> None:
    cfg = sink_config(["ls"], tls={"certificate": str(tmp_path / "nope.pem"), "key": str(tmp_path / "k")})
    config = parse_config(cfg, tmp_path).sinks["dst"]
    with pytest.raises(ConfigError) as exc:
        config.build("dst", BuildContext(data_dir=tmp_path, metrics=Metrics()))
    assert exc.value.problems[0].startswith("sinks.dst.tls: cannot load")
