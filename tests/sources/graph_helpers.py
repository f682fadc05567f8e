"""Configs for the Microsoft Graph sources against the Graph simulator (shared by their test modules)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

# Until logferry.connectors lists them, importing the modules registers the source types.
import logferry.sources.graph_alerts
import logferry.sources.message_trace  # noqa: F401
from logferry.sim.graph import GraphSim
from tests.conftest import client_secret_auth

__all__ = ["FAST", "file_pipeline", "graph_source", "serving", "wrong_secret"]

#: Test defaults: the simulator's clock, not the API's pacing, decides how long a test takes.
FAST: dict[str, Any] = {
    "initial_lookback_secs": 2 * 3600,
    "window_secs": 7200,
    "lag_secs": 0,
    "interval_secs": 1,
    "max_requests_per_sec": 200,
}


def graph_source(sim: GraphSim, source_type: str, **overrides: Any) -> dict[str, Any]:
    """A ``source_type`` entry signing in at the simulator's Entra ID, secret by reference."""
    creds = sim.credentials
    return {
        "type": source_type,
        "api_url": sim.url,
        "authority_host": creds["authority_host"],
        "auth": client_secret_auth(
            creds["tenant_id"], creds["client_id"], "TEST_GRAPH_SECRET", creds["client_secret"]
        ),
        "tls": {"ca_file": sim.ca_file},
        **FAST,
        **overrides,
    }


def wrong_secret(sim: GraphSim) -> dict[str, Any]:
    """Config keys that make signing in fail (for the conformance suite's check test)."""
    creds = sim.credentials
    return {
        "auth": client_secret_auth(
            creds["tenant_id"], creds["client_id"], "TEST_GRAPH_WRONG_SECRET", "wrong-secret"
        )
    }


def file_pipeline(source: dict[str, Any], out: Path) -> dict[str, Any]:
    return {
        "sources": {"src": source},
        "sinks": {"out": {"type": "file", "inputs": ["src"], "path": str(out), "rotate_max_bytes": 0}},
    }


@asynccontextmanager
async def serving(sim: GraphSim) -> AsyncIterator[GraphSim]:
    """Run ``sim`` over TLS (msal insists on https for the authority it signs in at)."""
    await sim.start(tls=True)
    try:
        yield sim
    finally:
        await sim.stop()
