"""The pure parts of the Umbrella S3 source: config validation, the checkpoint, SQS notifications."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from logferry.config.loader import parse_config
from logferry.core.errors import ConfigError
from logferry.sources.s3.checkpoint import Checkpoint, key_time, marker
from logferry.sources.s3.config import UmbrellaConfig
from logferry.sources.s3.sqs import parse_notification
from tests.conftest import secret_ref

P = "acme/dnslogs/"


def key(hh_mm: str, suffix: str = "a1b2") -> str:
    return f"{P}2026-11-21/2026-11-21-{hh_mm.replace(':', '-')}-{suffix}.csv.gz"


def config(tmp_path: Path, **source: Any) -> UmbrellaConfig:
    base: dict[str, Any] = {
        "type": "cisco_umbrella",
        "bucket": "cisco-managed-eu-central-1",
        "region": "eu-central-1",
        "access_key_id": secret_ref("UNIT_UMB_ID", "AKIAEXAMPLE"),
        "secret_access_key": secret_ref("UNIT_UMB_SECRET", "s3cr3t"),
    }
    doc = {
        "sources": {"umb": {**base, **source}},
        "sinks": {"out": {"type": "file", "inputs": ["umb"], "path": str(tmp_path / "o.ndjson")}},
    }
    cfg = parse_config(doc, tmp_path).sources["umb"]
    assert isinstance(cfg, UmbrellaConfig)
    return cfg


def problems(tmp_path: Path, **source: Any) -> str:
    with pytest.raises(ConfigError) as err:
        config(tmp_path, **source)
    return str(err.value)


def test_defaults_cover_every_documented_log_type_folder(tmp_path: Path) -> None:
    cfg = config(tmp_path, prefix="/1234567_abc/")
    assert cfg.prefix == "1234567_abc/"
    assert cfg.listing_interval_secs == 300
    assert cfg.folder_prefixes() == [
        f"1234567_abc/{f}/"
        for f in (
            "dnslogs",
            "proxylogs",
            "iplogs",
            "firewalllogs",
            "cloudfirewalllogs",
            "cdfwlogs",
            "intrusionlogs",
            "dlplogs",
            "auditlogs",
        )
    ]
    assert (
        config(tmp_path, sqs_queue_url="https://sqs.eu-central-1.amazonaws.com/1/q").listing_interval_secs
        == 1800
    )


def test_a_data_path_as_bucket_is_refused_with_the_split_to_write(tmp_path: Path) -> None:
    text = problems(tmp_path, bucket="s3://cisco-managed-eu-central-1/1234567_abc/")
    assert "bucket" in text and "bucket: cisco-managed-eu-central-1 and prefix: 1234567_abc" in text


def test_literal_secrets_plain_http_and_slow_listing_with_sqs_are_refused(tmp_path: Path) -> None:
    assert "must not be written inline" in problems(tmp_path, secret_access_key="abc")
    assert "https" in problems(tmp_path, endpoint_url="http://s3.example.com")
    text = problems(tmp_path, sqs_queue_url="https://sqs.eu-central-1.amazonaws.com/1/q", interval_secs=7200)
    assert "lookback_secs" in text
    assert "log_types" in problems(tmp_path, log_types=["dns", "netflow"])


def test_key_time_and_marker_sort_with_the_keys() -> None:
    assert key_time(key("10:20")) == datetime(2026, 11, 21, 10, 20, tzinfo=UTC)
    assert key_time(f"{P}README") is None
    m = marker(P, datetime(2026, 11, 21, 10, 20, tzinfo=UTC))
    assert key("10:10", "zzzz") < m < key("10:20", "0000")


def test_finished_keys_older_than_the_lookback_move_below_the_floor() -> None:
    cp = Checkpoint.load(None, [P], 1800, None)
    for hh_mm in ("09:00", "09:10", "09:40", "10:00"):
        cursor, folder = cp.finished(P, key(hh_mm))
        cp.committed(P, folder, None)
    f = cp.folders[P]
    assert f.floor == key("09:10") and f.done == [key("09:40"), key("10:00")]
    assert cp.below_floor(P, key("09:05")) and not cp.below_floor(P, key("09:35"))
    assert cursor == {"folders": {P: {"floor": key("09:10"), "done": f.done}}, "current": None}
    # The committed JSON is what a restart loads.
    again = Checkpoint.load(json.loads(json.dumps(cursor)), [P], 1800, None)
    assert again.folders == cp.folders and again.current is None


def test_an_uncommitted_step_changes_nothing_and_first_start_honours_initial_lookback() -> None:
    cp = Checkpoint.load(None, [P], 3600, datetime(2026, 11, 21, 10, 0, tzinfo=UTC))
    assert cp.folders[P].floor == f"{P}2026-11-21/2026-11-21-10-00"
    cp.in_progress(key("10:10"), 20)
    cp.finished(P, key("10:10"))
    assert cp.current is None and cp.folders[P].done == []
    loaded = Checkpoint.load({"folders": {}, "current": {"key": key("10:10"), "row": 20}}, [P], 3600, None)
    assert loaded.current == (key("10:10"), 20)
    assert loaded.folder_of(key("10:10")) == P and loaded.folder_of("acme/proxylogs/x.csv.gz") is None


def test_s3_notifications_direct_and_through_sns() -> None:
    event = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "b"}, "object": {"key": "acme/dnslogs/a+b%2Bc.csv.gz"}},
            },
            {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "x"}}},
        ]
    }
    assert parse_notification(json.dumps(event)).created == [("b", "acme/dnslogs/a b+c.csv.gz")]
    sns = {"Type": "Notification", "Message": json.dumps(event)}
    assert parse_notification(json.dumps(sns)).created == [("b", "acme/dnslogs/a b+c.csv.gz")]
    assert parse_notification(json.dumps({"Event": "s3:TestEvent"})).created == []
    for bad in ("<html>", "[]", json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]})):
        with pytest.raises(ValueError):
            parse_notification(bad)


def test_folders_no_longer_configured_are_dropped_with_their_current_object() -> None:
    proxy = "acme/proxylogs/"
    old_key = f"{proxy}2026-11-21/2026-11-21-10-00-p0p0.csv.gz"
    saved = {
        "folders": {P: {"floor": key("09:00"), "done": []}, proxy: {"floor": None, "done": [old_key]}},
        "current": {"key": old_key, "row": 3},
    }
    cp = Checkpoint.load(saved, [P], 3600, None)
    assert list(cp.folders) == [P] and cp.folders[P].floor == key("09:00")
    # The source's "folder no longer in config" branch (and SQS's filter) rest on this.
    assert cp.folder_of(old_key) is None
    cursor, _ = cp.finished(P, key("10:00"))
    assert isinstance(cursor, dict) and list(cursor["folders"]) == [P]
