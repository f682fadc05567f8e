"""The Key Vault simulator over real sockets, with the official SecretClient where it matters."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity.aio import ClientSecretCredential
from azure.keyvault.secrets.aio import SecretClient

from logferry.sim.entra import EntraSim
from logferry.sim.keyvault import KEYVAULT_RESOURCE, KeyVaultSim

from .conftest import Starter, announcement
from .helpers import ssl_for, stats

SECRETS = {"mesh-secret": "s3cr3t-from-vault", "other": "x"}
API = "api-version=7.4"


@pytest.fixture
async def vault(start_sim: Starter, entra: EntraSim) -> KeyVaultSim:
    sim: KeyVaultSim = await start_sim(KeyVaultSim(entra=entra, secrets=json.dumps(SECRETS)), tls=True)
    return sim


def _credential(entra: EntraSim) -> ClientSecretCredential:
    return ClientSecretCredential(
        entra.tenant_id,
        entra.client_id,
        entra.client_secret,
        authority=entra.url,
        disable_instance_discovery=True,
        connection_verify=entra.ca_file,
    )


@pytest.fixture
async def client(vault: KeyVaultSim, entra: EntraSim) -> AsyncIterator[SecretClient]:
    # verify_challenge_resource=False: the SDK wants the vault host under the challenge's resource
    # domain (*.vault.azure.net), which 127.0.0.1 is not (see logferry.sim.keyvault).
    async with (
        _credential(entra) as credential,
        SecretClient(
            vault.url, credential, verify_challenge_resource=False, connection_verify=vault.ca_file
        ) as kv,
    ):
        yield kv


async def _get(
    http: aiohttp.ClientSession, vault: KeyVaultSim, path: str, token: str | None = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(f"{vault.url}{path}", headers=headers, ssl=ssl_for(vault)) as resp:
        return resp.status, dict(resp.headers), await resp.json()


async def test_secret_client_gets_a_seeded_secret(
    client: SecretClient, vault: KeyVaultSim, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    secret = await client.get_secret("mesh-secret")
    assert secret.value == "s3cr3t-from-vault"
    assert secret.name == "mesh-secret"
    assert secret.id is not None and secret.id.startswith(f"{vault.url}/secrets/mesh-secret/")
    assert secret.properties.enabled is True
    assert secret.properties.recovery_level == "Recoverable+Purgeable"
    # Names are case-insensitive, as in Key Vault; the token is reused (one challenge, one token).
    assert (await client.get_secret("MESH-SECRET")).value == "s3cr3t-from-vault"
    counters = await stats(http, vault)
    assert counters["reads"] == {"mesh-secret": 2}
    assert counters["generated"] == 2
    assert counters["requests"] == {"200": 2, "401": 1}
    assert counters["unauthorized"] == {"missing": 1}
    assert entra.tokens_issued["client_secret"] == 1


async def test_unknown_secret_is_404_secret_not_found(client: SecretClient, vault: KeyVaultSim) -> None:
    with pytest.raises(ResourceNotFoundError) as exc:
        await client.get_secret("nope")
    assert exc.value.status_code == 404
    assert exc.value.error is not None and exc.value.error.code == "SecretNotFound"
    assert "A secret with (name/id) nope was not found in this key vault." in (exc.value.error.message or "")


async def test_version_path_reads_that_version(
    client: SecretClient, vault: KeyVaultSim, http: aiohttp.ClientSession
) -> None:
    first = (await client.get_secret("mesh-secret")).properties.version
    async with http.put(
        f"{vault.url}/sim/secrets/mesh-secret", json={"value": "rotated"}, ssl=ssl_for(vault)
    ) as resp:
        assert resp.status == 200
        second = (await resp.json())["id"].rsplit("/", 1)[1]
    assert first and second and first != second
    assert (await client.get_secret("mesh-secret")).value == "rotated"
    assert (await client.get_secret("mesh-secret", first)).value == "s3cr3t-from-vault"
    latest = await client.get_secret("mesh-secret", second)
    assert (latest.value, latest.properties.version) == ("rotated", second)
    with pytest.raises(ResourceNotFoundError):
        await client.get_secret("mesh-secret", "0" * 32)
    assert (await stats(http, vault))["versions"] == 3


async def test_harness_put_creates_a_secret(
    client: SecretClient, vault: KeyVaultSim, http: aiohttp.ClientSession
) -> None:
    body = {"value": "v1", "contentType": "text/plain", "tags": {"team": "sec"}}
    async with http.put(f"{vault.url}/sim/secrets/New-One", json=body, ssl=ssl_for(vault)) as resp:
        assert resp.status == 200
    secret = await client.get_secret("new-one")
    assert (secret.name, secret.value) == ("New-One", "v1")
    assert (secret.properties.content_type, secret.properties.tags) == ("text/plain", {"team": "sec"})
    async with http.put(f"{vault.url}/sim/secrets/bad_name", json=body, ssl=ssl_for(vault)) as resp:
        assert resp.status == 400
    async with http.put(f"{vault.url}/sim/secrets/x", json={"val": 1}, ssl=ssl_for(vault)) as resp:
        assert resp.status == 400


async def test_request_without_token_gets_the_key_vault_challenge(
    vault: KeyVaultSim, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    status, headers, body = await _get(http, vault, f"/secrets/mesh-secret?{API}")
    assert status == 401
    assert headers["WWW-Authenticate"] == (
        f'Bearer authorization="{entra.url}/{entra.tenant_id}", resource="https://vault.azure.net"'
    )
    assert body == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }


async def test_wrong_audience_and_expired_tokens_are_401(
    vault: KeyVaultSim, entra: EntraSim, http: aiohttp.ClientSession
) -> None:
    wrong = entra.issue_token("https://management.azure.com/.default")
    status, headers, body = await _get(http, vault, f"/secrets/mesh-secret?{API}", wrong)
    assert status == 401
    assert "WWW-Authenticate" in headers
    assert body["error"]["message"] == (
        "AKV10022: Invalid audience. Expected https://vault.azure.net, found: https://management.azure.com."
    )
    expired = entra.issue_token(KEYVAULT_RESOURCE, lifetime_secs=-60)
    status, _, body = await _get(http, vault, f"/secrets/mesh-secret?{API}", expired)
    assert (status, body["error"]["code"]) == (401, "Unauthorized")
    # A valid token reads the secret; the version path and the SDK's trailing-slash form work too.
    token = entra.issue_token(KEYVAULT_RESOURCE)
    status, headers, body = await _get(http, vault, f"/secrets/mesh-secret/?{API}", token)
    assert status == 200 and body["value"] == "s3cr3t-from-vault"
    assert set(body) == {"value", "id", "attributes"}
    assert {"enabled", "created", "updated", "recoveryLevel", "recoverableDays"} == set(body["attributes"])
    version = body["id"].rsplit("/", 1)[1]
    status, _, again = await _get(http, vault, f"/secrets/mesh-secret/{version}?{API}", token)
    assert (status, again["id"]) == (200, body["id"])
    status, _, error = await _get(http, vault, "/secrets/mesh-secret", token)
    assert (status, error["error"]["code"]) == (400, "BadParameter")
    assert (await stats(http, vault))["unauthorized"] == {"audience": 1, "expired": 1}


async def test_sdk_refuses_the_challenge_without_the_keyword(vault: KeyVaultSim, entra: EntraSim) -> None:
    # Documents why verify_challenge_resource=False is needed against a loopback vault.
    async with (
        _credential(entra) as credential,
        SecretClient(vault.url, credential, connection_verify=vault.ca_file) as kv,
    ):
        with pytest.raises(ValueError, match="does not match the requested domain"):
            await kv.get_secret("mesh-secret")
    assert entra.generated() == 0


async def test_tokens_from_another_entra_are_refused(
    vault: KeyVaultSim, start_sim: Starter, http: aiohttp.ClientSession
) -> None:
    other: EntraSim = await start_sim(EntraSim(seed=2), tls=True)
    status, headers, body = await _get(
        http, vault, f"/secrets/mesh-secret?{API}", other.issue_token(KEYVAULT_RESOURCE)
    )
    assert (status, body["error"]["code"]) == (401, "Unauthorized")
    assert body["error"]["message"].startswith("Token validation failed: ")
    assert headers["WWW-Authenticate"] == vault.challenge
    assert "s3cr3t" not in json.dumps(body)


def test_secrets_option_is_checked() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        KeyVaultSim(secrets='["a"]')
    with pytest.raises(ValueError, match="1-127 letters"):
        KeyVaultSim(secrets='{"no_underscores": "x"}')


async def test_standalone_with_tls_serves_the_secret_client(launch: Any) -> None:
    proc = launch("keyvault", True, "--secrets", json.dumps(SECRETS))
    announced = await asyncio.to_thread(announcement, proc)
    creds = announced["credentials"]
    assert creds["vault_url"] == announced["url"] and creds["secrets"] == ["mesh-secret", "other"]
    async with (
        ClientSecretCredential(
            creds["tenant_id"],
            creds["client_id"],
            creds["client_secret"],
            authority=creds["authority_host"],
            disable_instance_discovery=True,
            connection_verify=announced["ca_file"],
        ) as credential,
        SecretClient(
            announced["url"],
            credential,
            verify_challenge_resource=False,
            connection_verify=announced["ca_file"],
        ) as kv,
    ):
        assert (await kv.get_secret("mesh-secret")).value == "s3cr3t-from-vault"
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.wait, 10) == 0
