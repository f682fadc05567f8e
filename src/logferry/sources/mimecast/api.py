"""The HTTP clients a Mimecast source uses and the vendor's error conventions.

One limiter per Mimecast *user* (mimecast.md §4: limits apply per user across all keys), shared
by every source naming that account. ``X-RateLimit-Reset`` is in milliseconds. Batch file URLs
are pre-signed downloads on another host: they get a client with no credentials at all.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from logferry.auth.oauth2 import ClientCredentials
from logferry.config.base import BuildContext
from logferry.core.errors import ConfigError, MalformedPage, VendorAPIError
from logferry.net.http import HttpClient, RateLimitHeaders, RequestAuth
from logferry.sources.mimecast.auth import MimecastHmac
from logferry.sources.mimecast.config import HmacAuth, MimecastConfig

__all__ = ["RATE_HEADERS", "MimecastApi", "fail_message"]

RATE_HEADERS = RateLimitHeaders(
    remaining=("X-RateLimit-Remaining",), reset=("X-RateLimit-Reset",), reset_unit_secs=0.001
)
#: Requests in flight per account. Mimecast documents no concurrency limit; its own connectors
#: make one call at a time, so a few keep lanes moving without bursting the quota.
MAX_CONCURRENT = 4


def fail_message(doc: Any) -> str | None:
    """``code: message`` of the first entry of a non-empty ``fail`` array, else None.

    Two shapes exist: ``fail[].errors[].{code, message}`` (API 1.0 and 2.0 function errors, often
    on HTTP 200) and ``fail[].{code, message}`` (API 2.0 401s).
    """
    fail = doc.get("fail") if isinstance(doc, dict) else None
    if not isinstance(fail, list) or not fail:
        return None
    first = fail[0] if isinstance(fail[0], dict) else {}
    errors = first.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
    code, message = first.get("code"), first.get("message")
    parts = [str(p) for p in (code, message) if p]
    return ": ".join(parts) if parts else orjson.dumps(fail)[:200].decode()


class MimecastApi:
    def __init__(self, name: str, cfg: MimecastConfig, ctx: BuildContext) -> None:
        self.base = cfg.base_url
        session = ctx.session(cfg.tls.settings())
        limiter = ctx.limiter(
            ("mimecast", self.base, cfg.account_key()), cfg.max_requests_per_sec, MAX_CONCURRENT
        )
        common: dict[str, Any] = {
            "limiter": limiter,
            "timeout_secs": cfg.timeout_secs,
            "component": name,
            "metrics": ctx.metrics,
            "rate_headers": RATE_HEADERS,
        }
        # Token and login calls spend the same user's quota, so they share the limiter.
        plain = HttpClient(session, **common)
        auth: RequestAuth | ClientCredentials
        if isinstance(cfg.auth, HmacAuth):
            a = cfg.auth
            try:
                base64.b64decode(a.secret_key.reveal(), validate=True)
            except (binascii.Error, ValueError):
                # Checked here, not in the model: `logferry validate` runs with placeholder secrets.
                raise ConfigError(
                    [
                        f"sources.{name}.auth.secret_key: is not base64; "
                        "paste it exactly as the console shows it"
                    ]
                ) from None
            auth = MimecastHmac(
                base_url=self.base,
                app_id=a.app_id,
                app_key=a.app_key,
                access_key=a.access_key,
                secret_key=a.secret_key,
                login_http=plain,
                email=a.email,
                password=a.password,
            )
        else:
            auth = ClientCredentials(
                plain,
                f"{self.base}/oauth/token",
                cfg.auth.client_id,
                cfg.auth.client_secret,
                vendor="Mimecast",
            )
        self.auth = auth
        self.http = HttpClient(session, auth=auth, **common)
        self.files = HttpClient(session, timeout_secs=cfg.timeout_secs, component=name, metrics=ctx.metrics)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST a JSON API call; a non-empty ``fail`` array is an error even on HTTP 200."""
        resp = await self.http.request(
            "POST", self.base + path, json=body, headers={"Accept": "application/json"}
        )
        try:
            doc = resp.json()
        except orjson.JSONDecodeError:
            raise MalformedPage(
                f"Mimecast {path} answered HTTP {resp.status} with a body that is not JSON", resp.body
            ) from None
        problem = fail_message(doc)
        if problem is not None:
            raise VendorAPIError(
                f"Mimecast {path} failed (HTTP {resp.status} with fail[]): {problem}", resp.status
            )
        return doc
