"""Office 365 Management Activity API source against the O365 simulator, through the real pipeline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from cryptography.hazmat.primitives import serialization

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.observe.metrics import Metrics
from logferry.sim.entra import EntraSim
from logferry.sim.o365 import O365Sim
from logferry.sim.o365_content import CONTENT_TYPES, BlobRef
from logferry.sim.peers import free_port
from logferry.sim.sentinel import SentinelSim
from logferry.sources.o365.config import Office365Config
from logferry.sources.o365.source import Office365Source
from tests.conftest import (
    client_secret_auth,
    read_ndjson,
    running,
    secret_ref,
    sentinel_sink_config,
    wait_for,
)

HOUR = 3600.0
#: A well-formed tenant id for config-only tests.
TENANT = "3f1e2d3c-4b5a-4e8a-b6c4-0f1e2d3c4b5a"


@asynccontextmanager
async def o365_sim(**options: Any) -> AsyncIterator[O365Sim]:
    """The simulator over TLS: msal talks to an Entra authority only over https."""
    sim = O365Sim(**options)
    await sim.start(tls=True)
    try:
        yield sim
    finally:
        await sim.stop()


def o365_source(sim: O365Sim, **overrides: Any) -> dict[str, Any]:
    creds = sim.credentials
    return {
        "type": "office365",
        "api_url": sim.url,
        "authority_host": creds["authority_host"],
        "auth": client_secret_auth(
            creds["tenant_id"], creds["client_id"], "TEST_O365_SECRET", creds["client_secret"]
        ),
        "tenants": [{"tenant_id": t} for t in creds["tenant_ids"]],
        # Further back than any test's backlog: every blob the simulator holds is wanted.
        "initial_lookback_secs": 6 * HOUR,
        "window_secs": HOUR,
        "lag_secs": 0,
        "interval_secs": 1,
        "tls": {"ca_file": sim.ca_file},
        **overrides,
    }


def pipeline(sim: O365Sim, out: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "sources": {"o365": o365_source(sim, **overrides)},
        "sinks": {"out": {"type": "file", "inputs": ["o365"], "path": str(out), "rotate_max_bytes": 0}},
    }


def expected(sim: O365Sim, since: float = 0.0, content_types: tuple[str, ...] = CONTENT_TYPES) -> set[str]:
    now = time.time()
    ids: set[str] = set()
    for tenant in sim.tenant_ids:
        for ct in content_types:
            ids |= sim.expected_ids(tenant, ct, since, now + 1)
    return ids


def ids(out: Path) -> list[str]:
    return [r["Id"] for r in read_ndjson(out)] if out.exists() else []


async def stats(sim: O365Sim) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{sim.url}/sim/stats", ssl=False) as r:
        data: dict[str, Any] = await r.json()
        return data


async def test_collects_every_tenant_and_content_type_once_with_publisher_identifier(tmp_path: Path) -> None:
    async with o365_sim(tenants=3, backlog_secs=4 * HOUR, blob_interval_secs=600, records_per_blob=5) as sim:
        out = tmp_path / "out.ndjson"
        want = expected(sim)
        async with running(pipeline(sim, out), tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=60)
        got = ids(out)
        assert len(got) == len(set(got)), "a record Id was delivered twice"
        st = await stats(sim)
        assert st["requests_without_publisher"] == 0
        assert st["records_served"] > len(got), "the simulator serves duplicates by design; none got through"
        assert set(st["subscriptions"].values()) == {"enabled"}
        assert len(st["subscriptions"]) == 3 * len(CONTENT_TYPES)
        assert {r["OrganizationId"] for r in read_ndjson(out)} == set(sim.tenant_ids)


def metric(service: Any, name: str) -> float:
    """Sum of a Prometheus counter across its labels, read from the service's registry."""
    total = 0.0
    for family in service.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


async def test_next_page_uri_chains_are_followed_to_the_end(tmp_path: Path) -> None:
    async with o365_sim(
        backlog_secs=3 * HOUR, blob_interval_secs=60, records_per_blob=2, list_page_size=7
    ) as sim:
        out = tmp_path / "out.ndjson"
        want = expected(sim, content_types=("Audit.Exchange",))
        cfg = pipeline(sim, out, window_secs=24 * HOUR, content_types=["Audit.Exchange"])
        async with running(cfg, tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
        st = await stats(sim)
        # 120 blobs in one window at 7 per page: the chain is at least 17 pages long.
        assert st["blobs_listed"] >= 120
        assert st["requests_without_publisher"] == 0


async def test_af429_throttling_slows_down_and_loses_nothing(tmp_path: Path) -> None:
    async with o365_sim(
        backlog_secs=HOUR,
        blob_interval_secs=120,
        records_per_blob=2,
        requests_per_minute=5,
        throttle_window_secs=1.0,
    ) as sim:
        out = tmp_path / "out.ndjson"
        want = expected(sim, content_types=("Audit.SharePoint",))
        # The client's budget is ten times the tenant's real one, as when Microsoft lowers a quota.
        cfg = pipeline(sim, out, content_types=["Audit.SharePoint"], requests_per_minute=600)
        async with running(cfg, tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=90)
        st = await stats(sim)
        assert st["throttled"] >= 1
        got = ids(out)
        assert len(got) == len(set(got))


async def test_expired_content_is_counted_and_skipped_not_retried(tmp_path: Path) -> None:
    async with o365_sim(
        backlog_secs=HOUR, blob_interval_secs=120, records_per_blob=3, expired_ratio=0.3, live=False
    ) as sim:
        out = tmp_path / "out.ndjson"
        tenant, ct = sim.tenant_ids[0], "Audit.General"
        blobs = [
            BlobRef(tenant, ct, k) for k in sim.content.blobs_between(tenant, ct, 0, time.time(), time.time())
        ]
        expired = [b for b in blobs if sim.content.expires(b) < time.time()]
        live = [b for b in blobs if b not in expired]
        assert expired and live
        want = {r["Id"] for b in live for r in sim.content.records(b)}
        cfg = pipeline(sim, out, content_types=[ct])
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
            await wait_for(lambda: metric(service, "logferry_source_items_skipped_total") >= len(expired))
            await asyncio.sleep(1.5)  # more polls: a skipped blob must not come back
            assert metric(service, "logferry_source_items_skipped_total") == len(expired)
        st = await stats(sim)
        assert st["expired_requested"] == 0, "a blob listed as expired must not be downloaded"
        assert st["blobs_served"] == len(live)


def source_health(service: Any) -> Any:
    return next(c for c in service.pipeline.status().components if c.name == "o365")


def caught_up(service: Any) -> bool:
    """Every lane has listed up to now and idles until its next poll: no listing comes before it."""
    source = service.pipeline.sources["o365"].source
    assert isinstance(source, Office365Source)
    now = time.monotonic()
    return bool(source._lanes) and all(lane.next_poll > now for lane in source._lanes)


async def test_restart_mid_window_resumes_pending_blobs_without_gaps_or_duplicates(tmp_path: Path) -> None:
    async with o365_sim(
        backlog_secs=2 * HOUR, blob_interval_secs=60, records_per_blob=2, list_page_size=50, latency_secs=0.05
    ) as sim:
        out = tmp_path / "out.ndjson"
        want = expected(sim, content_types=("Audit.Exchange",))
        # One 24 h window holding 60 blobs, listed 50 per page, downloaded two at a time.
        slow = {
            "window_secs": 24 * HOUR,
            "content_types": ["Audit.Exchange"],
            "concurrency": 2,
        }
        async with running(pipeline(sim, out, **slow), tmp_path):
            await wait_for(lambda: len(ids(out)) >= 10)
        lane = (await reopened_cursor(tmp_path))["lanes"][f"{sim.tenant_ids[0]}/Audit.Exchange"]
        assert lane["pending"] or lane["page"], (
            "stopped mid-window: the unfinished work must be in the cursor"
        )
        assert not want <= set(ids(out))
        async with running(pipeline(sim, out, **slow), tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=60)
        got = ids(out)
        assert len(got) == len(set(got))


async def reopened_cursor(tmp_path: Path) -> dict[str, Any]:
    from logferry.state.sqlite import SQLiteStateStore

    store = SQLiteStateStore(tmp_path / "state.db")
    await store.open()
    try:
        cursor = await store.get_cursor("o365")
    finally:
        await store.close()
    assert isinstance(cursor, dict)
    return cursor


async def test_catch_up_from_beyond_seven_days_uses_24h_windows_the_api_accepts(tmp_path: Path) -> None:
    async with o365_sim(backlog_secs=9 * 24 * HOUR, blob_interval_secs=4 * HOUR, records_per_blob=1) as sim:
        out = tmp_path / "out.ndjson"
        now = time.time()
        # Asked for 10 days: collects what the API still serves, from the 7-day edge (less a margin).
        want = expected(sim, now - 7 * 24 * HOUR + 600 + 120, ("Audit.AzureActiveDirectory",))
        cfg = pipeline(
            sim,
            out,
            initial_lookback_secs=10 * 24 * HOUR,
            window_secs=24 * HOUR,
            content_types=["Audit.AzureActiveDirectory"],
        )
        async with running(cfg, tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
        st = await stats(sim)
        assert st["requests"].get("400", 0) == 0, "a window broke the API's 24 h / 7 day rules"
        # Nothing from before the edge (two minutes of slack for the time the source took to start).
        servable = expected(sim, now - 7 * 24 * HOUR + 600 - 120, ("Audit.AzureActiveDirectory",))
        assert set(ids(out)) <= servable


@pytest.mark.parametrize(
    ("change", "field", "phrase"),
    [
        ({"window_secs": 2 * 86400}, "sources.o365.window_secs", "less than or equal to 86400"),
        (
            {"tenants": [{"tenant_id": "contoso.onmicrosoft.com"}]},
            "sources.o365.tenants[0].tenant_id",
            "not a tenant GUID; use the directory id",
        ),
        ({"content_types": ["Audit.Everything"]}, "sources.o365.content_types[0]", "'Audit.Exchange'"),
        ({"api_url": "http://manage.example.com"}, "sources.o365.api_url", "https"),
    ],
)
def test_invalid_config_names_the_field_and_the_fix(
    tmp_path: Path, change: dict[str, Any], field: str, phrase: str
) -> None:
    raw = {
        "sources": {
            "o365": {
                "type": "office365",
                "auth": client_secret_auth(
                    TENANT, "0b5d6c3e-1111-4222-8333-944455556666", "TEST_O365_CFG", "s"
                ),
                **change,
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["o365"], "path": str(tmp_path / "o.ndjson")}},
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, tmp_path)
    assert any(p.startswith(field) and phrase in p for p in exc.value.problems), exc.value.problems


def test_duplicate_tenants_are_refused(tmp_path: Path) -> None:
    raw = {
        "sources": {
            "o365": {
                "type": "office365",
                "auth": client_secret_auth(TENANT, "c", "TEST_O365_CFG", "s"),
                "tenants": [{"tenant_id": TENANT}, {"tenant_id": TENANT.upper()}],
            }
        },
        "sinks": {"out": {"type": "file", "inputs": ["o365"], "path": str(tmp_path / "o.ndjson")}},
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, tmp_path)
    assert any("more than once" in p for p in exc.value.problems)


def encrypted_pem(sim: O365Sim, passphrase: bytes) -> str:
    assert sim.entra is not None
    bundle = sim.entra.certificate.bundle
    key = bundle.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    return (key + bundle.cert_pem).decode()


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_certificate_with_passphrase_signs_in_with_either_token_form(
    tmp_path: Path, version: str
) -> None:
    async with o365_sim(backlog_secs=HOUR, blob_interval_secs=600, records_per_blob=2) as sim:
        assert sim.entra is not None
        out = tmp_path / "out.ndjson"
        want = expected(sim, content_types=("DLP.All",))
        auth = {
            "type": "certificate",
            "tenant_id": sim.entra.tenant_id,
            "client_id": sim.entra.client_id,
            "certificate": secret_ref(f"TEST_O365_PEM_{version}", encrypted_pem(sim, b"correct horse")),
            "passphrase": secret_ref(f"TEST_O365_PASS_{version}", "correct horse"),
        }
        cfg = pipeline(sim, out, auth=auth, token_version=version, content_types=["DLP.All"])
        async with running(cfg, tmp_path):
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
        assert sim.entra.tokens_issued["client_certificate"] >= 1
        assert sim.entra.tokens_issued["client_secret"] == 0


async def test_check_reports_subscriptions_and_names_credential_problems(tmp_path: Path) -> None:
    async with o365_sim(tenants=2) as sim:
        src = o365_source(sim, start_subscriptions=False, content_types=["Audit.Exchange"])
        cfg = parse_config(
            {"sources": {"o365": src}, "sinks": {"out": {"type": "file", "inputs": ["o365"], "path": "x"}}},
            tmp_path,
        )
        ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
        try:
            source = cfg.sources["o365"].build("o365", ctx)
            result = await source.check()
            assert not result.ok and "Audit.Exchange subscription is not started" in result.message
            sim.subscriptions[(sim.tenant_ids[0], "Audit.Exchange")] = "enabled"
            sim.subscriptions[(sim.tenant_ids[1], "Audit.Exchange")] = "enabled"
            result = await source.check()
            assert result.ok and "Audit.Exchange: enabled" in result.message, result.message
            wrong = {**src["auth"], "client_secret": secret_ref("TEST_O365_WRONG", "not-the-secret")}
            cfg = parse_config(
                {
                    "sources": {"o365": {**src, "auth": wrong}},
                    "sinks": {"out": {"type": "file", "inputs": ["o365"], "path": "x"}},
                },
                tmp_path,
            )
            result = await cfg.sources["o365"].build("o365", ctx).check()
            assert (
                not result.ok and "invalid_client" in result.message and "check client_id" in result.message
            )
        finally:
            await ctx.close()


async def test_a_malformed_blob_is_dead_lettered_and_collection_goes_on(tmp_path: Path) -> None:
    async with o365_sim(
        backlog_secs=HOUR,
        blob_interval_secs=300,
        records_per_blob=2,
        live=False,
        faults=[{"path": "/api/v1.0/*/activity/feed/audit/*", "status": 200, "body": {"not": "an array"}}],
    ) as sim:
        out = tmp_path / "out.ndjson"
        cfg = pipeline(sim, out, content_types=["Audit.SharePoint"])
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: source_health(service).details.get("last_success") is not None, timeout=30)
            letters = await service.store.dead_letters()
            assert [d.reason for d in letters] == [
                f"tenant {sim.tenant_ids[0]} Audit.SharePoint: content blob is not a JSON array"
            ]
            assert orjson.loads(letters[0].payload) == {"not": "an array"}
        st = await stats(sim)
        # Every other blob of the hour was downloaded and delivered.
        assert st["blobs_served"] == 11
        assert len(set(ids(out))) >= 11 * 2


async def test_one_failing_tenant_turns_the_source_red_while_the_others_deliver(tmp_path: Path) -> None:
    async with o365_sim(backlog_secs=HOUR, blob_interval_secs=600, records_per_blob=2) as sim:
        out = tmp_path / "out.ndjson"
        want = expected(sim, content_types=("Audit.Exchange",))
        stranger = "0d5c1e7a-9999-4bbb-8ccc-123456789abc"  # never consented to the app
        tenants = [{"tenant_id": sim.tenant_ids[0]}, {"tenant_id": stranger}]
        cfg = pipeline(
            sim,
            out,
            tenants=tenants,
            content_types=["Audit.Exchange"],
            stale_after_secs=2,
        )
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: want <= set(ids(out)), timeout=30)
            await wait_for(lambda: not source_health(service).healthy, timeout=10)
            health = source_health(service)
            assert stranger in (health.reason or "")


async def test_audit_records_land_in_the_o365audit_table_of_sentinel(tmp_path: Path) -> None:
    entra = EntraSim()
    await entra.start(tls=True)
    sentinel = SentinelSim(entra=entra)
    await sentinel.start(tls=True)
    try:
        async with o365_sim(
            entra=entra, backlog_secs=HOUR, blob_interval_secs=600, records_per_blob=3
        ) as sim:
            want = expected(sim, content_types=("Audit.SharePoint",))
            cfg = {
                "sources": {"o365": o365_source(sim, content_types=["Audit.SharePoint"])},
                "sinks": {
                    "sentinel": sentinel_sink_config(entra, sentinel, inputs=["o365"], table="O365Audit_CL")
                },
            }

            async def rows() -> list[dict[str, Any]]:
                url = f"{sentinel.url}/sim/tables/O365Audit_CL/rows"
                async with aiohttp.ClientSession() as s, s.get(url, ssl=False) as r:
                    data: list[dict[str, Any]] = await r.json()
                    return data

            async with running(cfg, tmp_path):
                await wait_for(lambda: _has_all(rows, want), timeout=30)
            row = (await rows())[0]
            assert row["TimeGenerated"] == row["AuditData"]["CreationTime"]
            assert row["RecordId"] == row["AuditData"]["Id"]
            assert (row["Workload"] in ("SharePoint", "OneDrive")) and row["RecordType"] == 6
            assert row["OrganizationId"] == sim.tenant_ids[0]
    finally:
        await sentinel.stop()
        await entra.stop()


async def _has_all(rows: Any, want: set[str]) -> bool:
    return want <= {r["RecordId"] for r in await rows()}


async def test_webhook_notifications_fetch_new_content_between_polls(tmp_path: Path) -> None:
    port = free_port()
    async with o365_sim(
        backlog_secs=60, blob_interval_secs=1, records_per_blob=1, notify_interval_secs=0.5
    ) as sim:
        out = tmp_path / "out.ndjson"
        webhook = {
            "address": f"http://127.0.0.1:{port}/o365/notifications",
            "listen": f"127.0.0.1:{port}",
            "auth_id": secret_ref("TEST_O365_HOOK", "hook-shared-value"),
        }
        # Polls an hour apart: after the first catch-up only notifications can bring content.
        cfg = pipeline(sim, out, content_types=["Audit.Exchange"], interval_secs=3600, webhook=webhook)
        backlog = expected(sim, content_types=("Audit.Exchange",))
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: backlog <= set(ids(out)), timeout=15)
            # However slow its last cycles, the catch-up poll has listed its last window once the
            # lane idles until its next poll.
            await wait_for(lambda: caught_up(service), timeout=15)
            listed = (await stats(sim))["blobs_listed"]
            since = time.time()
            await wait_for(
                lambda: len(expected(sim, since, ("Audit.Exchange",)) & set(ids(out))) >= 3, timeout=15
            )
            async with aiohttp.ClientSession() as s:
                async with s.post(webhook["address"], json=[], headers={"Webhook-AuthID": "guess"}) as r:
                    assert r.status == 401
                headers = {"Webhook-AuthID": "hook-shared-value", "Webhook-ValidationCode": "abc"}
                async with s.post(webhook["address"], json={"validationCode": "abc"}, headers=headers) as r:
                    assert r.status == 200
        st = await stats(sim)
        assert st["webhooks_validated"] == 1 and st["notifications_sent"] >= 3
        assert st["blobs_listed"] == listed, "no listing poll ran: the new blobs came by notification"
        assert st["webhooks"] == {f"{sim.tenant_ids[0]}/Audit.Exchange": webhook["address"]}
        got = ids(out)
        assert len(got) == len(set(got))


async def test_a_disabled_subscription_is_reported_without_start_requests_every_retry(tmp_path: Path) -> None:
    async with o365_sim(backlog_secs=HOUR, blob_interval_secs=600, records_per_blob=1) as sim:
        out = tmp_path / "out.ndjson"
        cfg = pipeline(sim, out, content_types=["Audit.General"], stale_after_secs=2)
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: expected(sim, content_types=("Audit.General",)) <= set(ids(out)))
            # A tenant admin disables the subscription.
            sim.subscriptions[(sim.tenant_ids[0], "Audit.General")] = "disabled"
            await wait_for(lambda: not source_health(service).healthy, timeout=15)
            assert "AF20023" in (source_health(service).reason or "")
        st = await stats(sim)
        # One start at startup; Microsoft asks for 15 minutes between start requests, so the
        # failing lane did not send another one on each retry.
        assert st["subscriptions_started"] == 1
        assert st["subscriptions"] == {f"{sim.tenant_ids[0]}/Audit.General": "disabled"}


@pytest.mark.parametrize(
    ("cloud", "root", "authority"),
    [
        ("commercial", "https://manage.office.com", "https://login.microsoftonline.com"),
        ("gcc", "https://manage-gcc.office.com", "https://login.microsoftonline.com"),
        ("gcc_high", "https://manage.office365.us", "https://login.microsoftonline.us"),
        ("dod", "https://manage.protection.apps.mil", "https://login.microsoftonline.us"),
    ],
)
def test_each_cloud_picks_its_api_root_authority_and_token_audience(
    tmp_path: Path, cloud: str, root: str, authority: str
) -> None:
    src = {
        "type": "office365",
        "cloud": cloud,
        "auth": client_secret_auth(TENANT, "c", "TEST_O365_CLOUD", "s"),
    }
    cfg = parse_config(
        {"sources": {"o365": src}, "sinks": {"out": {"type": "file", "inputs": ["o365"], "path": "o"}}},
        tmp_path,
    ).sources["o365"]
    assert isinstance(cfg, Office365Config)
    assert (cfg.root, cfg.authority, cfg.token_scope) == (root, authority, f"{root}/.default")
