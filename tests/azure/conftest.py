"""Shared by the template tests: the JSON Schema the generated templates must satisfy, and configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent.parent / "examples"

#: Shipped examples with a Sentinel sink: each must give a deployable template.
SENTINEL_EXAMPLES = sorted(p for p in EXAMPLES.glob("*.yaml") if "type: sentinel" in p.read_text("utf-8"))


@pytest.fixture(scope="session")
def arm_schema() -> Draft202012Validator:
    schema = json.loads((HERE / "arm_template.schema.json").read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def assert_valid(validator: Draft202012Validator, template: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(template), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors)


def sentinel_sink(dcr: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "sentinel",
        "inputs": ["mesh"],
        "endpoint": "https://my-dce-5kyl.eastus-1.ingest.monitor.azure.com",
        "dcr_immutable_id": dcr,
        "auth": {
            "type": "client_secret",
            "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "client_id": "0b5d6c3e-1111-4222-8333-944455556666",
            # Deliberately unset in the environment: a template needs no secret.
            "client_secret": "${env:H6_AZURE_TEMPLATE_UNSET_SECRET}",
        },
        **fields,
    }


DCR_A = "dcr-" + "a" * 32
DCR_B = "dcr-" + "b" * 32


def config_with(sinks: dict[str, Any]) -> dict[str, Any]:
    return {
        "sources": {
            "mesh": {
                "type": "meshstack",
                "api_url": "https://federation.example.meshcloud.io",
                "client_id": "00000000-0000-0000-0000-000000000000",
                "client_secret": "${env:H6_AZURE_TEMPLATE_UNSET_SECRET}",
            }
        },
        "sinks": sinks,
    }


def write_config(path: Path, sinks: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config_with(sinks), sort_keys=False), "utf-8")
    return path


MULTI_SINKS: dict[str, Any] = {
    "mesh_events": sentinel_sink(DCR_A, table="meshStackEventLogs_CL", include_event_id=True),
    "o365": sentinel_sink(DCR_A, table="O365Audit_CL"),
    "mimecast": sentinel_sink(DCR_B, table="MimecastAudit_CL"),
    # Same table and DCR as mesh_events, without EventId: a second stream name keeps them apart.
    "mesh_plain": sentinel_sink(
        DCR_B, table="meshStackEventLogs_CL", stream_name="Custom-meshStackEventLogsPlain_CL"
    ),
    "raw": sentinel_sink(DCR_A, stream_name="Custom-RawEvents"),
    "archive": {"type": "file", "inputs": ["mesh"], "path": "/tmp/never-written-%Y.ndjson"},
}
