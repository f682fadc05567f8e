"""The ``logferry`` command line, run as a user runs it: a subprocess, exit codes and output."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from logferry.sim.peers import free_port
from tests.conftest import read_ndjson, wait_for
from tests.e2e.conftest import Sims


def logferry(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logferry", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def write(tmp_path: Path, cfg: dict[str, Any], name: str = "logferry.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_validate_prints_ok_for_a_valid_config(tmp_path: Path) -> None:
    cfg = {
        "sources": {
            "mesh": {
                "type": "meshstack",
                "api_url": "https://mesh.example.com",
                "client_id": "k",
                "client_secret": "${env:X_SECRET}",
            }
        },
        "sinks": {"out": {"type": "stdout", "inputs": ["mesh"]}},
    }
    res = logferry("validate", "-c", str(write(tmp_path, cfg)), env={"X_SECRET": "v"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(": ok")


def test_validate_exits_2_with_one_line_per_problem_and_no_traceback(tmp_path: Path) -> None:
    cfg = {
        "sources": {
            "mesh": {"type": "meshstack", "api_url": "https://m", "client_id": "k", "clientsecret": "x"}
        },
        "sinks": {"out": {"type": "stdout", "inputs": ["mesh"], "pth": "x"}},
    }
    res = logferry("validate", "-c", str(write(tmp_path, cfg)))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert "sources.mesh.client_secret: required" in lines
    assert "sources.mesh.clientsecret: unknown key; did you mean 'client_secret'?" in lines
    assert any(line.startswith("sinks.out.pth: unknown key") for line in lines)
    assert "Traceback" not in res.stderr


def test_validate_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    res = logferry("validate", "-c", str(tmp_path / "nope.yaml"))
    assert (
        res.returncode == 2 and "cannot read the config file" in res.stderr and "Traceback" not in res.stderr
    )


def test_schema_prints_json_schema_of_the_config() -> None:
    res = logferry("schema")
    assert res.returncode == 0
    schema = orjson.loads(res.stdout)
    assert schema["title"] == "logferry configuration"
    assert {"sources", "sinks", "state"} <= set(schema["properties"])


def test_sim_prints_its_url_and_credentials_as_one_json_line() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "logferry", "sim", "meshstack", "--tls", "--backlog-events", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("listening on https://127.0.0.1:")
        info = orjson.loads(proc.stdout.readline())
        assert info["url"] == first.split()[-1]
        assert {"client_id", "client_secret"} <= set(info["credentials"])
        assert Path(info["ca_file"]).exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_sim_rejects_unknown_options_without_a_traceback() -> None:
    res = logferry("sim", "meshstack", "--no-such-option", "1")
    assert res.returncode == 2 and "unknown option" in res.stderr and "Traceback" not in res.stderr


@pytest.mark.mesh(backlog_events=300)
async def test_check_reports_ok_and_then_the_vendor_error_in_plain_words(sims: Sims, tmp_path: Path) -> None:
    path = write(tmp_path, sims.config(tmp_path))
    res = await asyncio.to_thread(logferry, "check", "-c", str(path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "source mesh: ok" in res.stdout and "sink sentinel: ok" in res.stdout

    cfg = sims.config(tmp_path, sentinel={"dcr_immutable_id": "dcr-" + "0" * 32})
    cfg["sources"]["mesh"]["client_secret"] = "${env:WRONG_SECRET}"
    res = await asyncio.to_thread(
        logferry, "check", "-c", str(write(tmp_path, cfg)), env={"WRONG_SECRET": "nope"}
    )
    assert res.returncode == 1
    assert "source mesh: FAILED: login failed" in res.stdout
    assert "sink sentinel: FAILED" in res.stdout and "DCR" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr


async def test_check_reports_a_sink_that_cannot_be_built_and_checks_the_others(
    sims: Sims, tmp_path: Path
) -> None:
    cfg = sims.config(tmp_path)
    missing_ca = tmp_path / "no-such-ca.pem"
    cfg["sinks"]["collector"] = {
        "type": "syslog",
        "inputs": ["mesh"],
        "host": "127.0.0.1",
        "port": free_port(),
        "protocol": "tls",
        "tls": {"ca_file": str(missing_ca)},
    }
    res = await asyncio.to_thread(logferry, "check", "-c", str(write(tmp_path, cfg)))
    assert res.returncode == 1
    assert f"sink collector: FAILED: sinks.collector.tls.ca_file {missing_ca}: " in res.stdout
    assert "source mesh: ok" in res.stdout and "sink sentinel: ok" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr


@pytest.mark.mesh(backlog_events=500)
async def test_state_show_reset_and_dead_letter_replay(sims: Sims, tmp_path: Path) -> None:
    # A sink that refuses every record (pass-through rows are not table columns) fills the
    # dead-letter store; after "fixing" nothing, replay puts them back into the outbox.
    cfg = sims.config(tmp_path, sentinel={"table": None, "stream_name": "Custom-meshStackEventLogs_CL"})
    cfg["sources"]["mesh"]["page_size"] = 50
    path = write(tmp_path, cfg)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "logferry", "run", "-c", str(path), stderr=asyncio.subprocess.DEVNULL
    )
    archive = tmp_path / "archive.ndjson"
    try:
        await wait_for(lambda: archive.exists() and len(read_ndjson(archive)) == 500, timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0

    shown = orjson.loads(
        (await asyncio.to_thread(logferry, "state", "show", "-c", str(path), "--json")).stdout
    )
    assert shown["cursors"]["mesh"]["end"] is None
    assert shown["dead_letters"] > 0
    before = shown["outbox"].get("sentinel", {"events": 0})["events"]
    listed = await asyncio.to_thread(
        logferry, "dead-letters", "list", "-c", str(path), "--json", "--limit", "3"
    )
    first = orjson.loads(listed.stdout.splitlines()[0])
    assert first["stage"] == "deliver" and "column" in first["reason"]

    replay = await asyncio.to_thread(logferry, "dead-letters", "replay", "-c", str(path), str(first["id"]))
    assert replay.returncode == 0 and "replayed 1" in replay.stdout
    shown = orjson.loads(
        (await asyncio.to_thread(logferry, "state", "show", "-c", str(path), "--json")).stdout
    )
    assert shown["outbox"]["sentinel"]["events"] == before + 1

    reset = await asyncio.to_thread(logferry, "state", "reset", "mesh", "-c", str(path))
    assert reset.returncode == 0
    shown = orjson.loads(
        (await asyncio.to_thread(logferry, "state", "show", "-c", str(path), "--json")).stdout
    )
    assert "mesh" not in shown["cursors"]


@pytest.mark.mesh(backlog_events=400)
async def test_secrets_never_appear_in_logs_metrics_status_or_state(sims: Sims, tmp_path: Path) -> None:
    mesh_secret = sims.mesh.credentials["client_secret"]
    entra_secret = sims.entra.client_secret
    cfg = sims.config(tmp_path)
    cfg["log"] = {"level": "debug", "format": "json"}
    port = free_port()
    cfg["api"] = {"address": f"127.0.0.1:{port}"}
    # A wrong secret on a second source makes the vendor's error text travel through the logs.
    cfg["sources"]["bad"] = {**cfg["sources"]["mesh"], "client_secret": "${file:wrong-secret.txt}"}
    cfg["sinks"]["archive"]["inputs"] = ["mesh", "bad"]
    (tmp_path / "wrong-secret.txt").write_text("wrong-but-still-secret-value\n")
    path = write(tmp_path, cfg)
    log = tmp_path / "out.log"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "logferry",
        "run",
        "-c",
        str(path),
        stdout=log.open("wb"),
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await wait_for(lambda: sims.sentinel.generated() >= 400, timeout=30)
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                metrics = await r.text()
            async with s.get(f"http://127.0.0.1:{port}/status") as r:
                status = await r.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=10) == 0
    assert "logferry_sink_events_delivered_total" in metrics
    assert 'logferry_http_requests_total{component="sentinel",status="204"}' in metrics
    assert 'logferry_http_requests_total{component="mesh",status="200"}' in metrics
    assert "HTTP 401" in status  # the bad source's reason is shown …
    outputs = {"log": log.read_bytes(), "metrics": metrics.encode(), "status": status.encode()}
    for f in tmp_path.glob("state.db*"):
        outputs[f.name] = f.read_bytes()
    assert len(outputs["log"]) > 1000
    for secret in (mesh_secret, entra_secret, "wrong-but-still-secret-value"):
        for name, data in outputs.items():
            assert secret.encode() not in data, f"secret found in {name}"


def test_demo_recovers_from_injected_faults_and_loses_nothing() -> None:
    res = logferry("demo", "--seconds", "3", "--json", timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = orjson.loads(res.stdout.strip().splitlines()[-1])
    assert summary["generated"] > 5000
    assert summary["lost"] == 0 and summary["duplicates_delivered"] == 0
    generated = summary["generated"]
    assert summary["delivered"] == {"sentinel": generated, "splunk": generated, "archive": generated}
    faults = summary["faults_answered"]
    assert {"429", "401"} <= set(faults["meshstack"]) and {"503", "429", "401"} <= set(faults["sentinel"])
    # The push and storage inputs: every line sent arrives once; the one broken Sophos line is
    # dead-lettered; CI installs moto and Tansu, so nothing is left out.
    inputs = summary["inputs"]
    assert set(inputs) == {"sophos", "esa", "umbrella", "entra"}
    for name, i in inputs.items():
        assert i["sent"] > 0 and i["delivered"] == i["sent"] and i["lost"] == 0, (name, i)
    assert {n: i["dead_lettered"] for n, i in inputs.items()} == {"sophos": 1, "esa": 0, "umbrella": 0, "entra": 0}
    assert summary["inputs_left_out"] == {}
