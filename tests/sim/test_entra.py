from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import msal
import pytest
from azure.identity.aio import CertificateCredential, ClientSecretCredential

from logferry.sim.bearer import InvalidToken
from logferry.sim.entra import EntraSim
from logferry.sim.tls import make_self_signed

from .conftest import Starter
from .helpers import ssl_for, stats

MONITOR_SCOPE = "https://monitor.azure.com//.default"


@pytest.fixture(autouse=True)
def _trust_sim_ca_in_requests(monkeypatch: pytest.MonkeyPatch, entra: EntraSim) -> None:
    # requests lets REQUESTS_CA_BUNDLE (set on CI machines) override a session's `verify`
    # (psf/requests#3829), which is what msal's `verify=` sets; point it at the simulator's CA.
    assert entra.ca_file
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", entra.ca_file)


def _read(path: str) -> str:
    return Path(path).read_text()


def _msal_token(entra: EntraSim, credential: Any, **app_options: Any) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        entra.client_id,
        client_credential=credential,
        authority=f"{entra.url}/{entra.tenant_id}",
        verify=entra.ca_file,
        **{"instance_discovery": False, **app_options},
    )
    result: dict[str, Any] = app.acquire_token_for_client(scopes=[MONITOR_SCOPE])
    return result


async def test_msal_gets_token_with_client_secret(entra: EntraSim) -> None:
    result = await asyncio.to_thread(_msal_token, entra, entra.client_secret)
    assert result["token_type"] == "Bearer"
    claims = entra.validate_token(result["access_token"], "https://monitor.azure.com")
    assert claims["aud"] == "https://monitor.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{entra.tenant_id}/"
    assert (claims["tid"], claims["appid"], claims["appidacr"]) == (entra.tenant_id, entra.client_id, "1")
    assert 3590 <= claims["exp"] - time.time() <= 3600


async def test_msal_uses_the_sims_instance_discovery_endpoint(entra: EntraSim) -> None:
    discovery = f"{entra.url}/common/discovery/instance"
    result = await asyncio.to_thread(_msal_token, entra, entra.client_secret, instance_discovery=discovery)
    assert "access_token" in result


@pytest.mark.parametrize(
    "form",
    ["sha1_thumbprint", "public_certificate", "pfx"],
    ids=["thumbprint_rs256", "public_certificate_ps256", "pfx_path"],
)
async def test_msal_gets_token_with_certificate(entra: EntraSim, form: str) -> None:
    creds = entra.credentials
    pem, cert = _read(creds["certificate_file"]), _read(creds["certificate_cert_file"])
    credential: dict[str, Any] = {
        "sha1_thumbprint": {"private_key": pem, "thumbprint": creds["certificate_thumbprint"]},
        "public_certificate": {
            "private_key": pem,
            "public_certificate": cert,
        },
        "pfx": {"private_key_pfx_path": creds["certificate_pfx_file"]},
    }[form]
    result = await asyncio.to_thread(_msal_token, entra, credential)
    assert "access_token" in result, result
    assert entra.validate_token(result["access_token"], "https://monitor.azure.com/")["appidacr"] == "2"


async def test_msal_with_wrong_secret_returns_the_aadsts_error(entra: EntraSim) -> None:
    result = await asyncio.to_thread(_msal_token, entra, "not-the-secret")
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")


async def test_certificate_not_registered_is_refused(entra: EntraSim) -> None:
    stranger = make_self_signed("someone-else")
    credential = {"private_key": stranger.key_pem.decode(), "thumbprint": stranger.sha1_thumbprint.hex()}
    result = await asyncio.to_thread(_msal_token, entra, credential)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [700027]


async def test_azure_identity_credentials_get_tokens(entra: EntraSim) -> None:
    options = {"authority": entra.url, "disable_instance_discovery": True, "connection_verify": entra.ca_file}
    creds = entra.credentials
    async with ClientSecretCredential(
        entra.tenant_id, entra.client_id, entra.client_secret, **options
    ) as secret:
        token = await secret.get_token(MONITOR_SCOPE)
    assert entra.validate_token(token.token, "https://monitor.azure.com")["appidacr"] == "1"
    async with CertificateCredential(
        entra.tenant_id, entra.client_id, creds["certificate_file"], **options
    ) as cert:
        token = await cert.get_token(MONITOR_SCOPE)
    assert entra.validate_token(token.token, "https://monitor.azure.com")["appidacr"] == "2"


async def test_v1_token_endpoint_takes_resource(http: aiohttp.ClientSession, entra: EntraSim) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_id": entra.client_id,
        "client_secret": entra.client_secret,
        "resource": "https://monitor.azure.com/",
    }
    url = f"{entra.url}/{entra.tenant_id}/oauth2/token"
    async with http.post(url, data=form, ssl=ssl_for(entra)) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["resource"] == "https://monitor.azure.com/"
    assert body["expires_in"] == "3600"  # v1 sends numbers as strings
    assert int(body["expires_on"]) - int(body["not_before"]) == 3600
    assert entra.validate_token(body["access_token"], "https://monitor.azure.com")["ver"] == "1.0"


@pytest.mark.parametrize(
    ("path_tenant", "form", "status", "code"),
    [
        ("00000000-0000-0000-0000-000000000000", {}, 400, 90002),
        (None, {"client_id": "11111111-1111-1111-1111-111111111111"}, 400, 700016),
        (None, {"client_secret": None}, 401, 7000218),
        (None, {"scope": "https://monitor.azure.com"}, 400, 1002012),
        (None, {"grant_type": "password"}, 400, 70003),
    ],
    ids=["unknown_tenant", "unknown_app", "no_credential", "scope_without_default", "wrong_grant"],
)
async def test_token_errors_have_entra_shape(
    http: aiohttp.ClientSession,
    entra: EntraSim,
    path_tenant: str | None,
    form: dict[str, str | None],
    status: int,
    code: int,
) -> None:
    base = {
        "grant_type": "client_credentials",
        "client_id": entra.client_id,
        "client_secret": entra.client_secret,
        "scope": MONITOR_SCOPE,
    }
    data = {k: v for k, v in {**base, **form}.items() if v is not None}
    url = f"{entra.url}/{path_tenant or entra.tenant_id}/oauth2/v2.0/token"
    async with http.post(url, data=data, ssl=ssl_for(entra)) as resp:
        assert resp.status == status
        body = await resp.json()
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert {"error", "timestamp", "trace_id", "correlation_id"} <= set(body)
    assert (await stats(http, entra))["failures"] == {str(code): 1}


async def test_openid_configuration_and_jwks_verify_issued_tokens(
    http: aiohttp.ClientSession, entra: EntraSim
) -> None:
    tenant_url = f"{entra.url}/{entra.tenant_id}"
    async with http.get(f"{tenant_url}/v2.0/.well-known/openid-configuration", ssl=ssl_for(entra)) as resp:
        config = await resp.json()
    assert config["token_endpoint"] == f"{tenant_url}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{tenant_url}/oauth2/v2.0/authorize"
    async with http.get(f"{tenant_url}/.well-known/openid-configuration", ssl=ssl_for(entra)) as resp:
        v1 = await resp.json()
    assert v1["token_endpoint"] == f"{tenant_url}/oauth2/token"
    assert v1["issuer"] == f"https://sts.windows.net/{entra.tenant_id}/"
    async with http.get(config["jwks_uri"], ssl=ssl_for(entra)) as resp:
        jwks = await resp.json()
    token = entra.issue_token("https://monitor.azure.com/.default")
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]].key
    claims = jwt.decode(token, key, algorithms=["RS256"], audience="https://monitor.azure.com")
    assert claims["tid"] == entra.tenant_id


@pytest.mark.parametrize(
    ("token_args", "audience", "reason"),
    [
        (("https://monitor.azure.com", -5), "https://monitor.azure.com", "expired"),
        (("https://management.azure.com", None), "https://monitor.azure.com", "audience"),
    ],
    ids=["expired", "wrong_audience"],
)
def test_validate_token_refuses(
    entra: EntraSim, token_args: tuple[str, int | None], audience: str, reason: str
) -> None:
    token = entra.issue_token(*token_args)
    with pytest.raises(InvalidToken) as caught:
        entra.validate_token(token, audience)
    assert caught.value.reason == reason


def test_validate_token_refuses_a_forged_signature(entra: EntraSim) -> None:
    forger = EntraSim()
    forger.tenant_id = entra.tenant_id
    with pytest.raises(InvalidToken) as caught:
        entra.validate_token(forger.issue_token("https://monitor.azure.com"), "https://monitor.azure.com")
    assert caught.value.reason == "signature"


async def test_msal_gets_tokens_in_every_tenant_of_a_multi_tenant_app(start_sim: Starter) -> None:
    multi: EntraSim = await start_sim(EntraSim(extra_tenants=2), tls=True)

    def acquire(tenant: str) -> dict[str, Any]:
        # msal fetches the tenant's metadata while it is constructed: keep that off the event loop.
        app = msal.ConfidentialClientApplication(
            multi.client_id,
            client_credential=multi.client_secret,
            authority=f"{multi.url}/{tenant}",
            verify=multi.ca_file,
            instance_discovery=False,
        )
        result: dict[str, Any] = app.acquire_token_for_client(scopes=["https://manage.office.com/.default"])
        return result

    for tenant in multi.tenant_ids:
        result = await asyncio.to_thread(acquire, tenant)
        claims = multi.validate_token(result["access_token"], "https://manage.office.com")
        assert (claims["tid"], claims["iss"]) == (tenant, f"https://sts.windows.net/{tenant}/")
    assert len(set(multi.tenant_ids)) == 3
