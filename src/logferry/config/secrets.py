"""Secret references: ``${env:NAME}``, ``${file:PATH}`` and Key Vault references.

Secrets reach logferry only by reference. Loading a config resolves every reference in the
YAML tree into a ``Ref`` (a ``str`` that remembers where it came from); a ``Secret`` field
accepts only a ``Ref``, so a literal secret in a config file is refused with the fix.
Resolved secret values are registered with the log redactor before anything can log them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

__all__ = ["KEYVAULT_RE", "REF_RE", "Ref", "Secret", "resolve_refs"]

REF_RE = re.compile(r"^\$\{(env|file):([^}]+)\}$")
KEYVAULT_RE = re.compile(r"^@Microsoft\.KeyVault\(SecretUri=(https://[^)]+)\)$")
_EMBEDDED = re.compile(r"\$\{(env|file):([^}]+)\}")

SECRET_HELP = "write it as a reference: ${env:NAME}, ${file:/path} or @Microsoft.KeyVault(SecretUri=...)"


class Ref(str):
    """A string whose value was read from a reference; ``ref`` is what the config said."""

    ref: str

    def __new__(cls, value: str, ref: str) -> Ref:
        obj = super().__new__(cls, value)
        obj.ref = ref
        return obj


class Secret:
    """A secret value that never shows itself in ``repr``, logs, metrics or state."""

    __slots__ = ("_value", "ref")

    def __init__(self, value: str, ref: str) -> None:
        self._value = value
        self.ref = ref

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.ref!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def _validate(cls, value: Any) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, Ref):
            from logferry.observe.redact import register_secret

            register_secret(str(value))
            return cls(str(value), value.ref)
        raise PydanticCustomError("secret_literal", "a secret must not be written inline; " + SECRET_HELP)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda s: s.ref)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "pattern": r"^(\$\{(env|file):[^}]+\}|@Microsoft\.KeyVault\(SecretUri=https://[^)]+\))$",
            "description": "A secret, by reference: " + SECRET_HELP.removeprefix("write it as a reference: "),
            "examples": ["${env:MESHSTACK_CLIENT_SECRET}"],
        }


def _resolve_one(kind: str, arg: str, base_dir: Path) -> str:
    if kind == "env":
        if arg not in os.environ:
            raise LookupError(f"environment variable {arg} is not set; export it")
        return os.environ[arg]
    path = Path(arg).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        return path.read_text("utf-8").rstrip("\r\n")
    except OSError as exc:
        raise LookupError(f"cannot read secret file {path}: {exc.strerror}") from exc


def _keyvault(uri: str) -> str:
    """The value of the Key Vault secret at SecretUri ``uri`` (``LookupError`` with one line otherwise).

    Production authenticates with ``DefaultAzureCredential`` (managed identity, ``AZURE_*``
    variables, Azure CLI, ...). Two adjustments apply only when ``AZURE_AUTHORITY_HOST`` names a
    host that is not one of Microsoft's Entra hosts, so production is unchanged:

    * ``disable_instance_discovery=True``: msal otherwise asks login.microsoftonline.com whether the
      authority is known and refuses one it is not (a private cloud, Azure Stack, the Entra
      simulator) with ``invalid_instance``.
    * Authority and vault both on loopback (local Entra and Key Vault simulators): only the service
      principal from ``AZURE_TENANT_ID``/``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET``
      (``EnvironmentCredential``, DefaultAzureCredential's first link) is used, and the SecretClient
      gets ``verify_challenge_resource=False``. That check wants the vault host under the
      challenge's resource domain (``*.vault.azure.net``), which ``127.0.0.1`` never is. Relaxing it
      is safe here because the client's only token comes from the local authority: no managed
      identity or CLI fallback can hand a real Microsoft token to the loopback vault.

    TLS trust follows requests: ``REQUESTS_CA_BUNDLE`` names a private CA where one is needed.
    Errors never include the secret's value.
    """
    try:
        from azure.identity import DefaultAzureCredential, EnvironmentCredential
        from azure.keyvault.secrets import SecretClient
    except ImportError as exc:
        raise LookupError("Key Vault references need: pip install 'logferry[keyvault]'") from exc

    # msal's WELL_KNOWN_AUTHORITY_HOSTS plus azure-identity's AzureAuthorityHosts.
    microsoft_hosts = {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "sts.windows.net",
        "login.chinacloudapi.cn",
        "login.partner.microsoftonline.cn",
        "login.microsoftonline.de",
        "login-us.microsoftonline.com",
        "login.microsoftonline.us",
        "login.usgovcloudapi.net",
        "login.sovcloud-identity.fr",
        "login.sovcloud-identity.de",
        "login.sovcloud-identity.sg",
    }

    def loopback(host: str | None) -> bool:
        if not host:
            return False
        try:
            return host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    parts = urlparse(uri)
    segs = [s for s in parts.path.split("/") if s]
    if not parts.hostname or not 2 <= len(segs) <= 3 or segs[0] != "secrets":
        raise LookupError(
            f"Key Vault SecretUri must look like https://VAULT/secrets/NAME[/VERSION], got {uri}"
        )
    name, version = segs[1], segs[2] if len(segs) > 2 else None
    vault = f"{parts.scheme}://{parts.netloc}"
    authority = os.environ.get("AZURE_AUTHORITY_HOST", "").strip()
    authority_host = urlparse(authority if "://" in authority else f"https://{authority}").hostname
    custom_authority = bool(authority_host) and str(authority_host).lower() not in microsoft_hosts
    local = custom_authority and loopback(authority_host) and loopback(parts.hostname)
    client_options: dict[str, Any] = {"verify_challenge_resource": False} if local else {}
    try:
        if local:
            credential: Any = EnvironmentCredential(disable_instance_discovery=True)
        elif custom_authority:
            credential = DefaultAzureCredential(disable_instance_discovery=True)
        else:
            credential = DefaultAzureCredential()
        with credential, SecretClient(vault_url=vault, credential=credential, **client_options) as client:
            value = client.get_secret(name, version).value
    except Exception as exc:
        status, code = getattr(exc, "status_code", None), getattr(getattr(exc, "error", None), "code", None)
        if status == 404:
            raise LookupError(f"Key Vault secret {name} not found in {vault} ({code or 'HTTP 404'})") from exc
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = getattr(getattr(exc, "error", None), "message", None) or (lines[0] if lines else "")
        detail = detail.split(" Trace ID: ")[0]  # Entra's diagnostics, not for a config error
        detail = detail if len(detail) <= 300 else detail[:297] + "..."
        head = " ".join(str(x) for x in (type(exc).__name__, status, code) if x)
        raise LookupError(
            f"cannot read Key Vault secret {name} from {vault}: {head}" + (f": {detail}" if detail else "")
        ) from exc
    return value or ""


def resolve_refs(node: Any, base_dir: Path, problems: list[str], path: str = "", remote: bool = True) -> Any:
    """Return ``node`` with every reference replaced by a ``Ref``; problems are appended.

    ``remote=False`` leaves Key Vault references unresolved (as a placeholder ``Ref``), so
    ``logferry validate`` never needs the network.
    """
    if isinstance(node, dict):
        return {
            k: resolve_refs(v, base_dir, problems, f"{path}.{k}" if path else str(k), remote)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [resolve_refs(v, base_dir, problems, f"{path}[{i}]", remote) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node
    m = REF_RE.match(node)
    kv = KEYVAULT_RE.match(node)
    try:
        if m:
            return Ref(_resolve_one(m.group(1), m.group(2), base_dir), node)
        if kv:
            return Ref(_keyvault(kv.group(1)) if remote else "", node)
        if _EMBEDDED.search(node):
            # References inside a longer string (a URL with ${env:HOST}) are plain config.
            return _EMBEDDED.sub(lambda mm: _resolve_one(mm.group(1), mm.group(2), base_dir), node)
    except LookupError as exc:
        problems.append(f"{path}: {exc}")
        return Ref("", node)
    return node
