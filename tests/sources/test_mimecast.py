"""Mimecast source against the Mimecast simulator, through the real pipeline, over real sockets."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.config.secrets import Secret
from logferry.core.errors import ConfigError
from logferry.net.http import HttpClient
from logferry.observe.metrics import Metrics
from logferry.sim.entra import EntraSim
from logferry.sim.mimecast import AUDIT_PATH, MimecastSim
from logferry.sim.mimecast_auth import sign
from logferry.sim.sentinel import SentinelSim
from logferry.sources.mimecast.auth import MimecastHmac, signature
from logferry.sources.mimecast.files import _key_value
from logferry.sources.mimecast.source import MimecastSource
from tests.conftest import read_ndjson, running, secret_ref, sentinel_sink_config, wait_for
from tests.sim.test_mimecast import VECTOR, VECTOR_SIGNATURE

HOUR = 3600.0


def auth_block(sim: MimecastSim, kind: str = "oauth2", *, refresh: bool = True) -> dict[str, Any]:
    c = sim.credentials
    if kind == "oauth2":
        return {
            "type": "oauth2",
            "client_id": c["client_id"],
            "client_secret": secret_ref("TEST_MC_CLIENT_SECRET", c["client_secret"]),
        }
    block = {
        "type": "hmac",
        "app_id": c["app_id"],
        "app_key": secret_ref("TEST_MC_APP_KEY", c["app_key"]),
        "access_key": secret_ref("TEST_MC_ACCESS_KEY", c["access_key"]),
        "secret_key": secret_ref("TEST_MC_SECRET_KEY", c["secret_key"]),
    }
    if refresh:
        block.update(email=c["email"], password=secret_ref("TEST_MC_PASSWORD", c["password"]))
    return block


def mc_source(sim: MimecastSim, kind: str = "oauth2", **overrides: Any) -> dict[str, Any]:
    return {
        "type": "mimecast",
        "api_url": sim.url if sim.started else "https://eu-api.mimecast.com",
        "auth": auth_block(sim, kind),
        "audit": {"initial_lookback_secs": 8 * HOUR, "lag_secs": 0, "interval_secs": 1, "page_size": 100},
        "max_requests_per_sec": 200,
        **overrides,
    }


def pipeline(sim: MimecastSim, out: Path, kind: str = "oauth2", **overrides: Any) -> dict[str, Any]:
    return {
        "sources": {"mc": mc_source(sim, kind, **overrides)},
        "sinks": {"out": {"type": "file", "inputs": ["mc"], "path": str(out), "rotate_max_bytes": 0}},
    }


def siem(*types: str, **extra: Any) -> dict[str, Any]:
    return {"types": list(types), "page_size": 3, "interval_secs": 1, **extra}


def keys(out: Path) -> list[str]:
    """The vendor's identity of each delivered record: audit id, batch processingId, legacy aCode."""
    if not out.exists():
        return []
    return [str(r.get("id") or r.get("processingId") or r.get("aCode")) for r in read_ndjson(out)]


def source_health(service: Any) -> Any:
    return next(c for c in service.pipeline.status().components if c.name == "mc")


@asynccontextmanager
async def mimecast(**options: Any) -> AsyncIterator[MimecastSim]:
    async with MimecastSim(**options) as sim:
        yield sim


# --- signing ----------------------------------------------------------------------------------------


def test_signature_matches_the_independent_vector() -> None:
    v = VECTOR
    key = base64.b64decode(v["secret_key_b64"])
    assert signature(key, v["date"], v["request_id"], v["path"], v["app_key"]) == VECTOR_SIGNATURE


async def test_every_attempt_is_signed_with_a_fresh_request_id_over_the_path() -> None:
    creds = MimecastSim().credentials
    ids = iter(["id-1", "id-2"])
    session = aiohttp.ClientSession()
    signer = MimecastHmac(
        base_url="https://eu-api.mimecast.com",
        app_id=creds["app_id"],
        app_key=Secret(creds["app_key"], "test"),
        access_key=Secret(creds["access_key"], "test"),
        secret_key=Secret(creds["secret_key"], "test"),
        login_http=HttpClient(session),
        clock=lambda: 1448369411.0,
        request_id=lambda: next(ids),
    )
    url = URL("https://eu-api.mimecast.com/api/audit/get-audit-events?ignored=1")
    first: dict[str, str] = {}
    second: dict[str, str] = {}
    await signer.apply("POST", url, first, b"{}")
    await signer.apply("POST", url, second, b"{}")
    await session.close()
    assert first["x-mc-date"] == "Tue, 24 Nov 2015 12:50:11 UTC"
    assert (first["x-mc-req-id"], second["x-mc-req-id"]) == ("id-1", "id-2")
    expected = sign(
        creds["secret_key"], first["x-mc-date"], "id-1", "/api/audit/get-audit-events", creds["app_key"]
    )
    assert first["Authorization"] == f"MC {creds['access_key']}:{expected}"
    assert first["x-mc-app-id"] == creds["app_id"]
    assert not any(creds[k] in repr(signer) for k in ("app_key", "access_key", "secret_key"))


# --- configuration ------------------------------------------------------------------------------------


def _hmac(src: dict[str, Any], sim: MimecastSim) -> None:
    src["auth"] = auth_block(sim, "hmac")


def _edit(change: str, src: dict[str, Any], sim: MimecastSim) -> None:
    if change == "siem-needs-oauth2":
        _hmac(src, sim)
        src["siem"] = {"types": ["receipt"]}
    elif change == "legacy-needs-hmac":
        src["siem_legacy"] = {}
    elif change == "hmac-needs-region":
        _hmac(src, sim)
        del src["api_url"]
    elif change == "empty":
        src["audit"] = None
    elif change == "bad-type":
        src["siem"] = {"types": ["recipt"]}
    elif change == "literal":
        src["auth"]["client_secret"] = "plain-text"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("siem-needs-oauth2", "siem (the batch API) needs API 2.0"),
        ("legacy-needs-hmac", "siem_legacy (get-siem-logs) needs API 1.0"),
        ("hmac-needs-region", "set region: eu-v1 or api_url"),
        ("empty", "nothing to collect"),
        ("bad-type", "sources.mc.siem.types[0]"),
        ("literal", "must not be written inline"),
    ],
)
def test_invalid_config_names_the_field_and_the_fix(change: str, problem: str, tmp_path: Path) -> None:
    sim = MimecastSim()
    src = mc_source(sim)
    _edit(change, src, sim)
    cfg = {
        "sources": {"mc": src},
        "sinks": {"out": {"type": "file", "inputs": ["mc"], "path": str(tmp_path / "o")}},
    }
    with pytest.raises(ConfigError) as exc:
        parse_config(cfg, tmp_path)
    assert problem in str(exc.value), str(exc.value)


async def test_a_secret_key_that_is_not_base64_is_named_when_the_source_is_built(tmp_path: Path) -> None:
    sim = MimecastSim()
    src = mc_source(sim)
    _hmac(src, sim)
    src["auth"]["secret_key"] = secret_ref("TEST_MC_BAD_KEY", "not base64!")
    cfg = {
        "sources": {"mc": src},
        "sinks": {"out": {"type": "file", "inputs": ["mc"], "path": str(tmp_path / "o")}},
    }
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    try:
        with pytest.raises(ConfigError, match=r"sources\.mc\.auth\.secret_key: is not base64"):
            parse_config(cfg, tmp_path).sources["mc"].build("mc", ctx)
    finally:
        await ctx.close()


async def test_sources_of_one_mimecast_account_share_one_limiter(tmp_path: Path) -> None:
    sim = MimecastSim()
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    cfg = {
        "sources": {
            "a": mc_source(sim),
            "b": mc_source(sim, audit=None, siem={"types": ["receipt"]}),
            "c": mc_source(sim, account="someone-else@example.com"),
        },
        "sinks": {"out": {"type": "file", "inputs": ["a", "b", "c"], "path": str(tmp_path / "o")}},
    }
    sources = parse_config(cfg, tmp_path).sources
    try:
        built = {name: sources[name].build(name, ctx) for name in ("a", "b", "c")}
    finally:
        await ctx.close()
    assert all(isinstance(s, MimecastSource) for s in built.values())
    limiter = {n: s.api.http.limiter for n, s in built.items() if isinstance(s, MimecastSource)}
    assert limiter["a"] is limiter["b"] is not None
    assert limiter["c"] is not limiter["a"]


# --- collection -------------------------------------------------------------------------------------


async def test_oauth2_collects_audit_and_every_batch_type_once_without_sending_credentials_to_files(
    tmp_path: Path,
) -> None:
    async with mimecast(
        audit_events=300, batch_files=5, records_per_file=8, batch_types="receipt,url protect"
    ) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.audit_ids() | sim.batch_ids("receipt") | sim.batch_ids("url protect")
        cfg = pipeline(sim, out, siem=siem("receipt", "url protect"))
        async with running(cfg, tmp_path):
            await wait_for(lambda: want <= set(keys(out)), timeout=20)
        got = keys(out)
        assert len(got) == len(set(got)) == len(want)
        st = sim.stats()
        assert st["downloads_with_credentials"] == 0
        assert st["tokens_issued"] == 1
        audit = next(r for r in read_ndjson(out) if "auditType" in r)
        assert audit["mimecastEventCategory"] == "audit"
        assert audit["mimecastEventId"].startswith("audit_")
        assert audit["src"].startswith("198.51.100.") and audit["method"] in ("Cloud", "SAML", "Domain")
        assert audit["time_generated"].endswith("Z")


async def test_hmac_refreshes_an_expired_binding_and_collects_audit_and_legacy_siem(tmp_path: Path) -> None:
    async with mimecast(audit_events=120, legacy_files=9, legacy_files_per_zip=4) as sim:
        sim.hmac.expire_binding()
        out = tmp_path / "out.ndjson"
        want = sim.audit_ids() | sim.legacy_codes()
        cfg = pipeline(sim, out, "hmac", siem_legacy={"interval_secs": 1})
        async with running(cfg, tmp_path):
            await wait_for(lambda: want <= set(keys(out)), timeout=20)
        got = keys(out)
        assert len(got) == len(set(got)) == len(want)
        st = sim.stats()
        assert st["binding_expired_answers"] >= 1 and st["logins"] == 1
        legacy = next(r for r in read_ndjson(out) if "aCode" in r)
        assert legacy["logType"] in ("receipt", "process", "delivery", "ttp_url", "ttp_attachment")


async def test_an_expired_binding_without_password_turns_health_red_with_the_fix(tmp_path: Path) -> None:
    async with mimecast(audit_events=10) as sim:
        sim.hmac.expire_binding()
        cfg = pipeline(sim, tmp_path / "out.ndjson", "hmac")
        cfg["sources"]["mc"]["auth"] = auth_block(sim, "hmac", refresh=False)
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: not source_health(service).healthy, timeout=10)
            reason = source_health(service).reason or ""
        assert "binding has expired (HTTP 418)" in reason and "auth.email and auth.password" in reason


async def test_fail_array_on_http_200_turns_health_red_with_the_code(tmp_path: Path) -> None:
    sim = MimecastSim(audit_events=10, audit_fail_code="err_audit_search_unavailable")
    async with sim, running(pipeline(sim, tmp_path / "out.ndjson"), tmp_path) as service:
        await wait_for(lambda: not source_health(service).healthy, timeout=10)
        reason = source_health(service).reason or ""
        assert "err_audit_search_unavailable" in reason and "fail[]" in reason
        assert not (tmp_path / "out.ndjson").exists() or keys(tmp_path / "out.ndjson") == []
        # Once the API recovers the same window is collected: the error was not an empty page.
        sim.audit_fail_code = ""
        want = sim.audit_ids()
        await wait_for(lambda: want <= set(keys(tmp_path / "out.ndjson")), timeout=15)


async def test_429_waits_for_the_reset_in_milliseconds_then_recovers(tmp_path: Path) -> None:
    async with mimecast(audit_events=50, rate_limit=3, rate_window_secs=2) as sim:
        # Another integration of the same user has spent the quota: the first call gets 429.
        async with aiohttp.ClientSession() as s:
            c = sim.credentials
            form = {
                "grant_type": "client_credentials",
                "client_id": c["client_id"],
                "client_secret": c["client_secret"],
            }
            async with s.post(f"{sim.url}/oauth/token", data=form) as r:
                token = (await r.json())["access_token"]
            for _ in range(3):
                async with s.post(
                    sim.url + AUDIT_PATH, json={}, headers={"Authorization": f"Bearer {token}"}
                ):
                    pass
        out = tmp_path / "out.ndjson"
        t0 = time.monotonic()
        audit = {"initial_lookback_secs": 8 * HOUR, "window_secs": 86400, "lag_secs": 0, "page_size": 500}
        async with running(pipeline(sim, out, audit=audit), tmp_path):
            await wait_for(lambda: sim.audit_ids() <= set(keys(out)), timeout=20)
        assert sim.stats()["rate_limited"] >= 1
        assert time.monotonic() - t0 >= 1.0, "the reset (ms) was honoured, not retried at once"
        assert len(keys(out)) == 50


async def test_an_expired_file_url_is_relisted_and_the_file_still_arrives(tmp_path: Path) -> None:
    faults = [{"path": "/siem-files/*", "status": 403, "count": 1}]
    async with mimecast(
        audit_events=0, batch_files=4, records_per_file=5, batch_types="av", faults=faults
    ) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.batch_ids("av")
        async with running(pipeline(sim, out, audit=None, siem=siem("av")), tmp_path):
            await wait_for(lambda: want <= set(keys(out)), timeout=15)
        assert sim.stats()["faults_injected"] == 1
        assert sim.stats()["files_served"] == 4
        assert sorted(keys(out)) == sorted(want)


async def test_a_url_that_stays_expired_is_skipped_and_counted_not_retried_forever(tmp_path: Path) -> None:
    async with mimecast(audit_events=0, batch_files=3, batch_types="spam,av", file_url_ttl_secs=0) as sim:
        out = tmp_path / "out.ndjson"
        cfg = pipeline(sim, out, audit=None, siem=siem("spam"))
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: _metric(service, "logferry_source_items_skipped_total") >= 3, timeout=15)
            await wait_for(lambda: source_health(service).healthy, timeout=10)
        # Each file: one expired download, one re-listing, one more expired download, then skipped.
        assert sim.stats()["files_expired"] == 6


async def test_a_malformed_file_is_dead_lettered_and_the_next_files_still_arrive(tmp_path: Path) -> None:
    async with mimecast(
        audit_events=0, batch_files=6, records_per_file=10, batch_types="delivery", corrupt_every=2
    ) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.batch_ids("delivery")  # the three good files
        async with running(pipeline(sim, out, audit=None, siem=siem("delivery")), tmp_path) as service:
            await wait_for(lambda: want <= set(keys(out)), timeout=15)
            letters = await service.store.dead_letters()
        reasons = [d.reason for d in letters]
        assert any("truncated gzip" in r or "corrupt gzip" in r for r in reasons), reasons
        assert any("is not JSON" in r for r in reasons), reasons
        assert all(r.startswith("siem/delivery: ") for r in reasons)
        got = keys(out)
        assert len(got) == len(set(got))
        # Lines before the damage (and around the bad line) were kept too.
        assert len(set(got) - want) > 0


async def test_a_truncated_legacy_file_is_dead_lettered_and_the_token_moves_on(tmp_path: Path) -> None:
    async with mimecast(
        audit_events=0, legacy_files=8, legacy_files_per_zip=3, legacy_corrupt_every=4
    ) as sim:
        out = tmp_path / "out.ndjson"
        want = sim.legacy_codes()
        cfg = pipeline(sim, out, "hmac", audit=None, siem_legacy={"file_format": "json", "interval_secs": 1})
        async with running(cfg, tmp_path) as service:
            await wait_for(lambda: want <= set(keys(out)), timeout=15)
            letters = await service.store.dead_letters()
        assert len(letters) == 2
        assert all(d.payload == b'{ "type" : "MTA", "data" : ' for d in letters)
        assert all("siem_legacy: legacy file" in d.reason and "is not JSON" in d.reason for d in letters)


async def test_audit_records_fill_the_mimecastaudit_cl_table(tmp_path: Path) -> None:
    entra = EntraSim()
    await entra.start(tls=True)
    sentinel = SentinelSim(entra=entra)
    await sentinel.start(tls=True)
    try:
        async with mimecast(audit_events=40) as sim:
            cfg = {
                "sources": {"mc": mc_source(sim)},
                "sinks": {
                    "sentinel": sentinel_sink_config(entra, sentinel, inputs=["mc"], table="MimecastAudit_CL")
                },
            }

            async def rows() -> list[dict[str, Any]]:
                url = f"{sentinel.url}/sim/tables/MimecastAudit_CL/rows"
                async with aiohttp.ClientSession() as s, s.get(url, ssl=False) as r:
                    data: list[dict[str, Any]] = await r.json()
                    return data

            want = sim.audit_ids()

            async def complete() -> bool:
                return want <= {r["id_s"] for r in await rows()}

            async with running(cfg, tmp_path):
                await wait_for(complete, timeout=20)
            row = (await rows())[0]
            assert row["TimeGenerated"] == row["time_generated"] == row["eventTime_d"]
            assert row["mimecastEventCategory_s"] == "audit"
            assert {
                "auditType_s",
                "user_s",
                "eventInfo_s",
                "category_s",
                "app_s",
                "src_s",
                "method_s",
            } <= set(row)
    finally:
        await sentinel.stop()
        await entra.stop()


def _metric(service: Any, name: str) -> float:
    total = 0.0
    for family in service.metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total


def test_a_legacy_record_with_datetime_inside_a_value_stays_one_record() -> None:
    text = (
        "datetime=2026-01-01T00:00:00+0000|url=https://x/?q=1&datetime=5|Rcpt=a@b\r\n"
        "datetime=2026-01-01T00:00:01+0000|Rcpt=c@d\r\n"
    )
    records, _, rejects = _key_value(text, "ttp_url_1.log", "ttp_url")
    assert rejects == []
    assert [r.get("Rcpt") for r in records] == ["a@b", "c@d"]
    assert records[0]["url"] == "https://x/?q=1&datetime=5"
