"""``logferry o365``: the consent link and the subscription onboarding step, as a user runs them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from logferry.sim.o365 import O365Sim
from tests.e2e.test_cli import logferry
from tests.sources.test_office365 import o365_sim, o365_source


def test_consent_url_is_the_multi_tenant_admin_consent_link_of_the_cloud() -> None:
    done = logferry(
        "o365", "consent-url", "--client-id", "0b5d6c3e-1111-4222-8333-944455556666",
        "--redirect-uri", "https://localhost/consented", "--cloud", "dod",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = urlsplit(done.stdout.strip())
    assert (url.scheme, url.netloc, url.path) == (
        "https",
        "login.microsoftonline.us",
        "/common/oauth2/authorize",
    )
    assert parse_qs(url.query) == {
        "response_type": ["code"],
        "resource": ["https://manage.protection.apps.mil"],
        "client_id": ["0b5d6c3e-1111-4222-8333-944455556666"],
        "redirect_uri": ["https://localhost/consented"],
    }


def write_config(sim: O365Sim, tmp_path: Path) -> Path:
    path = tmp_path / "logferry.yaml"
    src = o365_source(sim, content_types=["Audit.Exchange", "DLP.All"])
    cfg = {
        "state": {"path": str(tmp_path / "state.db")},
        "sources": {"o365": src},
        "sinks": {"out": {"type": "file", "inputs": ["o365"], "path": str(tmp_path / "out.ndjson")}},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


async def test_subscriptions_lists_then_starts_every_tenant_and_content_type(tmp_path: Path) -> None:
    async with o365_sim(tenants=2) as sim:
        path = write_config(sim, tmp_path)
        listed = await asyncio.to_thread(logferry, "o365", "subscriptions", "-c", str(path))
        assert listed.returncode == 1, listed.stderr
        assert sorted(listed.stdout.splitlines()) == sorted(
            f"o365 {t} {ct}: not started" for t in sim.tenant_ids for ct in ("Audit.Exchange", "DLP.All")
        )
        started = await asyncio.to_thread(logferry, "o365", "subscriptions", "-c", str(path), "--start")
        assert started.returncode == 0, started.stdout + started.stderr
        assert sorted(started.stdout.splitlines()) == sorted(
            f"o365 {t} {ct}: enabled" for t in sim.tenant_ids for ct in ("Audit.Exchange", "DLP.All")
        )
        assert sim.subscriptions == {
            (t, ct): "enabled" for t in sim.tenant_ids for ct in ("Audit.Exchange", "DLP.All")
        }
