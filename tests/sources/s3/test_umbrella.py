"""The ``cisco_umbrella`` source against moto's S3/SQS server, through the real pipeline and a file sink."""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

from logferry.config.base import BuildContext
from logferry.config.loader import parse_config
from logferry.connectors import load_builtin
from logferry.observe.metrics import Metrics
from logferry.sim.peers import free_port
from logferry.sources.s3.source import UmbrellaSource
from logferry.state.sqlite import SQLiteStateStore
from tests.conftest import read_ndjson, running, wait_for
from tests.sources.s3 import umbrella_rows as rows
from tests.sources.s3.conftest import Moto, pipeline, put

load_builtin()

DNS = "acme/dnslogs/2026-11-21/2026-11-21-{}-{}.csv.gz"


def dns_key(hh_mm: str, suffix: str = "a1b2") -> str:
    return DNS.format(hh_mm.replace(":", "-"), suffix)


def source_health(service: Any) -> Any:
    return next(c for c in service.pipeline.status().components if c.name == "umb")


def out_of(out: Path) -> list[dict[str, Any]]:
    return read_ndjson(out) if out.exists() else []


def domains(out: Path) -> list[str]:
    return [r["domain"] for r in out_of(out) if r.get("log_type") == "dns" and "domain" in r]


def gets(moto: Moto, bucket: str, key: str) -> int:
    return sum(
        1 for method, path, _ in moto.requests(bucket) if method == "GET" and path == f"/{bucket}/{key}"
    )


async def test_every_log_type_is_delivered_once_in_key_and_row_order(
    moto: Moto, bucket: str, tmp_path: Path
) -> None:
    put(moto, bucket, dns_key("10:10"), [rows.dns(i) for i in range(3, 6)])
    put(moto, bucket, dns_key("10:00"), [rows.dns(i) for i in range(0, 3)])
    put(
        moto,
        bucket,
        "acme/proxylogs/2026-11-21/2026-11-21-10-00-p0p0.csv.gz",
        [rows.proxy(i) for i in range(4)],
    )
    put(
        moto,
        bucket,
        "acme/cloudfirewalllogs/2026-11-21/2026-11-21-10-00-f0f0.csv.gz",
        [rows.firewall(i) for i in range(2)],
    )
    put(
        moto,
        bucket,
        "acme/auditlogs/2026-11-21/2026-11-21-10-00-c0c0.csv.gz",
        [rows.AUDIT_HEADER, rows.audit(1), rows.audit(2)],
    )
    # A DNS row of a version newer than any the parser knows: passed through with raw columns.
    put(moto, bucket, dns_key("10:20"), [rows.dns(6, extra=5)])
    # Not a log type this source is configured for, and not under the prefix.
    put(moto, bucket, "acme/iplogs/2026-11-21/2026-11-21-10-00-i0i0.csv.gz", [rows.dns(99)])
    put(moto, bucket, "other/dnslogs/2026-11-21/2026-11-21-10-00-o0o0.csv.gz", [rows.dns(98)])
    out = tmp_path / "out.ndjson"
    cfg = pipeline(moto, bucket, out, log_types=["dns", "proxy", "firewall", "audit"])
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: len(out_of(out)) >= 15, timeout=30)
        await wait_for(lambda: source_health(svc).details.get("last_success") is not None)
        await asyncio.sleep(1.5)  # another listing: nothing more may arrive
        assert source_health(svc).healthy
        unrecognised = svc.metrics.registry.get_sample_value(
            "logferry_source_records_unrecognised_total", {"source": "umb", "kind": "umbrella_dns"}
        )
        assert unrecognised == 1
    recs = out_of(out)
    assert len(recs) == 15
    assert domains(out) == [f"host{i}.example.com." for i in range(6)]
    first = next(r for r in recs if r.get("domain") == "host0.example.com.")
    assert first["identities"] == "Office Network,Last, First (user@x)"
    assert first["categories"] == ["Software/Technology", "Business Services"]
    assert first["timestamp"] == "2026-11-21T10:00:00Z"
    unknown = [r for r in recs if r.get("umbrella_unknown_version")]
    assert (
        len(unknown) == 1
        and unknown[0]["column_9"] == "host6.example.com."
        and unknown[0]["column_18"] == "x4"
    )
    proxies = [r for r in recs if r["log_type"] == "proxy"]
    assert [r["url"] for r in proxies] == [f"https://site{i}.example.com/" for i in range(4)]
    assert proxies[0]["request_method"] == "GET"
    fw = [r for r in recs if r["log_type"] == "firewall"]
    assert [r["source_port"] for r in fw] == [0, 1] and fw[0]["origin_id"] == 211039844
    audit = [r for r in recs if r["log_type"] == "audit"]
    assert [r["after"] for r in audit] == [
        {"name": "new1", "enabled": "false"},
        {"name": "new2", "enabled": "false"},
    ]
    # Each object was read exactly once although the bucket was listed several times.
    assert gets(moto, bucket, dns_key("10:00")) == 1
    assert gets(moto, bucket, "acme/iplogs/2026-11-21/2026-11-21-10-00-i0i0.csv.gz") == 0


async def test_new_objects_are_read_on_the_next_listing_which_starts_after_the_floor(
    moto: Moto, bucket: str, tmp_path: Path
) -> None:
    for n, hh_mm in enumerate(("09:00", "09:10", "09:20", "10:00")):
        put(moto, bucket, dns_key(hh_mm), [rows.dns(n)])
    out = tmp_path / "out.ndjson"
    # A 30-minute look-back: 09:00 and 09:10 fall below the floor once 10:00 is read, 09:20 once
    # 10:10 is.
    cfg = pipeline(moto, bucket, out, log_types=["dns"], lookback_secs=1800)
    async with running(cfg, tmp_path):
        await wait_for(lambda: len(domains(out)) >= 4, timeout=30)
        put(moto, bucket, dns_key("10:10"), [rows.dns(4)])
        await wait_for(lambda: len(domains(out)) >= 5, timeout=30)
        # A late file named inside the look-back is still read; one named below the floor is not.
        put(moto, bucket, dns_key("09:50", "late"), [rows.dns(5)])
        put(moto, bucket, dns_key("09:05", "lost"), [rows.dns(6)])
        await wait_for(lambda: len(domains(out)) >= 6, timeout=30)
        listed = len([q for m, _, q in moto.requests(bucket) if m == "GET" and "list-type" in q])
        await wait_for(
            lambda: (
                len([q for m, _, q in moto.requests(bucket) if m == "GET" and "list-type" in q]) >= listed + 2
            ),
            timeout=30,
        )
    assert domains(out) == [f"host{i}.example.com." for i in range(6)]
    lists = [q for m, _, q in moto.requests(bucket) if m == "GET" and "list-type" in q]
    assert "start-after" not in lists[0]
    floor = "acme/dnslogs/2026-11-21/2026-11-21-09-20-a1b2.csv.gz"
    assert lists[-1]["start-after"] == [floor]
    for hh_mm in ("09:00", "09:10", "09:20", "10:00", "10:10"):
        assert gets(moto, bucket, dns_key(hh_mm)) == 1
    assert gets(moto, bucket, dns_key("09:05", "lost")) == 0


async def test_a_restart_resumes_inside_an_object_without_loss_or_duplicates(
    moto: Moto, bucket: str, tmp_path: Path
) -> None:
    key = dns_key("10:00")
    put(moto, bucket, key, [rows.dns(i) for i in range(40)])
    put(moto, bucket, dns_key("10:10"), [rows.dns(i) for i in range(40, 50)])
    # As a crash would leave it: 15 rows of the first object committed and delivered.
    store = SQLiteStateStore(tmp_path / "state.db")
    await store.open()
    try:
        await store.commit("umb", {"folders": {}, "current": {"key": key, "row": 15}}, [], None, {}, 3600)
    finally:
        await store.close()
    out = tmp_path / "out.ndjson"
    cfg = pipeline(moto, bucket, out, log_types=["dns"], batch_rows=7)
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: len(domains(out)) >= 35, timeout=30)
        await wait_for(lambda: source_health(svc).details.get("last_success") is not None)
    assert domains(out) == [f"host{i}.example.com." for i in range(15, 50)]
    # And a plain stop and start reads nothing again.
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: source_health(svc).details.get("last_success") is not None)
        put(moto, bucket, dns_key("10:20"), [rows.dns(50)])
        await wait_for(lambda: len(domains(out)) >= 36, timeout=30)
    assert domains(out) == [f"host{i}.example.com." for i in range(15, 51)]
    assert gets(moto, bucket, key) == 1


async def test_damaged_objects_and_rows_are_dead_lettered_and_the_next_object_delivered(
    moto: Moto, bucket: str, tmp_path: Path
) -> None:
    good = gzip.compress(("\n".join(rows.dns(i) for i in range(100, 400)) + "\n").encode())
    junk = b"this is not gzip at all " * 4000  # 96000 bytes: more than a dead letter keeps
    put(moto, bucket, dns_key("10:00", "junk"), junk)
    put(moto, bucket, dns_key("10:05", "trnc"), good[: len(good) // 2])  # rows up to the cut survive
    put(moto, bucket, dns_key("10:10", "rows"), [rows.dns(0), '"too", "few", "columns"', rows.dns(1)])
    # A rule_id of 5000 digits: int() raises ValueError (Python's digit limit), not a ParseError.
    huge = rows.dns(3) + ', "' + "9" * 5000 + '"'
    put(moto, bucket, dns_key("10:15", "huge"), [huge, rows.dns(4)])
    put(moto, bucket, dns_key("10:20", "next"), [rows.dns(2)])
    out = tmp_path / "out.ndjson"
    async with running(pipeline(moto, bucket, out, log_types=["dns"]), tmp_path) as svc:
        await wait_for(lambda: "host2.example.com." in domains(out), timeout=30)
        letters = await svc.store.dead_letters(limit=100)
        assert source_health(svc).healthy
    reasons = sorted(d.reason for d in letters)
    assert len(reasons) == 4, reasons
    junk_letter = next(d for d in letters if "junk" in d.reason)
    assert "gzip" in junk_letter.reason and "first 64 KiB of 96000 bytes" in junk_letter.reason
    assert junk_letter.payload == junk[: 64 * 1024]
    trnc = next(d for d in letters if "trnc" in d.reason)
    assert "before the damage are delivered" in trnc.reason and "KiB" not in trnc.reason
    assert any("rows.csv.gz row 2 (line 2)" in r and "3 columns" in r for r in reasons)
    assert b'"too","few","columns"' in next(d.payload for d in letters if "rows.csv.gz row 2" in d.reason)
    assert any("huge.csv.gz row 1 (line 1)" in r and "cannot be converted" in r for r in reasons)
    assert all("Traceback" not in r for r in reasons)
    got = domains(out)
    assert got[-4:] == [
        "host0.example.com.",
        "host1.example.com.",
        "host4.example.com.",
        "host2.example.com.",
    ]
    truncated = got[:-4]
    assert 0 < len(truncated) < 300 and truncated == [
        f"host{i}.example.com." for i in range(100, 100 + len(truncated))
    ]


async def test_a_folder_taken_out_of_the_config_is_no_longer_read(
    moto: Moto, bucket: str, tmp_path: Path
) -> None:
    proxy_key = "acme/proxylogs/2026-11-21/2026-11-21-10-00-p0p0.csv.gz"
    put(moto, bucket, proxy_key, [rows.proxy(i) for i in range(4)])
    put(moto, bucket, dns_key("10:00"), [rows.dns(0)])
    # As a run with log_types [dns, proxy] left it: proxy half-read when the config dropped proxy.
    saved = {
        "folders": {
            "acme/dnslogs/": {"floor": None, "done": []},
            "acme/proxylogs/": {"floor": None, "done": []},
        },
        "current": {"key": proxy_key, "row": 1},
    }
    store = SQLiteStateStore(tmp_path / "state.db")
    await store.open()
    try:
        await store.commit("umb", saved, [], None, {}, 3600)
    finally:
        await store.close()
    out = tmp_path / "out.ndjson"
    async with running(pipeline(moto, bucket, out, log_types=["dns"]), tmp_path) as svc:
        await wait_for(lambda: domains(out) == ["host0.example.com."], timeout=30)
        await wait_for(lambda: source_health(svc).details.get("last_success") is not None)
        cursor = svc.pipeline.runtimes["umb"].cursor
    assert [r for r in out_of(out) if r.get("log_type") == "proxy"] == []
    assert gets(moto, bucket, proxy_key) == 0
    assert isinstance(cursor, dict) and list(cursor["folders"]) == ["acme/dnslogs/"]


async def test_wrong_credentials_turn_health_red_with_a_clear_reason(moto_auth: Moto, tmp_path: Path) -> None:
    out = tmp_path / "out.ndjson"
    cfg = pipeline(moto_auth, "umb-any", out, stale_after_secs=1)
    async with running(cfg, tmp_path) as svc:
        # Under load the 1 s staleness can turn health red before the first refused listing does;
        # the refusal's reason replaces it once the poll fails.
        await wait_for(lambda: "access key id is unknown" in (source_health(svc).reason or ""), timeout=30)
        assert not source_health(svc).healthy
        reason = source_health(svc).reason
        source = svc.pipeline.sources["umb"].source
        result = await source.check()
    assert (
        "access key id is unknown" in reason and "InvalidAccessKeyId" in reason and "access_key_id" in reason
    )
    assert "Traceback" not in reason and "testing-secret-value" not in reason
    assert not result.ok and "access key id is unknown" in result.message


async def test_check_says_the_bucket_is_readable_and_empty(moto: Moto, bucket: str, tmp_path: Path) -> None:
    cfg = parse_config(pipeline(moto, bucket, tmp_path / "out.ndjson"), tmp_path)
    source = cfg.sources["umb"].build("umb", BuildContext(tmp_path, Metrics()))
    assert isinstance(source, UmbrellaSource)
    try:
        result = await source.check()
        assert result.ok and "holds no files yet" in result.message
        put(moto, bucket, dns_key("10:00"), [rows.dns(0)])
        result = await source.check()
        assert result.ok and "lists log files" in result.message
        missing = (
            cfg.sources["umb"]
            .model_copy(update={"bucket": "no-such-bucket-here"})
            .build("umb", BuildContext(tmp_path, Metrics()))
        )
        result = await missing.check()
        assert not result.ok and "NoSuchBucket" in result.message
        await missing.close()
    finally:
        await source.close()


async def test_sqs_notifications_deliver_new_objects_and_are_deleted(
    moto: Moto, bucket: str, tmp_path: Path
) -> None:
    sqs = moto.client("sqs")
    queue_url = sqs.create_queue(QueueName=f"{bucket}-q")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    moto.client("s3").put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    out = tmp_path / "out.ndjson"
    # A listing once an hour: whatever arrives in the test arrives through SQS.
    cfg = pipeline(
        moto, bucket, out, log_types=["dns"], sqs_queue_url=queue_url, sqs_wait_secs=1, interval_secs=3600
    )
    async with running(cfg, tmp_path) as svc:
        await wait_for(lambda: source_health(svc).details.get("last_success") is not None)
        put(moto, bucket, dns_key("10:00"), [rows.dns(0), rows.dns(1)])
        put(moto, bucket, "acme/proxylogs/2026-11-21/2026-11-21-10-00-p0p0.csv.gz", [rows.proxy(0)])
        sqs.send_message(QueueUrl=queue_url, MessageBody="not a notification")
        put(moto, bucket, dns_key("10:10", "sp ce"), [rows.dns(2)])  # key URL-encoded in the event
        await wait_for(lambda: len(domains(out)) >= 3, timeout=30)

        def queue_empty() -> bool:
            attrs = sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            return bool(
                attrs["ApproximateNumberOfMessages"] == attrs["ApproximateNumberOfMessagesNotVisible"] == "0"
            )

        await wait_for(queue_empty, timeout=30)
        letters = await svc.store.dead_letters()
    assert domains(out) == ["host0.example.com.", "host1.example.com.", "host2.example.com."]
    assert (
        len(letters) == 1 and "not JSON" in letters[0].reason and letters[0].payload == b"not a notification"
    )
    lists = [q for m, _, q in moto.requests(bucket) if m == "GET" and "list-type" in q]
    assert len(lists) == 1, "objects must have come through SQS, not through a listing"
    assert out_of(out)[-1]["domain"] == "host2.example.com."
    assert json.dumps(out_of(out)).count("proxy") == 0


async def test_an_unreachable_endpoint_turns_health_red_and_recovers(
    moto: Moto, bucket: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.ndjson"
    dead = pipeline(moto, bucket, out, log_types=["dns"], stale_after_secs=1, max_attempts=1)
    dead["sources"]["umb"]["endpoint_url"] = f"http://127.0.0.1:{free_port()}"
    async with running(dead, tmp_path) as svc:
        # As above: the 1 s staleness may turn health red before the first failed listing reports.
        await wait_for(lambda: "Could not connect" in (source_health(svc).reason or ""), timeout=30)
        assert not source_health(svc).healthy
        reason = source_health(svc).reason
    assert "Could not connect to the endpoint URL" in reason and "Traceback" not in reason
    # Same state, reachable endpoint: collection starts where it would have.
    put(moto, bucket, dns_key("10:00"), [rows.dns(0)])
    async with running(pipeline(moto, bucket, out, log_types=["dns"], stale_after_secs=30), tmp_path) as svc:
        await wait_for(lambda: domains(out) == ["host0.example.com."], timeout=30)
        assert source_health(svc).healthy
