"""Key Vault references resolved end to end: parse_config -> DefaultAzureCredential -> SecretClient.

The Entra ID and Key Vault simulators run on real sockets in the test's event loop; ``parse_config``
is synchronous (it blocks on the Azure SDK), so it runs in a thread. The credential finds the
simulated Entra through the ``AZURE_*`` variables EnvironmentCredential reads and trusts the
simulators' certificate through ``REQUESTS_CA_BUNDLE``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from logferry.config.loader import parse_config
from logferry.config.secrets import Secret
from logferry.connectors import load_builtin
from logferry.core.errors import ConfigError
from logferry.sim.entra import EntraSim
from logferry.sim.keyvault import KeyVaultSim

load_builtin()

VALUE = "kv-s3cr3t-value"


@pytest.fixture
async def entra() -> AsyncIterator[EntraSim]:
    sim = EntraSim()
    await sim.start(tls=True)
    yield sim
    await sim.stop()


@pytest.fixture
async def vault(entra: EntraSim) -> AsyncIterator[KeyVaultSim]:
    sim = KeyVaultSim(entra=entra, secrets=json.dumps({"mesh-client-secret": VALUE}))
    await sim.start(tls=True)
    yield sim
    await sim.stop()


@pytest.fixture(autouse=True)
def azure_env(monkeypatch: pytest.MonkeyPatch, entra: EntraSim) -> None:
    for name in (
        "AZURE_TOKEN_CREDENTIALS",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_USERNAME",
        "AZURE_PASSWORD",
        "AZURE_FEDERATED_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_TENANT_ID", entra.tenant_id)
    monkeypatch.setenv("AZURE_CLIENT_ID", entra.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", entra.client_secret)
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", entra.url)
    assert entra.ca_file
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", entra.ca_file)


def config(secret_uri: str) -> dict[str, Any]:
    return {
        "sources": {
            "mesh": {
                "type": "meshstack",
                "api_url": "https://mesh.example.com",
                "client_id": "k",
                "client_secret": f"@Microsoft.KeyVault(SecretUri={secret_uri})",
            }
        },
        "sinks": {"out": {"type": "stdout", "inputs": ["mesh"]}},
    }


async def problems(data: dict[str, Any], tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        await asyncio.to_thread(parse_config, data, tmp_path)
    return exc.value.problems


async def test_client_secret_resolves_from_the_vault(
    vault: KeyVaultSim, entra: EntraSim, tmp_path: Path
) -> None:
    data = config(vault.secret_uri("mesh-client-secret"))
    cfg = await asyncio.to_thread(parse_config, data, tmp_path)
    secret = cfg.sources["mesh"].client_secret  # type: ignore[attr-defined]
    assert isinstance(secret, Secret)
    assert secret.reveal() == VALUE
    assert secret.ref == data["sources"]["mesh"]["client_secret"]
    assert VALUE not in repr(cfg)
    assert vault.reads == {"mesh-client-secret": 1}
    assert entra.tokens_issued["client_secret"] == 1


async def test_versioned_secret_uri_reads_that_version(vault: KeyVaultSim, tmp_path: Path) -> None:
    first = vault.set_secret("rotating", "old-value")
    vault.set_secret("rotating", "new-value")
    cfg = await asyncio.to_thread(parse_config, config(vault.secret_uri("rotating", first)), tmp_path)
    assert cfg.sources["mesh"].client_secret.reveal() == "old-value"  # type: ignore[attr-defined]
    cfg = await asyncio.to_thread(parse_config, config(vault.secret_uri("rotating") + "/"), tmp_path)
    assert cfg.sources["mesh"].client_secret.reveal() == "new-value"  # type: ignore[attr-defined]


async def test_unknown_secret_is_one_line_naming_the_field(vault: KeyVaultSim, tmp_path: Path) -> None:
    assert await problems(config(vault.secret_uri("nope")), tmp_path) == [
        f"sources.mesh.client_secret: Key Vault secret nope not found in {vault.url} (SecretNotFound)"
    ]


async def test_authentication_failure_is_one_line_without_secrets(
    vault: KeyVaultSim, entra: EntraSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "wrong-client-secret")
    [line] = await problems(config(vault.secret_uri("mesh-client-secret")), tmp_path)
    assert line.startswith(
        f"sources.mesh.client_secret: cannot read Key Vault secret mesh-client-secret from {vault.url}: "
        "ClientAuthenticationError"
    )
    assert "\n" not in line
    assert "wrong-client-secret" not in line and VALUE not in line
    assert vault.reads == {}


async def test_remote_secrets_false_never_reaches_the_vault(
    vault: KeyVaultSim, entra: EntraSim, tmp_path: Path
) -> None:
    data = config(vault.secret_uri("nope"))
    cfg = await asyncio.to_thread(parse_config, data, tmp_path, False)
    assert cfg.sources["mesh"].client_secret.ref == data["sources"]["mesh"]["client_secret"]  # type: ignore[attr-defined]
    assert vault.requests == {}
    assert entra.generated() == 0
