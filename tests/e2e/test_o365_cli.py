"""``logferry o365``: the consent link and the subscription onboarding step, as a user runs them."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml

from logferry.sim.o365 import O365Sim
from tests.conftest import kill_after_progress, output_bytes, read_ndjson, wait_for
from tests.conftest import start_logferry as start
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


async def test_sigkill_mid_window_with_pending_blobs_loses_nothing(tmp_path: Path) -> None:
    async with o365_sim(
        tenants=2,
        backlog_secs=2 * 3600,
        blob_interval_secs=30,
        records_per_blob=5,
        live=False,
        latency_secs=0.02,
    ) as sim:
        want = set().union(
            *(
                sim.expected_ids(t, ct, 0, time.time())
                for t in sim.tenant_ids
                for ct in ("Audit.Exchange", "DLP.All")
            )
        )
        path = write_config(sim, tmp_path)
        cfg = yaml.safe_load(path.read_text())
        # One 24 h window per lane, downloaded two blobs at a time: kills land between pages and blobs.
        cfg["sources"]["o365"].update(window_secs=86400, concurrency=2)
        path.write_text(yaml.safe_dump(cfg))
        out = tmp_path / "out.ndjson"
        rng = random.Random(int(os.environ.get("LOGFERRY_CRASH_SEED", "3")))
        for _ in range(4):
            await kill_after_progress(
                path, tmp_path / "run.log", lambda: output_bytes(out), rng.uniform(0.2, 1.5)
            )
        assert not want <= {r["Id"] for r in read_ndjson(out)}, "the kills must land before the end"
        proc = await start(path, tmp_path / "run.log")
        try:
            await wait_for(lambda: want <= {r["Id"] for r in read_ndjson(out)}, timeout=60)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
        got = [r["Id"] for r in read_ndjson(out)]
        # The file sink may repeat what it wrote but had not acknowledged when killed; the source
        # side (dedupe on Id, pending blobs in the cursor) adds no repeats of its own.
        assert set(got) == want
        assert len(got) - len(want) <= 4 * 2000, "more repeats than one unacknowledged batch per kill"
