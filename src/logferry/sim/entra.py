"""Microsoft Entra ID (Azure AD) simulator: enough of the v1/v2 endpoints for client credentials.

``msal`` and ``azure-identity`` work against it unchanged. They require https, so start it with
``tls=True`` and hand them the simulator's ``ca_file``; and they must not ask
login.microsoftonline.com to validate the unknown host:

* msal: ``ConfidentialClientApplication(client_id, client_credential=...,
  authority=f"{sim.url}/{tenant_id}", instance_discovery=False, verify=sim.ca_file)``.
  (Alternatively keep instance discovery on and point it here:
  ``instance_discovery=f"{sim.url}/common/discovery/instance"``.)
* azure-identity: ``ClientSecretCredential(tenant_id, client_id, secret, authority=sim.url,
  disable_instance_discovery=True, connection_verify=sim.ca_file)``; the same keywords work for
  ``CertificateCredential`` and for the ``azure.identity.aio`` variants.
* msal's ``verify=`` is a requests session setting, and requests lets ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE`` override it (psf/requests#3829): where those are set, point
  ``REQUESTS_CA_BUNDLE`` at ``sim.ca_file`` too (azure-identity passes ``verify`` per request and is
  not affected).

Served: ``/{tenant}/v2.0/.well-known/openid-configuration`` and the v1
``/{tenant}/.well-known/openid-configuration``; JWKS at ``/{tenant}/discovery/v2.0/keys`` and
``/{tenant}/discovery/keys`` (``common`` works as tenant for metadata and keys);
``/common/discovery/instance``; and the token endpoints ``/{tenant}/oauth2/v2.0/token`` (``scope``)
and ``/{tenant}/oauth2/token`` (v1, ``resource``) for ``grant_type=client_credentials`` with a
client secret (form or HTTP Basic) or a certificate-signed ``client_assertion``.

Access tokens are v1-style RS256 JWTs (``iss`` = ``https://sts.windows.net/{tenant}/``, ``aud`` = the
resource without ``/.default`` or trailing slashes, ``tid``, ``appid``, ``appidacr``). Other
simulators in the same process check them with :meth:`EntraSim.validate_token`; those in another
process use the JWKS URL (:class:`~logferry.sim.bearer.JwksValidator`).
"""

from __future__ import annotations

import datetime as dt
import hmac
import random
import string
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from yarl import URL

from .bearer import Claims, InvalidToken, resource_of
from .entra_keys import AssertionRejected, ClientCertificate, SigningKey
from .options import opt
from .registry import register
from .server import HTTPError, SimOptions, SimServer, decode_basic, json_response, retry_headers

__all__ = ["EntraOptions", "EntraSim", "InvalidToken"]

_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Tenant path segments Entra accepts for metadata but not for app-only tokens.
_META_TENANTS = frozenset({"common", "organizations", "consumers"})


@dataclass(frozen=True, kw_only=True)
class EntraOptions(SimOptions):
    seed: int = opt(1, "seed for tenant id, client id and client secret")
    token_lifetime_secs: int = opt(3600, "access token lifetime (expires_in)")
    tenant_domain: str = opt("logferry-sim.onmicrosoft.com", "domain name accepted in place of the tenant id")
    extra_tenants: int = opt(
        0, "further tenants that consented to the app (a multi-tenant app registration, as MSSPs use)"
    )


@register("entra")
class EntraSim(SimServer[EntraOptions]):
    """Microsoft Entra ID token service for one tenant and one app registration."""

    options_type = EntraOptions

    def __init__(self, options: EntraOptions | None = None, **overrides: Any) -> None:
        super().__init__(options, **overrides)
        rng = random.Random(f"{self.options.seed}:entra")
        self.tenant_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        #: The home tenant first, then the tenants where the app was consented.
        self.tenant_ids = [self.tenant_id] + [
            str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(self.options.extra_tenants)
        ]
        self.client_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.service_principal_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        # Shaped like an Entra secret value: three characters, a digit, "Q~", then 34 more.
        alphabet = string.ascii_letters + string.digits + "._-~"
        self.client_secret = (
            "".join(rng.choices(string.ascii_letters, k=3)) + "8Q~" + "".join(rng.choices(alphabet, k=34))
        )
        self.signing_key = SigningKey()
        self.certificate = ClientCertificate()
        self._files: dict[str, str] = {}
        self.tokens_issued: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()

    # --- what other simulators and tests use ---------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"https://sts.windows.net/{self.tenant_id}/"

    @property
    def authority(self) -> str:
        return f"{self.url}/{self.tenant_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/{self.tenant_id}/discovery/v2.0/keys"

    def issuer_of(self, tenant_id: str) -> str:
        return f"https://sts.windows.net/{tenant_id}/"

    def validate_token(self, token: str, audience: str) -> Claims:
        """Claims of an access token this simulator issued for ``audience`` in any of its tenants
        (the ``tid`` claim says which); ``InvalidToken`` otherwise."""
        return self.signing_key.verify(token, audience, [self.issuer_of(t) for t in self.tenant_ids])

    def issue_token(
        self, resource: str, lifetime_secs: int | None = None, tenant_id: str | None = None
    ) -> str:
        """Mint a token directly; tests use it for expired (negative lifetime) or wrong-audience tokens."""
        lifetime = self.options.token_lifetime_secs if lifetime_secs is None else lifetime_secs
        return self._mint(resource_of(resource), lifetime, "direct", tenant_id or self.tenant_id)[0]

    @property
    def credentials(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "tenant_ids": list(self.tenant_ids),
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            **self._files,
            "certificate_thumbprint": self.certificate.sha1_hex,
            "authority_host": self.url,
            "authority": self.authority,
        }

    def generated(self) -> int:
        return sum(self.tokens_issued.values())

    def extra_stats(self) -> dict[str, Any]:
        return {"tokens_issued": dict(self.tokens_issued), "failures": dict(self.failures)}

    def error_response(
        self, status: int, message: str, *, code: str | None = None, retry_after: float | None = None
    ) -> web.Response:
        error = code or ("temporarily_unavailable" if status >= 500 else "invalid_request")
        body = {"error": error, "error_description": message, "error_codes": []}
        return json_response(body, status, retry_headers(retry_after))

    async def on_start(self) -> None:
        self._files = self.certificate.write_files()

    async def on_stop(self) -> None:
        self.certificate.remove_files()
        self._files = {}

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/common/discovery/instance", self._instance_discovery)
        r.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid_v2)
        r.add_get("/{tenant}/.well-known/openid-configuration", self._openid_v1)
        r.add_get("/{tenant}/discovery/v2.0/keys", self._keys)
        r.add_get("/{tenant}/discovery/keys", self._keys)
        r.add_post("/{tenant}/oauth2/v2.0/token", self._token_v2)
        r.add_post("/{tenant}/oauth2/token", self._token_v1)

    # --- metadata ------------------------------------------------------------------------------

    async def _instance_discovery(self, request: web.Request) -> web.Response:
        # msal asks this before trusting an authority host it does not know.
        # msal drops the port from the URL it asks about, so only the host name is compared.
        authorize = URL(request.query.get("authorization_endpoint", ""))
        origin = _origin(request)
        if authorize.host != request.url.host or not authorize.path.endswith("/oauth2/v2.0/authorize"):
            return json_response(
                {
                    "error": "invalid_instance",
                    "error_description": "AADSTS50049: Unknown or invalid instance.",
                },
                400,
            )
        tenant = authorize.path.split("/")[1]
        host = request.host
        return json_response(
            {
                "tenant_discovery_endpoint": f"{origin}/{tenant}/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
            }
        )

    async def _openid_v2(self, request: web.Request) -> web.Response:
        base = f"{_origin(request)}/{self._metadata_tenant(request)}"
        return json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    async def _openid_v1(self, request: web.Request) -> web.Response:
        base = f"{_origin(request)}/{self._metadata_tenant(request)}"
        return json_response(
            {
                "token_endpoint": f"{base}/oauth2/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{base}/discovery/keys",
                "issuer": self.issuer_of(self._metadata_tenant(request)),
                "authorization_endpoint": f"{base}/oauth2/authorize",
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
            }
        )

    async def _keys(self, request: web.Request) -> web.Response:
        self._tenant(request, metadata=True)
        return json_response({"keys": [self.signing_key.jwk(f"{_origin(request)}/{self.tenant_id}/v2.0")]})

    # --- tokens --------------------------------------------------------------------------------

    async def _token_v2(self, request: web.Request) -> web.Response:
        form, grant, tenant = await self._authenticate_client(request)
        scope = form.get("scope")
        if not scope:
            raise self._fail(request, 900144, param="scope")
        defaults = [s for s in scope.split() if s.endswith("/.default")]
        if not defaults:
            raise self._fail(request, 1002012, scope=scope)
        token, exp, now = self._mint(
            resource_of(defaults[0]), self.options.token_lifetime_secs, grant, tenant
        )
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": exp - now,
                "ext_expires_in": exp - now,
                "access_token": token,
            }
        )

    async def _token_v1(self, request: web.Request) -> web.Response:
        form, grant, tenant = await self._authenticate_client(request)
        resource = form.get("resource")
        if not resource:
            raise self._fail(request, 900144, param="resource")
        token, exp, now = self._mint(resource_of(resource), self.options.token_lifetime_secs, grant, tenant)
        # The v1 endpoint answers with numbers as strings.
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": str(exp - now),
                "ext_expires_in": str(exp - now),
                "expires_on": str(exp),
                "not_before": str(now),
                "resource": resource,
                "access_token": token,
            }
        )

    async def _authenticate_client(self, request: web.Request) -> tuple[dict[str, str], str, str]:
        """Check tenant, grant type and client credentials, in the order Entra reports problems.

        Returns the form, the grant kind (``client_secret`` or ``client_certificate``) and the tenant id.
        """
        tenant = self._tenant(request, metadata=False)
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        grant_type = form.get("grant_type")
        if not grant_type:
            raise self._fail(request, 900144, param="grant_type")
        if grant_type != "client_credentials":
            raise self._fail(request, 70003, grant_type=grant_type)
        basic_id, basic_secret = decode_basic(request.headers.get("Authorization", "")) or (None, None)
        client_id = form.get("client_id") or basic_id
        if not client_id:
            raise self._fail(request, 900144, param="client_id")
        if client_id != self.client_id:
            raise self._fail(request, 700016, client_id=client_id, tenant=self.options.tenant_domain)
        assertion = form.get("client_assertion")
        if assertion is not None:
            if form.get("client_assertion_type") != _JWT_BEARER:
                raise self._fail(request, 50027, detail=f"client_assertion_type must be '{_JWT_BEARER}'.")
            # The assertion's `aud` must be the token endpoint it is posted to (either version).
            endpoint = f"{_origin(request)}/{request.match_info['tenant']}/oauth2"
            try:
                self.certificate.verify_assertion(
                    assertion, client_id, {f"{endpoint}/v2.0/token", f"{endpoint}/token"}
                )
            except AssertionRejected as exc:
                raise self._fail(request, exc.code, detail=exc.message) from None
            return form, "client_certificate", tenant
        secret = form.get("client_secret") or basic_secret
        if secret is None:
            raise self._fail(request, 7000218)
        if not hmac.compare_digest(secret.encode(), self.client_secret.encode()):
            raise self._fail(request, 7000215, client_id=self.client_id)
        return form, "client_secret", tenant

    def _mint(self, audience: str, lifetime_secs: int, grant: str, tenant: str) -> tuple[str, int, int]:
        issued = int(time.time())
        exp = issued + lifetime_secs
        claims = {
            "aud": audience,
            "iss": self.issuer_of(tenant),
            "iat": issued,
            "nbf": issued,
            "exp": exp,
            "appid": self.client_id,
            # appidacr: "1" = client secret, "2" = certificate.
            "appidacr": "2" if grant == "client_certificate" else "1",
            "idp": self.issuer_of(tenant),
            "idtyp": "app",
            "oid": self.service_principal_id,
            "sub": self.service_principal_id,
            "tid": tenant,
            "uti": uuid.uuid4().hex[:22],
            "ver": "1.0",
        }
        self.tokens_issued[grant] += 1
        return self.signing_key.sign(claims), exp, issued

    def _tenant(self, request: web.Request, *, metadata: bool) -> str:
        tenant = request.match_info["tenant"]
        if tenant == self.options.tenant_domain:
            return self.tenant_id
        if tenant in self.tenant_ids or (metadata and tenant in _META_TENANTS):
            return tenant
        raise self._fail(request, 90002, tenant=tenant)

    def _metadata_tenant(self, request: web.Request) -> str:
        """The tenant a metadata document describes; ``common`` and friends describe the home tenant."""
        tenant = self._tenant(request, metadata=True)
        return self.tenant_id if tenant in _META_TENANTS else tenant

    def _fail(self, request: web.Request, code: int, **fields: str) -> HTTPError:
        """An error in Entra's JSON shape for AADSTS ``code`` (see ``_AADSTS``)."""
        self.failures[str(code)] += 1
        status, error, template = _AADSTS[code]
        trace_id = str(uuid.uuid4())
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        description = template.format(**fields)
        body = {
            "error": error,
            "error_description": (
                f"AADSTS{code}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
                f"Timestamp: {stamp}"
            ),
            "error_codes": [code],
            "timestamp": stamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"{_origin(request)}/error?code={code}",
        }
        return HTTPError(json_response(body, status))


#: AADSTS code -> (HTTP status, OAuth error, description). Wording follows Entra's messages; the
#: 50027 used for a bad client-assertion audience is a choice (Entra's exact code is undocumented).
_AADSTS: dict[int, tuple[int, str, str]] = {
    90002: (
        400,
        "invalid_request",
        "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into "
        "the correct cloud. Check with your subscription administrator, this may happen if there are no "
        "active subscriptions for the tenant.",
    ),
    900144: (400, "invalid_request", "The request body must contain the following parameter: '{param}'."),
    70003: (400, "unsupported_grant_type", "The app requested an unsupported grant type '{grant_type}'."),
    700016: (
        400,
        "unauthorized_client",
        "Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
        "This can happen if the application has not been installed by the administrator of the tenant or "
        "consented to by any user in the tenant. You may have sent your authentication request to the wrong "
        "tenant.",
    ),
    1002012: (
        400,
        "invalid_scope",
        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value "
        "with /.default suffixed to the resource identifier (application ID URI).",
    ),
    7000218: (
        401,
        "invalid_client",
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    ),
    7000215: (
        401,
        "invalid_client",
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
        "value, not the client secret ID, for a secret added to app '{client_id}'.",
    ),
    # Client assertion problems; the detail comes from ClientCertificate.verify_assertion.
    700027: (401, "invalid_client", "{detail}"),
    700024: (401, "invalid_client", "{detail}"),
    700021: (401, "invalid_client", "{detail}"),
    50027: (401, "invalid_client", "{detail}"),
}


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"
