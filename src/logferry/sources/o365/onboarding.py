"""The onboarding steps of the Management Activity API, as ``logferry o365`` runs them.

1. A tenant admin consents to the app (``consent-url``): Microsoft's multi-tenant consent link
   (``/common/oauth2/authorize?response_type=code&resource=…``), so an MSSP sends one link to every
   customer tenant.
2. Subscriptions are started per content type (``subscriptions --start``); content appears up to
   12 hours after the first start, and Microsoft asks for 15 minutes between start requests.
"""

from __future__ import annotations

from dataclasses import dataclass

from yarl import URL

from logferry.core.errors import SourceError
from logferry.sources.o365.config import CLOUDS, Cloud
from logferry.sources.o365.source import Office365Source

__all__ = ["SubscriptionState", "consent_url", "subscription_states"]


def consent_url(
    client_id: str, redirect_uri: str, cloud: Cloud = "commercial", tenant: str = "common"
) -> str:
    """The admin-consent link for the app in ``cloud`` (``tenant`` narrows it to one directory)."""
    resource, authority = CLOUDS[cloud]
    query = {
        "response_type": "code",
        "resource": resource,
        "client_id": client_id,
        "redirect_uri": redirect_uri,
    }
    return str(URL(f"{authority}/{tenant}/oauth2/authorize").with_query(query))


@dataclass(frozen=True)
class SubscriptionState:
    tenant_id: str
    content_type: str
    status: str  # enabled, disabled, not started, or the error that prevented reading it


async def subscription_states(source: Office365Source, start: bool) -> list[SubscriptionState]:
    """Each configured tenant and content type with its subscription status, starting it if asked."""
    out: list[SubscriptionState] = []
    for api, content_types in source.apis:
        if start:
            for ct in content_types:
                try:
                    await api.start_subscription(ct)
                except SourceError as exc:
                    out.append(SubscriptionState(api.tenant_id, ct, f"start failed: {exc}"))
        try:
            listed = {str(s.get("contentType")): str(s.get("status")) for s in await api.list_subscriptions()}
        except SourceError as exc:
            out.extend(SubscriptionState(api.tenant_id, ct, f"cannot list: {exc}") for ct in content_types)
            continue
        failed = {s.content_type for s in out if s.tenant_id == api.tenant_id}
        out.extend(
            SubscriptionState(api.tenant_id, ct, listed.get(ct, "not started"))
            for ct in content_types
            if ct not in failed
        )
    return out
