"""The ``kafka`` source against a real broker (Tansu) through the real pipeline and a file sink."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from logferry.service import Service
from tests.conftest import read_ndjson, running, wait_for
from tests.sources.kafka.conftest import Broker, kafka_source

TOPIC = "insights-logs"


def envelope(n: int, start: int) -> dict[str, Any]:
    """An Azure diagnostic-settings message: several log events in ``records``."""
    categories = ["AuditLogs", "SignInLogs", "NonInteractiveUserSignInLogs"]
    return {
        "records": [
            {
                "time": "2026-11-21T10:00:00.1234567Z",
                "category": categories[i % 3],
                "operationName": "Sign-in activity",
                "properties": {"seq": i},
            }
            for i in range(start, start + n)
        ]
    }


def config(broker: Broker, out: Path, **extra: Any) -> dict[str, Any]:
    return {
        "sources": {"hub": kafka_source(broker.bootstrap, TOPIC, **extra)},
        "sinks": {"out": {"type": "file", "inputs": ["hub"], "path": str(out), "rotate_max_bytes": 0}},
    }


def seqs(out: Path) -> list[int]:
    return [r["properties"]["seq"] for r in read_ndjson(out)] if out.exists() else []


def source_health(svc: Service) -> Any:
    return next(c for c in svc.pipeline.status().components if c.name == "hub")


async def test_envelopes_unwrapped_once_and_restart_resumes_from_committed_offsets(
    broker: Broker, tmp_path: Path
) -> None:
    broker.create_topic(TOPIC, partitions=3)
    # 40 envelopes x 5 events, then one that is not JSON and one with a bad entry.
    broker.produce(TOPIC, [envelope(5, 5 * i) for i in range(40)], keys=[str(i).encode() for i in range(40)])
    broker.produce(
        TOPIC, [b"not json at all", {"records": [{"category": "AuditLogs", "properties": {"seq": 200}}, 7]}]
    )
    out = tmp_path / "out.ndjson"
    cfg = config(broker, out, unwrap_records=True, include_metadata=True)

    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: len(seqs(out)) >= 201, timeout=60)

        async def two_dead_letters() -> bool:
            return len(await svc.store.dead_letters()) >= 2

        await wait_for(two_dead_letters, timeout=30)
        letters = await svc.store.dead_letters()
        assert source_health(svc).healthy
    # Every message's offset is committed to the group, so another instance would not read them again.
    assert sum(broker.committed("logferry", TOPIC, 3).values()) == 42
    records = read_ndjson(out)
    assert sorted(seqs(out)) == list(range(201))
    # Category preserved for routing; the message's coordinates under _kafka.
    first = next(r for r in records if r["properties"]["seq"] == 0)
    assert first["category"] == "AuditLogs"
    assert first["_kafka"]["topic"] == TOPIC and first["_kafka"]["key"] == "0"
    assert isinstance(first["_kafka"]["offset"], int) and first["_kafka"]["timestamp"].endswith("Z")
    reasons = sorted(d.reason for d in letters)
    assert len(reasons) == 2, reasons
    assert "is not JSON" in reasons[1] or "is not JSON" in reasons[0]
    assert any("records[1] is a JSON int" in r for r in reasons)
    assert all("Traceback" not in r for r in reasons)

    # Restart: new messages only, nothing read twice (the offsets were committed to Kafka).
    broker.produce(TOPIC, [envelope(5, 300 + 5 * i) for i in range(10)])
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: len(seqs(out)) >= 251, timeout=60)
        # One more batch wait: a replay would show up now.
        await svc.pipeline.runtimes["hub"].sleep(1.0)
        cursor = svc.pipeline.runtimes["hub"].cursor
    got = seqs(out)
    assert sorted(got) == list(range(201)) + list(range(300, 350))
    assert not [s for s, n in Counter(got).items() if n > 1]
    assert isinstance(cursor, dict)
    assert sum(cursor["offsets"][TOPIC].values()) == 52  # next offsets over 3 partitions: 52 messages


async def test_text_format_and_category_filter(broker: Broker, tmp_path: Path) -> None:
    broker.create_topic("lines")
    broker.create_topic("mixed")
    broker.produce("lines", [b"<134>Nov 21 10:00:00 fw1 sshd[1]: accepted", b"\xff\xfe not utf-8"])
    broker.produce("mixed", [envelope(6, 0)])
    out = tmp_path / "out.ndjson"
    cfg: dict[str, Any] = {
        "sources": {
            "lines": kafka_source(broker.bootstrap, "lines", format="text", group_id="g1"),
            "signins": kafka_source(
                broker.bootstrap, "mixed", unwrap_records=True, categories=["signinlogs"], group_id="g2"
            ),
        },
        "sinks": {"out": {"type": "file", "inputs": ["lines", "signins"], "path": str(out)}},
    }
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: out.exists() and len(read_ndjson(out)) >= 3, timeout=60)
        await wait_for(svc.store.dead_letters, timeout=10)
        letters = await svc.store.dead_letters()
        # 6 records in the envelope, 2 of them sign-ins: the other 4 are counted, not stored.
        filtered = svc.metrics.registry.get_sample_value(
            "logferry_source_records_filtered_total", {"source": "signins"}
        )
        assert filtered == 4, filtered
    records = read_ndjson(out)
    assert {"message": "<134>Nov 21 10:00:00 fw1 sshd[1]: accepted"} in records
    assert sorted(r["properties"]["seq"] for r in records if "properties" in r) == [1, 4]
    assert {r["category"] for r in records if "category" in r} == {"SignInLogs"}
    assert [d.reason for d in letters if "not UTF-8" in d.reason], [d.reason for d in letters]


async def test_a_recreated_topic_restarting_at_offset_0_is_delivered_not_deduplicated(
    broker: Broker, tmp_path: Path
) -> None:
    """specs/event_hubs.md §4: a recreated hub restarts its offsets; its events are new ones."""
    broker.create_topic(TOPIC)
    broker.produce(TOPIC, [{"properties": {"seq": i}} for i in range(3)])
    out = tmp_path / "out.ndjson"
    cfg = config(broker, out)
    async with running(cfg, tmp_path):
        await wait_for(lambda: len(seqs(out)) >= 3, timeout=60)
    # Same name, new topic: its messages take offsets 0 and 1 again, with newer timestamps. The
    # group's old committed offset (3) is past the new end, so the group restarts at the earliest.
    broker.delete_topic(TOPIC)
    broker.create_topic(TOPIC)
    broker.produce(TOPIC, [{"properties": {"seq": i}} for i in (10, 11)])
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: len(seqs(out)) >= 5, timeout=60)
        deduplicated = svc.metrics.registry.get_sample_value(
            "logferry_source_events_deduplicated_total", {"source": "hub"}
        )
    assert seqs(out) == [0, 1, 2, 10, 11]
    assert not deduplicated, deduplicated
