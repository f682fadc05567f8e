"""Routing by ``where``: several sinks split one source, through the real pipeline and state store.

The pipeline tests run ``Pipeline`` over a ``SQLiteStateStore`` in a temp dir with real file sinks
and a small in-test source that emits fixed batches (ids and cursor as a real pull source gives
them). The end-to-end test sends key=value syslog over TCP to a real ``syslog`` source and checks
what two Sentinel sinks (two tables of one DCR) put into the Logs Ingestion simulator.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.core.pipeline import Pipeline, SinkSpec, SourceSpec
from logferry.core.routing import compile_where
from logferry.core.sink import CheckResult, SourceAwareSink
from logferry.core.source import SourceContext
from logferry.core.types import Record
from logferry.observe.metrics import Metrics
from logferry.sim.entra import EntraSim
from logferry.sim.sentinel import SentinelSim
from logferry.sinks.file import FileConfig, FileSink
from logferry.sources.syslog.source import SyslogSource
from logferry.state.sqlite import SQLiteStateStore
from logferry.state.store import OutboxEntry
from tests.conftest import read_ndjson, running, sentinel_sink_config, wait_for

SOURCE = "entra"


def rec(n: int, category: str, **extra: Any) -> Record:
    return {"id": f"r{n:04d}", "category": category, **extra}


# -- the condition ------------------------------------------------------------------------------


def test_where_takes_records_whose_field_holds_one_of_the_values() -> None:
    keep = compile_where({"category": ["SignInLogs", "NonInteractiveUserSignInLogs"]})
    assert keep is not None
    assert keep({"category": "SignInLogs"})
    assert keep({"category": "NonInteractiveUserSignInLogs"})
    assert not keep({"category": "AuditLogs"})
    assert not keep({"Category": "SignInLogs"})
    assert not keep({})
    assert not keep({"category": None})
    assert not keep({"category": ["SignInLogs"]})
    assert not keep({"category": {"SignInLogs": 1}})


def test_where_without_conditions_takes_everything_at_no_cost() -> None:
    assert compile_where({}) is None
    assert compile_where(None) is None


def test_where_needs_every_field_to_match() -> None:
    keep = compile_where({"category": ["AuditLogs"], "level": ["Warning", "Error"]})
    assert keep is not None
    assert keep({"category": "AuditLogs", "level": "Error"})
    assert not keep({"category": "AuditLogs", "level": "Informational"})
    assert not keep({"category": "SignInLogs", "level": "Error"})
    assert not keep({"category": "AuditLogs"})


def test_where_compares_numbers_and_booleans_by_their_text() -> None:
    keep = compile_where({"severity": [4], "interactive": [True]})
    assert keep is not None
    # Syslog key=value fields are always strings; vendor JSON has real numbers and booleans.
    assert keep({"severity": "4", "interactive": "true"})
    assert keep({"severity": 4, "interactive": True})
    assert not keep({"severity": 4.5, "interactive": True})
    assert not keep({"severity": 4, "interactive": 1})
    assert not keep({"severity": 5, "interactive": True})


def test_where_follows_dotted_paths_but_prefers_a_key_with_dots() -> None:
    keep = compile_where({"properties.category": ["AuditLogs"]})
    assert keep is not None
    assert keep({"properties": {"category": "AuditLogs"}})
    assert keep({"properties.category": "AuditLogs"})
    assert not keep({"properties": {"category": "SignInLogs"}})
    assert not keep({"properties": "AuditLogs"})
    assert not keep({"properties.category": "SignInLogs", "properties": {"category": "AuditLogs"}})


# -- configuration ------------------------------------------------------------------------------


def config_with(where: Any, tmp_path: Path) -> dict[str, Any]:
    return {
        "sources": {"syslog": {"type": "syslog", "protocol": "tcp", "listen": "127.0.0.1:0", "format": "kv"}},
        "sinks": {
            "audit": {"type": "file", "inputs": ["syslog"], "path": str(tmp_path / "a"), "where": where},
            "archive": {"type": "file", "inputs": ["syslog"], "path": str(tmp_path / "b")},
        },
    }


def config_problems(where: Any, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(config_with(where, tmp_path), tmp_path)
    return info.value.problems


def test_config_accepts_lists_and_single_values(tmp_path: Path) -> None:
    cfg = parse_config(config_with({"category": "AuditLogs", "level": [4, True, "x"]}, tmp_path), tmp_path)
    assert cfg.sinks["audit"].where == {"category": ["AuditLogs"], "level": [4, True, "x"]}
    absent = config_with(None, tmp_path)
    del absent["sinks"]["audit"]["where"]
    assert parse_config(absent, tmp_path).sinks["audit"].where == {}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"category": []}, "sinks.audit.where: category: the list is empty, so no record would match"),
        ({"category": None}, "sinks.audit.where: category: give a list of accepted values"),
        ({"category": [None]}, "sinks.audit.where: category[0]: null is not a string, integer or true/false"),
        ({"level": [1.5]}, "sinks.audit.where: level[0]: 1.5 is not a string, integer or true/false"),
        ({"a..b": ["x"]}, "sinks.audit.where: 'a..b' is not a field name"),
        ({"": ["x"]}, "sinks.audit.where: '' is not a field name"),
        (["category"], "sinks.audit.where: must be a mapping of field name to accepted values"),
    ],
)
def test_config_errors_name_the_field_and_the_fix(where: Any, expected: str, tmp_path: Path) -> None:
    problems = config_problems(where, tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems


# -- the pipeline -------------------------------------------------------------------------------


class BatchSource:
    """Emits fixed batches once (cursor: batches done, id: the record's ``id``), then idles."""

    stale_after_secs = 3600.0

    def __init__(self, batches: Sequence[Sequence[Record]]) -> None:
        self.name = SOURCE
        self.batches = batches
        self.done = asyncio.Event()

    async def run(self, ctx: SourceContext) -> None:
        start = int(ctx.cursor or 0)
        for i in range(start, len(self.batches)):
            await ctx.wait_capacity()
            batch = self.batches[i]
            await ctx.emit(batch, i + 1, [r["id"] for r in batch])
        ctx.poll_succeeded(0.0)
        self.done.set()
        await ctx.stopping.wait()

    async def check(self) -> CheckResult:
        return CheckResult(True, "ok")

    async def close(self) -> None:
        pass


@asynccontextmanager
async def pipeline(
    tmp_path: Path, batches: Sequence[Sequence[Record]], sinks: dict[str, dict[str, Any]]
) -> AsyncIterator[tuple[Pipeline, BatchSource]]:
    """A started pipeline of ``BatchSource`` into file sinks (``{name: {path, where?}}``)."""
    store = SQLiteStateStore(tmp_path / "state.db")
    await store.open()
    metrics = Metrics()
    ctx = BuildContext(data_dir=tmp_path, metrics=metrics)
    source = BatchSource(batches)
    specs = {}
    for name, opts in sinks.items():
        cfg = FileConfig.model_validate({"type": "file", "inputs": [SOURCE], "fsync": "never", **opts})
        specs[name] = SinkSpec(cfg.build(name, ctx), cfg.inputs, cfg.outbox_max_bytes, 1.0, cfg.where)
    pipe = Pipeline(store, {SOURCE: SourceSpec(source, 3600.0)}, specs, metrics)
    await pipe.start()
    try:
        yield pipe, source
    finally:
        await pipe.stop(grace_secs=5.0)
        await store.close()


BATCHES = [
    [rec(1, "SignInLogs"), rec(2, "AuditLogs"), rec(3, "NonInteractiveUserSignInLogs")],
    [rec(4, "AuditLogs"), rec(5, "AuditLogs")],
    [rec(6, "SignInLogs"), rec(7, "ProvisioningLogs")],
]
SIGNIN = {"category": ["SignInLogs", "NonInteractiveUserSignInLogs"]}
AUDIT = {"category": ["AuditLogs"]}


def ids(path: Path) -> list[str]:
    return [r["id"] for r in read_ndjson(path)]


async def test_each_sink_gets_exactly_its_records_and_a_sink_without_where_gets_all(tmp_path: Path) -> None:
    signin, audit, archive = tmp_path / "signin.ndjson", tmp_path / "audit.ndjson", tmp_path / "all.ndjson"
    sinks: dict[str, dict[str, Any]] = {
        "signin": {"path": str(signin), "where": SIGNIN},
        "audit": {"path": str(audit), "where": AUDIT},
        "archive": {"path": str(archive)},
    }
    async with pipeline(tmp_path, BATCHES, sinks) as (pipe, source):
        await asyncio.wait_for(source.done.wait(), 10)
        await wait_for(lambda: all(n == 0 for n in pipe.outbox_events.values()) and archive.exists())
        await wait_for(lambda: len(ids(archive)) == 7)
        assert ids(signin) == ["r0001", "r0003", "r0006"]
        assert ids(audit) == ["r0002", "r0004", "r0005"]
        assert ids(archive) == [f"r{n:04d}" for n in range(1, 8)]
        assert read_ndjson(audit)[0] == rec(2, "AuditLogs")
        # The archive takes every record, so none is unrouted even though r0007 matches neither table.
        assert (
            pipe.metrics.snapshot().get(f'logferry_source_events_unrouted_total{{source="{SOURCE}"}}', 0) == 0
        )


async def test_records_no_sink_takes_are_counted_and_still_deduplicated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    signin, audit = tmp_path / "signin.ndjson", tmp_path / "audit.ndjson"
    replay = [rec(7, "ProvisioningLogs"), rec(8, "ProvisioningLogs"), rec(9, "AuditLogs")]
    sinks: dict[str, dict[str, Any]] = {
        "signin": {"path": str(signin), "where": SIGNIN},
        "audit": {"path": str(audit), "where": AUDIT},
    }
    async with pipeline(tmp_path, [*BATCHES, replay], sinks) as (pipe, source):
        await asyncio.wait_for(source.done.wait(), 10)
        await wait_for(lambda: len(ids(audit)) == 4 and len(ids(signin)) == 3)
        snap = pipe.metrics.snapshot()
        # r0007 once (its replay is a duplicate, not a second unrouted record) and r0008.
        assert snap[f'logferry_source_events_unrouted_total{{source="{SOURCE}"}}'] == 2
        assert snap[f'logferry_source_events_deduplicated_total{{source="{SOURCE}"}}'] == 1
        details = next(c for c in pipe.status().components if c.name == SOURCE).details
        assert details["unrouted"] == 2
        assert details["received"] == 10
    warnings = [r for r in caplog.records if r.getMessage() == "records_match_no_sink"]
    assert len(warnings) == 1


async def test_outbox_depth_is_per_sink_and_survives_a_restart(tmp_path: Path) -> None:
    # A directory path that is a regular file: every write fails and is retried, so the outbox holds.
    blocked = tmp_path / "blocked"
    blocked.write_text("not a directory")
    out = tmp_path / "out"
    sinks: dict[str, dict[str, Any]] = {
        "signin": {"path": str(blocked / "signin.ndjson"), "where": SIGNIN},
        "audit": {"path": str(blocked / "audit.ndjson"), "where": AUDIT},
        "provisioning": {"path": str(blocked / "prov.ndjson"), "where": {"category": ["ProvisioningLogs"]}},
        "nothing": {"path": str(blocked / "nothing.ndjson"), "where": {"category": ["NoSuchCategory"]}},
        "archive": {"path": str(blocked / "all.ndjson")},
    }
    expected = {"signin": 3, "audit": 3, "provisioning": 1, "nothing": 0, "archive": 7}
    async with pipeline(tmp_path, BATCHES, sinks) as (pipe, source):
        await asyncio.wait_for(source.done.wait(), 10)
        assert pipe.outbox_events == expected
        stats = await pipe.store.outbox_stats()
        assert {s: st.events for s, st in stats.items()} == {s: n for s, n in expected.items() if n}
        # One row per batch that had something for the sink: batch 2 holds no sign-ins.
        assert stats["signin"].entries == 2
        assert stats["audit"].entries == 2
        assert stats["archive"].entries == 3
        assert pipe.metrics.snapshot()['logferry_outbox_events{sink="audit"}'] == 3

    async with pipeline(tmp_path, BATCHES, sinks) as (pipe, source):
        await asyncio.wait_for(source.done.wait(), 10)
        # Nothing re-emitted (the cursor says all batches are done); depths come from the store.
        assert pipe.outbox_events == expected
        assert pipe.runtimes[SOURCE].received == 0

    unblocked = {name: {**opts, "path": str(out / Path(opts["path"]).name)} for name, opts in sinks.items()}
    async with pipeline(tmp_path, BATCHES, unblocked) as (pipe, _source):
        await wait_for(lambda: all(n == 0 for n in pipe.outbox_events.values()), timeout=30)
        await wait_for(lambda: (out / "all.ndjson").exists() and len(ids(out / "all.ndjson")) == 7)
        assert ids(out / "signin.ndjson") == ["r0001", "r0003", "r0006"]
        assert ids(out / "audit.ndjson") == ["r0002", "r0004", "r0005"]
        assert ids(out / "prov.ndjson") == ["r0007"]
        assert not (out / "nothing.ndjson").exists()


async def test_store_skips_a_sink_whose_filter_matches_nothing(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.db")
    await store.open()
    try:
        enc = {
            "a": lambda recs: [orjson.dumps(r) for r in recs],
            "b": lambda recs: [orjson.dumps(r) for r in recs],
        }
        only_audit = compile_where(AUDIT)
        assert only_audit is not None
        res = await store.commit("src", 1, BATCHES[0], None, enc, 60, {"a": only_audit})
        assert (res.accepted, res.duplicates, res.unrouted) == (3, 0, 0)
        assert res.outbox_events == {"a": 1, "b": 3}
        res = await store.commit("src", 2, [rec(9, "SignInLogs")], None, enc, 60, {"a": only_audit})
        assert res.outbox_events == {"b": 1}
        assert set(res.outbox_bytes) == {"b"}
        entries = await store.outbox_read("a", 10, 1 << 20)
        assert [orjson.loads(line)["id"] for e in entries for line in e.lines] == ["r0002"]
        assert await store.get_cursor("src") == 2
    finally:
        await store.close()


# -- end to end: one syslog source, two Sentinel tables -------------------------------------------


@pytest.fixture
async def sims() -> AsyncIterator[tuple[EntraSim, SentinelSim]]:
    entra = EntraSim()
    await entra.start(tls=True)
    sentinel = SentinelSim(entra=entra)
    await sentinel.start(tls=True)
    yield entra, sentinel
    await sentinel.stop()
    await entra.stop()


async def table_rows(sentinel: SentinelSim, ctx: BuildContext, tls: Any, table: str) -> list[dict[str, Any]]:
    async with ctx.session(tls).get(f"{sentinel.url}/sim/tables/{table}/rows") as resp:
        assert resp.status == 200, await resp.text()
        rows: list[dict[str, Any]] = orjson.loads(await resp.read())
        return rows


def syslog_line(body: str) -> bytes:
    return f"<134>Nov 22 06:50:00 relay azure: {body}\n".encode()


async def test_two_sentinel_tables_from_one_source_each_get_only_their_category(
    sims: tuple[EntraSim, SentinelSim], tmp_path: Path
) -> None:
    entra, sentinel = sims
    audit_lines = [
        f"category=O365Audit Id=a{i} Operation=UserLoggedIn Workload=AzureActiveDirectory "
        f"CreationTime=2026-11-22T06:50:0{i}Z UserId=user{i}@example.com"
        for i in range(3)
    ]
    mimecast_lines = [
        f"category=MimecastAudit id=m{i} auditType=Logon user=user{i}@example.com "
        f"time_generated=2026-11-22T06:51:0{i}Z eventInfo=ok"
        for i in range(2)
    ]
    other = "category=SomethingElse id=x1"
    archive = tmp_path / "archive.ndjson"
    config: dict[str, Any] = {
        "sources": {
            "relay": {
                "type": "syslog",
                "protocol": "tcp",
                "listen": "127.0.0.1:0",
                "format": "kv",
                "flush_secs": 0.05,
            }
        },
        "sinks": {
            "o365": sentinel_sink_config(
                entra, sentinel, inputs=["relay"], table="O365Audit_CL", where={"category": ["O365Audit"]}
            ),
            "mimecast": sentinel_sink_config(
                entra,
                sentinel,
                inputs=["relay"],
                table="MimecastAudit_CL",
                where={"category": "MimecastAudit"},
            ),
            "archive": {"type": "file", "inputs": ["relay"], "path": str(archive), "fsync": "never"},
        },
    }
    async with running(config, tmp_path) as svc:
        src = svc.pipeline.sources["relay"].source
        assert isinstance(src, SyslogSource)
        await wait_for(lambda: src.address is not None, timeout=10)
        assert src.address is not None
        with socket.create_connection(src.address[:2], timeout=10) as conn:
            lines = [
                audit_lines[0],
                mimecast_lines[0],
                other,
                audit_lines[1],
                mimecast_lines[1],
                audit_lines[2],
            ]
            conn.sendall(b"".join(syslog_line(b) for b in lines))
        await wait_for(lambda: archive.exists() and len(read_ndjson(archive)) == 6)
        await wait_for(lambda: sentinel.generated() >= 5)
        await wait_for(lambda: all(n == 0 for n in svc.pipeline.outbox_events.values()))
        tls = svc.cfg.sinks["o365"].tls.settings()  # type: ignore[attr-defined]
        o365 = await table_rows(sentinel, svc.ctx, tls, "O365Audit_CL")
        mimecast = await table_rows(sentinel, svc.ctx, tls, "MimecastAudit_CL")
        assert svc.metrics.snapshot().get('logferry_source_events_unrouted_total{source="relay"}', 0) == 0
    assert sorted(r["RecordId"] for r in o365) == ["a0", "a1", "a2"]
    assert {r["Operation"] for r in o365} == {"UserLoggedIn"}
    assert sorted(r["id_s"] for r in mimecast) == ["m0", "m1"]
    assert {r["category_s"] for r in mimecast} == {"MimecastAudit"}
    assert sentinel.generated() == 5
    assert [r["category"] for r in read_ndjson(archive)].count("SomethingElse") == 1


class SourceTaggingSink(FileSink):
    """A file sink whose lines say which source each record came from, as a Kafka key by source would."""

    def encode_from(self, source: str, records: Sequence[Record]) -> list[bytes]:
        return self.encode([{**r, "via": source} for r in records])


async def test_a_source_aware_sink_encodes_each_record_with_its_own_source_name(tmp_path: Path) -> None:
    out = tmp_path / "tagged.ndjson"
    store = SQLiteStateStore(tmp_path / "state.db")
    await store.open()
    cfg = FileConfig.model_validate(
        {"type": "file", "inputs": ["a", "b"], "path": str(out), "fsync": "never"}
    )
    sink = SourceTaggingSink("tagged", cfg)
    assert isinstance(sink, SourceAwareSink)
    a, b = BatchSource([[rec(1, "x")]]), BatchSource([[rec(2, "y"), rec(3, "y")]])
    specs = {"tagged": SinkSpec(sink, cfg.inputs, cfg.outbox_max_bytes, 1.0, cfg.where)}
    pipe = Pipeline(store, {"a": SourceSpec(a, 3600.0), "b": SourceSpec(b, 3600.0)}, specs, Metrics())
    await pipe.start()
    try:
        await wait_for(lambda: out.exists() and len(read_ndjson(out)) == 3)
    finally:
        await pipe.stop(grace_secs=5.0)
        await store.close()
    assert sorted((r["id"], r["via"]) for r in read_ndjson(out)) == [
        ("r0001", "a"),
        ("r0002", "b"),
        ("r0003", "b"),
    ]


class FlakyOutboxStore(SQLiteStateStore):
    """The real store, except that the first outbox read fails as a full disk would."""

    failed = False

    async def outbox_read(
        self, sink: str, max_entries: int, max_bytes: int, after_id: int = 0
    ) -> list[OutboxEntry]:
        if not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        return await super().outbox_read(sink, max_entries, max_bytes, after_id)


async def test_a_delivery_loop_that_crashes_is_restarted_and_delivers(tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    store = FlakyOutboxStore(tmp_path / "state.db")
    await store.open()
    cfg = FileConfig.model_validate({"type": "file", "inputs": [SOURCE], "path": str(out), "fsync": "never"})
    sink = cfg.build("out", BuildContext(data_dir=tmp_path, metrics=Metrics()))
    specs = {"out": SinkSpec(sink, cfg.inputs, cfg.outbox_max_bytes, 1.0, cfg.where)}
    pipe = Pipeline(store, {SOURCE: SourceSpec(BatchSource(BATCHES), 3600.0)}, specs, Metrics())
    await pipe.start()
    try:
        await wait_for(lambda: store.failed and out.exists() and len(ids(out)) == 7)
        health = pipe.loops["out"].health
        assert health.last_error == "delivery crashed: OSError: [Errno 28] No space left on device"
        assert health.failing_since is None  # delivered since: green again
    finally:
        await pipe.stop(grace_secs=5.0)
        await store.close()
