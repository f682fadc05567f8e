"""Azure Key Vault simulator: the secrets data plane that ``@Microsoft.KeyVault(...)`` references read.

``GET /secrets/{name}`` (latest version; the SDK asks for ``/secrets/{name}/``) and
``GET /secrets/{name}/{version}`` with ``?api-version=`` answer the secret bundle Key Vault returns::

    {"value": "...", "id": "https://VAULT/secrets/NAME/VERSION",
     "attributes": {"enabled": true, "created": 1700000000, "updated": 1700000000,
                    "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90}}

An unknown name or version is 404 ``{"error": {"code": "SecretNotFound", "message": ...}}``. Secret
names are case-insensitive, as in Key Vault; the ``id`` keeps the name as it was stored.

Authentication is Key Vault's challenge protocol, so the official ``SecretClient`` works unchanged:
a request without a valid bearer token is 401 ``Unauthorized`` with
``WWW-Authenticate: Bearer authorization="<entra>/<tenant>", resource="https://vault.azure.net"``;
the SDK takes the tenant from ``authorization``, asks its credential for ``<resource>/.default`` and
repeats the request with the token. Tokens are checked like :mod:`logferry.sim.sentinel` does: in
process against an ``EntraSim`` passed as ``entra=``, via ``entra_url``'s JWKS, or against an Entra
simulator this one starts (and stops) itself, whose credentials then appear in ``credentials``.

**What SecretClient needs.** The SDK's challenge policy refuses a challenge whose resource domain is
not a suffix of the vault's host (``verify_challenge_resource``: ``*.vault.azure.net`` for
``https://vault.azure.net``), so that a look-alike URL cannot collect a real Key Vault token. A vault
at ``https://127.0.0.1:PORT`` can never pass it with Key Vault's real resource, and a resource that
did pass (``https://1:PORT``) would be a fake audience. The simulator keeps the real resource, and a
client of a simulator on a loopback address passes ``verify_challenge_resource=False``::

    entra = EntraSim(); await entra.start(tls=True)
    vault = KeyVaultSim(entra=entra, secrets='{"mesh-secret": "s3cr3t"}'); await vault.start(tls=True)
    credential = ClientSecretCredential(entra.tenant_id, entra.client_id, entra.client_secret,
                                        authority=entra.url, disable_instance_discovery=True,
                                        connection_verify=entra.ca_file)
    client = SecretClient(vault.url, credential, verify_challenge_resource=False,
                          connection_verify=vault.ca_file)

Both need https (the SDK refuses bearer tokens over http): start with ``tls=True``.

Seeding: the ``secrets`` option (a JSON object, name -> value), :meth:`KeyVaultSim.set_secret`, or
the harness endpoint ``PUT /sim/secrets/{name}`` with ``{"value": ..., "contentType": ..., "tags": ...}``
(Key Vault's SetSecret body), which adds a new version and answers its bundle.

Choices where Key Vault's behaviour is unconfirmed: authentication is checked before the api-version;
a missing or unknown api-version is 400 ``BadParameter``; an invalid token other than a wrong audience
(``AKV10022``) is 401 ``Unauthorized`` with ``Token validation failed: ...``.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
import orjson
from aiohttp import web

from .bearer import InvalidToken, resource_of
from .entra import EntraSim
from .entra_guard import EntraGuard
from .options import opt
from .registry import register
from .server import SimOptions, SimServer, json_response, read_json, retry_headers

__all__ = ["API_VERSIONS", "KEYVAULT_RESOURCE", "KeyVaultOptions", "KeyVaultSim"]

KEYVAULT_RESOURCE = "https://vault.azure.net"
#: The versions the installed azure-keyvault-secrets knows (its default is the newest).
API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)
#: Key Vault object names: 1-127 letters, digits and dashes.
_NAME_RE = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_NOT_FOUND_HELP = (
    "If you recently deleted this secret you may be able to recover it using the correct recovery "
    "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
)


def _parse_secrets(raw: Any) -> dict[str, str]:
    if isinstance(raw, str):
        try:
            raw = orjson.loads(raw or "{}")
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"secrets: not JSON: {exc}") from None
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        raise ValueError('secrets: expected a JSON object of names to string values, {"name": "value"}')
    for name in raw:
        _check_name(name)
    return dict(raw)


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"secret name {name!r}: Key Vault names are 1-127 letters, digits and dashes")


@dataclass(frozen=True, kw_only=True)
class KeyVaultOptions(SimOptions):
    secrets: str = opt("{}", 'secrets that exist from the start, a JSON object {"name": "value"}')
    resource: str = opt(KEYVAULT_RESOURCE, "resource the 401 challenge names; tokens must be for it")
    entra_url: str | None = opt(
        None, "validate tokens via this Entra simulator's JWKS instead of running one"
    )
    entra_ca_file: str | None = opt(None, "CA bundle for entra_url")
    tenant_id: str | None = opt(None, "tenant the challenge names with entra_url (default: entra_url's)")

    def __post_init__(self) -> None:
        super().__post_init__()
        # Accept a mapping too (tests, Python callers); keep the JSON text the CLI takes.
        raw: Any = self.secrets
        object.__setattr__(self, "secrets", orjson.dumps(_parse_secrets(raw)).decode())


@dataclass(frozen=True)
class _Version:
    version: str
    value: str
    created: int
    content_type: str | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclass
class _Secret:
    name: str
    versions: dict[str, _Version] = dataclasses.field(default_factory=dict)
    latest: str = ""


@register("keyvault")
class KeyVaultSim(SimServer[KeyVaultOptions]):
    """One key vault's secrets, behind Key Vault's bearer-challenge authentication."""

    options_type = KeyVaultOptions

    def __init__(
        self, options: KeyVaultOptions | None = None, *, entra: EntraSim | None = None, **overrides: Any
    ) -> None:
        super().__init__(options, **overrides)
        self.guard = EntraGuard(entra, self.options.entra_url, self.options.entra_ca_file)
        self._tenant_id: str | None = None
        self._authority: str | None = None
        self._secrets: dict[str, _Secret] = {}
        self.reads: Counter[str] = Counter()
        self.not_found = 0
        self.unauthorized: Counter[str] = Counter()
        for name, value in _parse_secrets(self.options.secrets).items():
            self.set_secret(name, value)

    # --- what tests and the harness use --------------------------------------------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Add a new version of secret ``name`` (creating it); returns the version id."""
        _check_name(name)
        secret = self._secrets.setdefault(name.lower(), _Secret(name))
        version = uuid.uuid4().hex
        secret.versions[version] = _Version(version, value, int(time.time()), content_type, dict(tags or {}))
        secret.latest = version
        return version

    def secret_uri(self, name: str, version: str | None = None) -> str:
        """The SecretUri of a ``@Microsoft.KeyVault(SecretUri=...)`` reference to this vault."""
        return f"{self.url}/secrets/{name}" + (f"/{version}" if version else "")

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of every 401."""
        if self._authority is None:
            raise RuntimeError("KeyVaultSim is not started")
        return f'Bearer authorization="{self._authority}", resource="{self.options.resource}"'

    @property
    def credentials(self) -> dict[str, Any]:
        creds = self.guard.credentials()
        if self.guard.entra is None:
            creds["tenant_id"] = self._tenant_id
        creds.update(
            vault_url=self.url,
            resource=self.options.resource,
            secrets=sorted(s.name for s in self._secrets.values()),
        )
        return creds

    def generated(self) -> int:
        return sum(self.reads.values())

    def extra_stats(self) -> dict[str, Any]:
        return {
            "secrets": len(self._secrets),
            "versions": sum(len(s.versions) for s in self._secrets.values()),
            "reads": dict(sorted(self.reads.items())),
            "not_found": self.not_found,
            "unauthorized": dict(sorted(self.unauthorized.items())),
        }

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        return _kv_error(status, code or _default_code(status), message, retry_headers(retry_after))

    # --- life cycle ----------------------------------------------------------------------------

    @property
    def entra(self) -> EntraSim | None:
        return self.guard.entra

    async def on_start(self) -> None:
        await self.guard.start(self.host, self.tls)
        entra = self.guard.entra
        if entra is not None:
            self._tenant_id, self._authority = entra.tenant_id, entra.authority
            return
        base = self.guard.entra_url or ""
        self._tenant_id = self.options.tenant_id or await _discover_tenant(base, self.options.entra_ca_file)
        self._authority = f"{base}/{self._tenant_id}"

    async def on_stop(self) -> None:
        await self.guard.stop()

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/secrets/{name}", self._get_secret)
        r.add_get("/secrets/{name}/{version:[^/]*}", self._get_secret)
        r.add_put("/sim/secrets/{name}", self._put_secret)

    # --- handlers ------------------------------------------------------------------------------

    async def _get_secret(self, request: web.Request) -> web.Response:
        denied = await self._authenticate(request)
        if denied is not None:
            return denied
        version_param = request.query.get("api-version")
        if version_param not in API_VERSIONS:
            return _kv_error(
                400,
                "BadParameter",
                f"The api-version {version_param!r} is not supported. "
                f"Supported versions: {', '.join(sorted(API_VERSIONS))}.",
            )
        name = request.match_info["name"]
        version = request.match_info.get("version") or ""
        secret = self._secrets.get(name.lower())
        found = secret.versions.get(version or secret.latest) if secret is not None else None
        if secret is None or found is None:
            self.not_found += 1
            shown = f"{name}/{version}" if version else name
            return _kv_error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {shown} was not found in this key vault. {_NOT_FOUND_HELP}",
            )
        self.reads[secret.name] += 1
        return json_response(self._bundle(request, secret, found), headers=_kv_headers())

    async def _put_secret(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("value"), str):
            raise web.HTTPBadRequest(text='expected {"value": "...", "contentType": null, "tags": {}}')
        content_type, tags = body.get("contentType"), body.get("tags") or {}
        if content_type is not None and not isinstance(content_type, str):
            raise web.HTTPBadRequest(text="contentType must be a string")
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            raise web.HTTPBadRequest(text="tags must be an object of strings")
        try:
            version = self.set_secret(
                request.match_info["name"], body["value"], content_type=content_type, tags=tags
            )
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        secret = self._secrets[request.match_info["name"].lower()]
        return json_response(self._bundle(request, secret, secret.versions[version]))

    async def _authenticate(self, request: web.Request) -> web.Response | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "pop") or not token:
            self.unauthorized["missing"] += 1
            return self._unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
        try:
            await self.guard.validate(token, self.options.resource)
        except InvalidToken as exc:
            self.unauthorized[exc.reason] += 1
            if exc.reason == "audience":
                return self._unauthorized(
                    f"AKV10022: Invalid audience. Expected {resource_of(self.options.resource)}, "
                    f"found: {_unverified_audience(token)}."
                )
            return self._unauthorized(f"Token validation failed: {exc.message}")
        return None

    def _unauthorized(self, message: str) -> web.Response:
        return _kv_error(401, "Unauthorized", message, {"WWW-Authenticate": self.challenge})

    def _bundle(self, request: web.Request, secret: _Secret, version: _Version) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "value": version.value,
            "id": f"{request.scheme}://{request.host}/secrets/{secret.name}/{version.version}",
            "attributes": {
                "enabled": True,
                "created": version.created,
                "updated": version.created,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": 90,
            },
        }
        if version.content_type is not None:
            bundle["contentType"] = version.content_type
        if version.tags:
            bundle["tags"] = dict(version.tags)
        return bundle


async def _discover_tenant(entra_url: str, ca_file: str | None) -> str:
    """The tenant an Entra simulator serves, from its metadata (``common`` resolves to it)."""
    ctx: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
    url = f"{entra_url}/common/v2.0/.well-known/openid-configuration"
    async with aiohttp.ClientSession() as session, session.get(url, ssl=ctx) as resp:
        resp.raise_for_status()
        document = await resp.json()
    # token_endpoint is https://HOST/{tenant}/oauth2/v2.0/token
    return str(document["token_endpoint"]).split("/")[3]


def _unverified_audience(token: str) -> str:
    try:
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.InvalidTokenError:
        return "(unreadable)"
    return ", ".join(aud) if isinstance(aud, list) else str(aud)


def _default_code(status: int) -> str:
    return {
        400: "BadParameter",
        401: "Unauthorized",
        403: "Forbidden",
        404: "NotFound",
        429: "Throttled",
    }.get(status, "ServiceUnavailable" if status >= 500 else "BadRequest")


def _kv_headers() -> dict[str, str]:
    return {"x-ms-request-id": str(uuid.uuid4()), "x-ms-keyvault-service-version": "1.9.0.0"}


def _kv_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response(
        {"error": {"code": code, "message": message}}, status, {**_kv_headers(), **(headers or {})}
    )
