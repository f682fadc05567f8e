"""``logferry demo``: meshStack → Sentinel, Splunk HEC (and a file) against the built-in simulators,
and the push and storage inputs (syslog, SCP, S3, Kafka) into files.

Starts the Entra ID, Sentinel Logs Ingestion, Splunk HEC (indexer acknowledgement on) and meshStack
simulators on free localhost ports (TLS, like the real services), runs the real pipeline with
faults injected — meshStack
throttling (429) and a 5xx, a revoked token on each side (401), a Sentinel outage answer (503)
and throttling with ``Retry-After`` — shows live progress, then stops new events, lets the
pipeline drain and accounts for every event: generated, fetched, duplicates dropped,
delivered per sink, lost. In the same service, :mod:`logferry.demo_inputs` sends syslog lines to
its own listener, uploads mail logs to its own SCP receiver and, where moto and Tansu are
installed, reads S3 objects and Kafka messages; each input is accounted for the same way.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from logferry.config.loader import parse_config
from logferry.connectors import load_builtin
from logferry.demo_inputs import DemoInput, demo_inputs
from logferry.observe.logging import configure_logging
from logferry.service import Service
from logferry.sim.entra import EntraSim
from logferry.sim.hec import HecSim
from logferry.sim.meshstack import MeshStackSim
from logferry.sim.sentinel import SentinelSim

__all__ = ["run_demo"]

TABLE = "meshStackEventLogs_CL"
BACKLOG_EVENTS = 5000
BACKLOG_SECS = 2 * 3600
LIVE_RATE = 25.0
DRAIN_TIMEOUT_SECS = 20.0

MESH_FAULTS = [
    {"path": "/api/meshobjects/*", "status": 429, "count": 2, "after": 3, "retry_after": 1},
    {"path": "/api/meshobjects/*", "status": 502, "count": 1, "after": 8},
    {"path": "/api/meshobjects/*", "status": 401, "count": 1, "after": 12},
]
SENTINEL_FAULTS = [
    {"path": "/dataCollectionRules/*", "status": 503, "count": 1, "after": 2, "retry_after": 1},
    {"path": "/dataCollectionRules/*", "status": 401, "count": 1, "after": 5},
    {"path": "/dataCollectionRules/*", "status": 429, "count": 2, "after": 8, "retry_after": 1},
]


def _config(
    mesh: MeshStackSim,
    sentinel: SentinelSim,
    entra: EntraSim,
    hec: HecSim,
    data: Path,
    inputs: list[DemoInput],
) -> dict[str, Any]:
    # Secrets go in by reference even here: the demo runs the same config path as production.
    os.environ["LOGFERRY_DEMO_MESH_SECRET"] = mesh.credentials["client_secret"]
    os.environ["LOGFERRY_DEMO_ENTRA_SECRET"] = entra.client_secret
    os.environ["LOGFERRY_DEMO_HEC_TOKEN"] = hec.credentials["token"]
    cfg = _mesh_config(mesh, sentinel, entra, data)
    cfg["sinks"]["splunk"] = {
        "type": "splunk_hec",
        "inputs": ["mesh"],
        "url": hec.url,
        "token": "${env:LOGFERRY_DEMO_HEC_TOKEN}",
        "sourcetype": "meshstack:event",
        "time_field": "metadata.createdAt",
        "ack": True,
        "max_backoff_secs": 5,
        "tls": {"ca_file": hec.ca_file},
    }
    for inp in inputs:
        cfg["sources"][inp.name] = inp.source()
        cfg["sinks"][f"{inp.name}_file"] = inp.sink()
    return cfg


def _mesh_config(mesh: MeshStackSim, sentinel: SentinelSim, entra: EntraSim, data: Path) -> dict[str, Any]:
    return {
        "state": {"path": str(data / "state.db")},
        "api": {"address": "127.0.0.1:0"},
        "sources": {
            "mesh": {
                "type": "meshstack",
                "api_url": mesh.url,
                "client_id": mesh.credentials["client_id"],
                "client_secret": "${env:LOGFERRY_DEMO_MESH_SECRET}",
                "initial_lookback_secs": BACKLOG_SECS + 60,
                "window_secs": 1800,
                "lag_secs": 1,
                "interval_secs": 1,
                "page_size": 500,
                "tls": {"ca_file": mesh.ca_file},
            }
        },
        "sinks": {
            "sentinel": {
                "type": "sentinel",
                "inputs": ["mesh"],
                "endpoint": sentinel.url,
                "dcr_immutable_id": sentinel.options.dcr_id,
                "table": TABLE,
                "authority_host": entra.url,
                "auth": {
                    "type": "client_secret",
                    "tenant_id": entra.tenant_id,
                    "client_id": entra.client_id,
                    "client_secret": "${env:LOGFERRY_DEMO_ENTRA_SECRET}",
                },
                "batch": {"max_events": 1000},
                "max_backoff_secs": 5,
                "tls": {"ca_file": sentinel.ca_file},
            },
            "archive": {
                "type": "file",
                "inputs": ["mesh"],
                "path": str(data / "meshstack.ndjson"),
                "rotate_max_bytes": 0,
            },
        },
    }


class _Counts:
    """Reads what each side saw: the simulators' own books and the pipeline's."""

    def __init__(
        self, mesh: MeshStackSim, sentinel: SentinelSim, service: Service, inputs: list[DemoInput]
    ) -> None:
        self.mesh, self.sentinel, self.service, self.inputs = mesh, sentinel, service, inputs

    def snapshot(self) -> dict[str, Any]:
        rt = self.service.pipeline.runtimes["mesh"]
        loops = self.service.pipeline.loops
        return {
            "generated": self.mesh.generated(),
            "fetched": rt.received,
            "duplicates_dropped": rt.duplicates,
            "delivered": {
                "sentinel": self.sentinel.generated(),
                "splunk": loops["splunk"].health.delivered,
                "archive": loops["archive"].health.delivered,
            },
            "outbox_bytes": dict(self.service.pipeline.outbox_bytes),
            "retries": {n: lp.health.retries for n, lp in loops.items()},
            "mesh_requests": dict(self.mesh.requests),
            "sentinel_requests": dict(self.sentinel.requests),
            "inputs": {
                i.name: {"what": i.what, "sent": i.sent, "delivered": i.delivered()} for i in self.inputs
            },
        }


def _view(s: dict[str, Any], phase: str) -> Table:
    t = Table(title=f"logferry demo: meshStack → Sentinel, push inputs → files ({phase})", show_header=True)
    t.add_column("")
    t.add_column("count", justify="right")
    t.add_row("events generated by the meshStack simulator", str(s["generated"]))
    t.add_row("fetched from meshStack", str(s["fetched"]))
    t.add_row("duplicates dropped", str(s["duplicates_dropped"]))
    for sink, n in s["delivered"].items():
        t.add_row(f"delivered to {sink}", str(n))
        t.add_row(f"  outbox {sink} (bytes) / retries", f"{s['outbox_bytes'][sink]} / {s['retries'][sink]}")
    faults = {k: v for k, v in s["mesh_requests"].items() if k in ("401", "429", "502")}
    t.add_row("meshStack faults answered (status: n)", _fmt(faults))
    faults = {k: v for k, v in s["sentinel_requests"].items() if k in ("401", "429", "503")}
    t.add_row("Sentinel faults answered (status: n)", _fmt(faults))
    for name, i in s["inputs"].items():
        t.add_row(f"{name}: {i['what']}: sent / delivered", f"{i['sent']} / {i['delivered']}")
    return t


def _fmt(d: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items())) or "-"


async def _rows(sentinel: SentinelSim) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{sentinel.url}/sim/tables/{TABLE}/rows", ssl=_ssl(sentinel)) as r,
    ):
        rows: list[dict[str, Any]] = orjson.loads(await r.read())
        return rows


async def _hec_events(hec: HecSim) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{hec.url}/sim/events", ssl=_ssl(hec)) as r:
        events: list[dict[str, Any]] = orjson.loads(await r.read())
        return events


def _ssl(sim: MeshStackSim | SentinelSim | HecSim) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=sim.ca_file)


async def _pause_live(mesh: MeshStackSim) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{mesh.url}/sim/control", json={"live": False}, ssl=_ssl(mesh)) as r,
    ):
        r.raise_for_status()


def senders_done(tasks: list[asyncio.Task[None]]) -> list[bool]:
    return [t.done() for t in tasks]


def _unique(rows: list[dict[str, Any]]) -> int:
    # The Sentinel table has no event id column; a row is identified by its whole content
    # (microsecond TimeGenerated and the event's own content).
    return len({orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in rows})


async def run_demo(seconds: float = 15.0, as_json: bool = False) -> dict[str, Any]:
    load_builtin()
    data = Path(tempfile.mkdtemp(prefix="logferry-demo-"))
    console = Console(stderr=as_json)
    configure_logging("warning", "json", stream=(data / "logferry.log").open("a", encoding="utf-8"))
    entra = EntraSim(token_lifetime_secs=3600)
    await entra.start(tls=True)
    sentinel = SentinelSim(entra=entra, faults=SENTINEL_FAULTS)
    await sentinel.start(tls=True)
    # Acknowledgements turn true a little after each request, as an indexer's would.
    hec = HecSim(ack=True, ack_delay_secs=0.1)
    await hec.start(tls=True)
    inputs, left_out = demo_inputs(data)
    mesh = MeshStackSim(
        backlog_events=BACKLOG_EVENTS,
        backlog_secs=BACKLOG_SECS,
        live_rate=LIVE_RATE,
        token_lifetime_secs=60,
        faults=MESH_FAULTS,
    )
    await mesh.start(tls=True)
    service: Service | None = None
    try:
        service = Service(parse_config(_config(mesh, sentinel, entra, hec, data, inputs), data))
        counts = _Counts(mesh, sentinel, service, inputs)
        await service.start()
        senders = [asyncio.create_task(inp.send(service)) for inp in inputs]
        with Live(_view(counts.snapshot(), "running"), console=console, refresh_per_second=4) as live:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                await asyncio.sleep(0.25)
                live.update(_view(counts.snapshot(), f"running, {end - time.monotonic():.0f}s left"))
            await _pause_live(mesh)
            generated = mesh.generated()
            drain_end = time.monotonic() + DRAIN_TIMEOUT_SECS
            while time.monotonic() < drain_end:
                s = counts.snapshot()
                live.update(_view(s, "new events stopped, draining"))
                drained = not any(s["outbox_bytes"].values())
                inputs_done = all(senders_done(senders)) and all(
                    i["delivered"] >= i["sent"] for i in s["inputs"].values()
                )
                if drained and inputs_done and all(n >= generated for n in s["delivered"].values()):
                    break
                await asyncio.sleep(0.25)
            live.update(_view(counts.snapshot(), "done"))
        for task in senders:
            await task  # a sender that failed says why here
        dead = [d.component for d in await service.store.dead_letters(10_000)]
        await service.stop()
        rows = await _rows(sentinel)
        splunk = [e["event"] for e in await _hec_events(hec)]
        archive = [orjson.loads(x) for x in (data / "meshstack.ndjson").read_bytes().splitlines() if x]
        unique = {
            "sentinel": _unique(rows),
            "splunk": len({e["metadata"]["uuid"] for e in splunk}),
            "archive": len({r["metadata"]["uuid"] for r in archive}),
        }
        delivered = {"sentinel": len(rows), "splunk": len(splunk), "archive": len(archive)}
        snap = counts.snapshot()
        inputs_summary = {
            name: {
                **i,
                "dead_lettered": dead.count(name),
                "lost": max(0, i["sent"] - i["delivered"]),
            }
            for name, i in snap["inputs"].items()
        }
        summary: dict[str, Any] = {
            "generated": generated,
            "fetched": snap["fetched"],
            "duplicates_dropped": snap["duplicates_dropped"],
            "delivered": delivered,
            "lost": max(generated - n for n in unique.values())
            + sum(i["lost"] for i in inputs_summary.values()),
            "duplicates_delivered": sum(delivered[k] - unique[k] for k in delivered),
            "faults_answered": {
                "meshstack": {k: v for k, v in snap["mesh_requests"].items() if not k.startswith("2")},
                "sentinel": {k: v for k, v in snap["sentinel_requests"].items() if not k.startswith("2")},
            },
            "inputs": inputs_summary,
            "inputs_left_out": left_out,
            "data_dir": str(data),
        }
    finally:
        if service is not None and service.pipeline.ready:
            await service.stop()
        for inp in inputs:
            await inp.close()
        await mesh.stop()
        await hec.stop()
        await sentinel.stop()
        await entra.stop()
    _print_summary(console, summary, rows)
    if as_json:
        print(orjson.dumps(summary).decode(), flush=True)
    return summary


def _print_summary(console: Console, s: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    console.print(
        f"\ngenerated {s['generated']}, fetched {s['fetched']}, "
        f"duplicates dropped {s['duplicates_dropped']}, "
        f"delivered {s['delivered']}, duplicates delivered {s['duplicates_delivered']}, "
        f"[bold]{'lost 0' if s['lost'] == 0 else 'LOST ' + str(s['lost'])}[/bold]"
    )
    console.print(f"faults the simulators injected and logferry recovered from: {s['faults_answered']}")
    for name, i in s["inputs"].items():
        console.print(
            f"{name} ({i['what']}): sent {i['sent']}, delivered {i['delivered']}, "
            f"dead-lettered {i['dead_lettered']}, lost {i['lost']}"
        )
    for what, why in s["inputs_left_out"].items():
        console.print(f"left out: {what}: {why}")
    console.print(f"\nlast rows in {TABLE} (Sentinel simulator):")
    for row in rows[-3:]:
        console.print_json(orjson.dumps(row).decode())
    console.print(f"\nstate, logs and the NDJSON archive are in {s['data_dir']}")
