"""Secret redaction for everything logferry writes: log lines, error text, status bodies.

Two layers, applied in this order by :func:`redact`:

1. Known secrets. Whatever the config loader or an auth provider registered with
   :func:`register_secret` is replaced wherever it appears, in its raw form and in the encodings it
   takes on the way out (JSON string escaping, URL quoting).
2. Credential shapes. Values that look like credentials are masked even if nobody registered them:
   ``Authorization`` header values, bare ``Bearer <token>``, and ``client_secret`` / ``access_token`` /
   ``password`` / ... in form, query, JSON and Python-repr syntax. This catches tokens minted at
   runtime (OAuth access tokens) and secrets echoed back by vendor error bodies.

Usage::

    register_secret(config.auth.client_secret)
    log.warning(redact(f"token request failed: {body}"))
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

import orjson

__all__ = ["MASK", "clear_secrets", "is_sensitive_key", "redact", "redact_value", "register_secret"]

MASK = "***"

# Shorter values would mask ordinary words and numbers all over the log ("true", "443").
_MIN_SECRET_LEN = 4

# Key names whose values are credentials. Matched case-insensitively with "_"/"-" optional, so
# client_secret, clientSecret and client-secret are all covered by one entry.
_SENSITIVE_KEY_RE = (
    r"client[_-]?secret|client[_-]?assertion|access[_-]?token|refresh[_-]?token|id[_-]?token"
    r"|pass(?:word|wd)|api[_-]?key|x[_-]api[_-]key|shared[_-]?key|private[_-]?key"
)
_SENSITIVE_KEY_NAMES = frozenset(
    {
        "clientsecret",
        "clientassertion",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "password",
        "passwd",
        "apikey",
        "xapikey",
        "sharedkey",
        "privatekey",
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
    }
)

# Header context: keep the scheme so the line still says what kind of auth was used.
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?P<scheme>[A-Za-z][\w-]*)[ \t]+)?"
    r"(?P<cred>[^\s\"',;}\]]+)",
    re.IGNORECASE,
)
# A bare "Bearer <token68>" outside a header (exception text, repr of a request). The look-ahead skips
# prose such as "Bearer token expired", which would otherwise be mangled into "Bearer *** expired".
# The possessive token plus (?!=") leaves RFC 6750 challenges (Bearer realm="x", error="...") readable.
_BARE_BEARER = re.compile(
    r"\b(?P<scheme>bearer)[ \t]+"
    r"(?!(?:tokens?|auth|authentication|authorization|scheme|header|credentials?)\b)"
    r"(?P<cred>[A-Za-z0-9\-._~+/]++(?!=[\"'])=*+)",
    re.IGNORECASE,
)
# "client_secret": "x"  /  'client_secret': 'x'  (JSON and Python repr)
_QUOTED_KV = re.compile(
    rf"(?P<head>(?P<q>[\"'])(?:{_SENSITIVE_KEY_RE})(?P=q)\s*:\s*)"
    r"(?P<vq>[\"'])(?P<val>(?:\\.|(?!(?P=vq)).)*)(?P=vq)",
    re.IGNORECASE,
)
# \"client_secret\": \"x\"  (a JSON document embedded as a string inside another JSON document)
_ESCAPED_KV = re.compile(
    rf"(?P<head>\\\"(?:{_SENSITIVE_KEY_RE})\\\"\s*:\s*)\\\"(?P<val>.*?)\\\"",
    re.IGNORECASE,
)
# client_secret=x  (form bodies, query strings, logfmt); a quoted value is masked as a whole
_FORM_KV = re.compile(
    rf"(?P<head>(?<![\w-])(?:{_SENSITIVE_KEY_RE})=)"
    r"(?P<val>\"(?:\\.|[^\"\\])*\"|[^&\s\"',;}\]]+)",
    re.IGNORECASE,
)


def _mask_auth_header(match: re.Match[str]) -> str:
    scheme = match["scheme"]
    return f"{match['head']}{scheme} {MASK}" if scheme else f"{match['head']}{MASK}"


def _mask_bare_bearer(match: re.Match[str]) -> str:
    return f"{match['scheme']} {MASK}"


def _mask_quoted(match: re.Match[str]) -> str:
    return f"{match['head']}{match['vq']}{MASK}{match['vq']}"


def _mask_escaped(match: re.Match[str]) -> str:
    return f'{match["head"]}\\"{MASK}\\"'


def _mask_form(match: re.Match[str]) -> str:
    return f"{match['head']}{MASK}"


_SHAPES = (
    (_AUTH_HEADER, _mask_auth_header),
    (_BARE_BEARER, _mask_bare_bearer),
    (_QUOTED_KV, _mask_quoted),
    (_ESCAPED_KV, _mask_escaped),
    (_FORM_KV, _mask_form),
)


def _encoded_forms(value: str) -> set[str]:
    """The spellings a secret takes once it is written into a JSON line or a URL."""
    json_escaped = orjson.dumps(value).decode()[1:-1]
    return {value, json_escaped, quote(value), quote(value, safe=""), quote_plus(value)}


class _SecretRegistry:
    """Process-wide set of secrets, compiled into one alternation.

    Registration is rare (startup, token refresh) and redaction is on every log line, so the
    pattern is rebuilt on write and read without a lock: swapping ``_pattern`` is atomic.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str) -> None:
        if len(value) < _MIN_SECRET_LEN:
            return
        with self._lock:
            forms = {form for form in _encoded_forms(value) if len(form) >= _MIN_SECRET_LEN}
            if forms <= self._secrets:
                return
            self._secrets |= forms
            # Longest first, so a secret that contains another one is masked whole.
            ordered = sorted(self._secrets, key=lambda s: (-len(s), s))
            self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def sub(self, text: str) -> str:
        pattern = self._pattern
        return pattern.sub(MASK, text) if pattern is not None else text


_REGISTRY = _SecretRegistry()


def register_secret(value: str) -> None:
    """Mask ``value`` (and its JSON-escaped and URL-quoted forms) in everything logferry writes.

    Values shorter than 4 characters are ignored: masking them would corrupt ordinary text.
    """
    _REGISTRY.register(value)


def clear_secrets() -> None:
    """Forget every registered secret (for tests)."""
    _REGISTRY.clear()


def redact(text: str) -> str:
    """Return ``text`` with registered secrets and credential-shaped values replaced by ``***``."""
    text = _REGISTRY.sub(text)
    for pattern, mask in _SHAPES:
        text = pattern.sub(mask, text)
    return text


def is_sensitive_key(key: str) -> bool:
    """Whether a mapping key (header name, JSON field, form field) names a credential."""
    return key.replace("_", "").replace("-", "").lower() in _SENSITIVE_KEY_NAMES


def redact_value(value: object) -> object:
    """Redact a structured value before it is serialised.

    Strings go through :func:`redact`; mapping values under a sensitive key (``Authorization``,
    ``client_secret``, ...) are masked whatever they contain; containers are walked. Other scalars are
    returned unchanged, anything else is rendered with ``str`` first, because a repr can carry a secret.
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {str(k): MASK if is_sensitive_key(str(k)) else redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    return redact(str(value))
