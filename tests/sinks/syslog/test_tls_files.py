"""Certificate and key files that do not load are configuration errors naming the option, found when
the sink is built (not at each reconnect), and an encrypted key without its password never makes
OpenSSL prompt on the terminal: not in the sink, not in the syslog input's listener."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from logferry.core.errors import ConfigError
from logferry.core.sink import Action
from logferry.sim.peers import free_port
from logferry.sources.syslog.config import SyslogTLSConfig
from logferry.sources.syslog.listeners import server_tls_context
from tests.sinks.syslog.conftest import build_sink
from tests.sources.syslog.conftest import TLSFiles, receiver

PASSWORD = "s3cret-pass"


@pytest.fixture
def encrypted_key(tmp_path: Path, certs: TLSFiles) -> Path:
    key = serialization.load_pem_private_key(certs.client_key.read_bytes(), password=None)
    path = tmp_path / "client-encrypted.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    return path


def build_problem(tmp_path: Path, tls: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as exc:
        build_sink(tmp_path, host="localhost", port=free_port(), protocol="tls", tls=tls)
    [problem] = exc.value.problems
    return problem


def test_a_missing_or_non_pem_ca_file_names_the_option(tmp_path: Path) -> None:
    missing = tmp_path / "missing-ca.pem"
    assert build_problem(tmp_path, {"ca_file": str(missing)}).startswith(f"sinks.dst.tls.ca_file {missing}: ")
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    assert build_problem(tmp_path, {"ca_file": str(garbage)}).startswith(f"sinks.dst.tls.ca_file {garbage}: ")


def test_an_unreadable_client_certificate_names_the_files(tmp_path: Path) -> None:
    tls = {"cert_file": str(tmp_path / "none.crt"), "key_file": str(tmp_path / "none.key")}
    problem = build_problem(tmp_path, tls)
    assert problem.startswith(f"sinks.dst.tls.cert_file {tmp_path / 'none.crt'} / tls.key_file")
    assert "No such file or directory" in problem


def test_an_encrypted_client_key_needs_its_password(
    tmp_path: Path, certs: TLSFiles, encrypted_key: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = {
        "ca_file": str(certs.server_cert),
        "cert_file": str(certs.client_cert),
        "key_file": str(encrypted_key),
    }
    assert "the key is encrypted and no passphrase is set" in build_problem(tmp_path, tls)
    monkeypatch.setenv("SYSLOG_TEST_KEY_PASS", PASSWORD)
    build_sink(
        tmp_path,
        host="localhost",
        port=free_port(),
        protocol="tls",
        tls={**tls, "key_password": "${env:SYSLOG_TEST_KEY_PASS}"},
    )


async def test_the_tls_context_is_built_once_not_at_each_connection(tmp_path: Path, certs: TLSFiles) -> None:
    """A CA file that goes away after start does not matter: the context was loaded when built."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certs.server_cert.read_bytes())
    async with receiver(
        tmp_path, protocol="tls", tls={"cert_file": str(certs.server_cert), "key_file": str(certs.server_key)}
    ) as rx:
        sink = build_sink(tmp_path, host="localhost", port=rx.port, protocol="tls", tls={"ca_file": str(ca)})
        ca.unlink()
        try:
            result = await sink.send(sink.encode([{"a": 1}]))
            assert result.action is Action.DELIVERED, result.reason
        finally:
            await sink.close()


def test_the_syslog_listener_refuses_an_encrypted_key_without_password(
    certs: TLSFiles, encrypted_key: Path
) -> None:
    tls = SyslogTLSConfig(cert_file=str(certs.client_cert), key_file=str(encrypted_key))
    with pytest.raises(ValueError, match="the key is encrypted and no passphrase is set") as exc:
        server_tls_context(tls)
    assert str(exc.value).startswith(f"tls.cert_file {certs.client_cert} / tls.key_file {encrypted_key}: ")
