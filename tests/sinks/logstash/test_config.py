"""What the ``logstash`` sink accepts in a config, and how it says what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.observe.metrics import Metrics
from logferry.sim.tls import make_self_signed
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
    found = problems(tmp_path, ["ls"], tls={"cert_file": "/etc/c.pem"})
    assert any(p.startswith("sinks.dst.tls") and "cert_file and key_file go together" in p for p in found)


def test_the_old_certificate_option_names_are_refused(tmp_path: Path) -> None:
    # The names are the syslog input's and sink's; an unknown option is an error, not ignored.
    found = problems(tmp_path, ["ls"], tls={"certificate": "c.pem", "key": "k.pem"})
    assert any(p.startswith("sinks.dst.tls.certificate") for p in found), found


def test_an_inline_key_password_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, ["ls"], tls={"cert_file": "c", "key_file": "k", "key_password": "hunter22"})
    assert any("key_password" in p and "reference" in p for p in found), found
    assert not any("hunter22" in p for p in found)


@pytest.mark.parametrize(
    "host",
    ["logstash..example.com:5044", "a" * 64 + ".example.com", ".example.com:5044", "x" * 254],
)
def test_host_names_that_cannot_be_resolved_are_refused_at_config_time(tmp_path: Path, host: str) -> None:
    found = problems(tmp_path, [host])
    assert any(p.startswith("sinks.dst.hosts") and "is not a host name" in p for p in found), found


@pytest.mark.parametrize("name", [".example.com", "a..b", "a" * 64])
def test_a_bad_tls_server_name_is_refused_at_config_time(tmp_path: Path, name: str) -> None:
    found = problems(tmp_path, ["10.0.0.1"], tls={"server_name": name})
    assert any(p.startswith("sinks.dst.tls.server_name") and "is not a host name" in p for p in found), found


def test_max_ack_wait_defaults_to_five_minutes_and_is_not_shorter_than_timeout(tmp_path: Path) -> None:
    config: Any = parse_config(sink_config(["ls"]), tmp_path).sinks["dst"]
    assert config.max_ack_wait_secs == 300.0
    found = problems(tmp_path, ["ls"], timeout_secs=60, max_ack_wait_secs=30)
    assert any("max_ack_wait_secs (30) is shorter than timeout_secs (60)" in p for p in found), found


def build(tmp_path: Path, tls: dict[str, Any]) -> None:
    config = parse_config(sink_config(["ls"], tls=tls), tmp_path).sinks["dst"]
    config.build("dst", BuildContext(data_dir=tmp_path, metrics=Metrics()))


def client_files(tmp_path: Path, password: bytes | None) -> tuple[str, str]:
    bundle = make_self_signed("logferry-client")
    cert, key = tmp_path / "client.pem", tmp_path / "client.key"
    cert.write_bytes(bundle.cert_pem)
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password is not None
        else serialization.NoEncryption()
    )
    key.write_bytes(
        bundle.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return str(cert), str(key)


def test_a_certificate_that_does_not_load_is_a_config_error_at_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        build(tmp_path, {"cert_file": str(tmp_path / "nope.pem"), "key_file": str(tmp_path / "k")})
    assert exc.value.problems[0].startswith(f"sinks.dst.tls.cert_file {tmp_path / 'nope.pem'}")


def test_a_missing_ca_file_is_a_config_error_at_build(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        build(tmp_path, {"ca_file": str(tmp_path / "ca.pem")})
    assert exc.value.problems[0].startswith(f"sinks.dst.tls.ca_file {tmp_path / 'ca.pem'}")


def test_an_encrypted_key_needs_its_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = client_files(tmp_path, b"s3cret-pass")
    with pytest.raises(ConfigError) as exc:  # an error, not OpenSSL asking on the terminal
        build(tmp_path, {"cert_file": cert, "key_file": key})
    (problem,) = exc.value.problems
    assert (
        problem.startswith("sinks.dst.tls.cert_file") and "the key is encrypted and no passphrase" in problem
    )
    monkeypatch.setenv("LOGSTASH_TEST_KEY_PASSWORD", "s3cret-pass")
    build(tmp_path, {"cert_file": cert, "key_file": key, "key_password": "${env:LOGSTASH_TEST_KEY_PASSWORD}"})
    monkeypatch.setenv("LOGSTASH_TEST_KEY_PASSWORD", "wrong")
    with pytest.raises(ConfigError) as exc:
        build(
            tmp_path,
            {"cert_file": cert, "key_file": key, "key_password": "${env:LOGSTASH_TEST_KEY_PASSWORD}"},
        )
    assert "wrong passphrase" in exc.value.problems[0] and "s3cret" not in exc.value.problems[0]
