"""``logferry.azure.template``: the ARM template is structurally valid and matches what the sinks send."""

from __future__ import annotations

import copy
import datetime as dt
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from logferry.azure.cli import load_without_secrets, parse_without_secrets
from logferry.azure.template import Options, TemplateError, generate, transform_kql
from logferry.config.base import BuildContext
from logferry.config.loader import Config
from logferry.observe.metrics import Metrics
from logferry.schemas import Column, TableDefinition, available_tables, load_table
from logferry.sim.meshstack_events import EventLog, Filters
from logferry.sim.sentinel_rows import RowValidator
from logferry.sinks.sentinel.config import SentinelConfig

from .conftest import DCR_A, DCR_B, MULTI_SINKS, SENTINEL_EXAMPLES, assert_valid, config_with, sentinel_sink

DCR = "Microsoft.Insights/dataCollectionRules"
DCE = "Microsoft.Insights/dataCollectionEndpoints"
TABLE = "Microsoft.OperationalInsights/workspaces/tables"
ROLE = "Microsoft.Authorization/roleAssignments"


def _parsed(sinks: dict[str, Any]) -> Config:
    return parse_without_secrets(copy.deepcopy(config_with(sinks)), Path("."))


def of_type(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["resources"] if r["type"] == kind]


def streams_of(template: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    return {
        name: decl["columns"]
        for rule in of_type(template, DCR)
        for name, decl in rule["properties"]["streamDeclarations"].items()
    }


def assert_consistent(template: dict[str, Any]) -> None:
    """What JSON Schema cannot say: references inside the template point at things it defines."""
    tables = {t["properties"]["schema"]["name"]: t for t in of_type(template, TABLE)}
    for rule in of_type(template, DCR):
        props = rule["properties"]
        destinations = {d["name"] for d in props["destinations"]["logAnalytics"]}
        for flow in props["dataFlows"]:
            assert set(flow["streams"]) <= set(props["streamDeclarations"])
            assert set(flow["destinations"]) <= destinations
            table = flow["outputStream"].removeprefix("Custom-")
            assert table in tables, f"{flow['outputStream']} has no table in the template"
            assert f"parameters('workspaceName'), '{table}')]" in " ".join(rule["dependsOn"])
            if flow["transformKql"] == "source":
                # Without a transform every stream column must land in a table column of that type.
                table_types = {c["name"]: c["type"] for c in tables[table]["properties"]["schema"]["columns"]}
                for stream in flow["streams"]:
                    for col in props["streamDeclarations"][stream]["columns"]:
                        assert table_types[col["name"]].lower() == col["type"], (stream, col)
    for name in template["parameters"]:
        assert f"parameters('{name}')" in str(template), f"parameter {name} is never used"


@pytest.mark.parametrize("example", SENTINEL_EXAMPLES, ids=lambda p: p.name)
def test_every_shipped_sentinel_example_gives_a_valid_template(
    example: Path, arm_schema: Draft202012Validator
) -> None:
    cfg = load_without_secrets(example)
    result = generate(cfg.sinks)
    assert_valid(arm_schema, result.template)
    assert_consistent(result.template)
    sentinels = {n: s for n, s in cfg.sinks.items() if isinstance(s, SentinelConfig)}
    assert set(result.covered) == set(sentinels)
    tables = {t["properties"]["schema"]["name"] for t in of_type(result.template, TABLE)}
    assert tables == {s.table for s in sentinels.values()}
    assert len(of_type(result.template, DCE)) == 1


def test_several_sinks_share_one_dce_and_one_dcr_per_immutable_id(arm_schema: Draft202012Validator) -> None:
    result = generate(_parsed(MULTI_SINKS).sinks)
    t = result.template
    assert_valid(arm_schema, t)
    assert_consistent(t)
    assert len(of_type(t, DCE)) == 1
    rules = of_type(t, DCR)
    assert [sorted(r["properties"]["streamDeclarations"]) for r in rules] == [
        ["Custom-O365Audit_CL", "Custom-meshStackEventLogs_CL"],
        ["Custom-MimecastAudit_CL", "Custom-meshStackEventLogsPlain_CL"],
    ]
    # Two rules: named apart by the first sink of each; one role assignment per rule.
    assert [r["name"] for r in rules] == [
        "[format('{0}-{1}', parameters('dcrName'), 'mesh_events')]",
        "[format('{0}-{1}', parameters('dcrName'), 'mimecast')]",
    ]
    assert len(of_type(t, ROLE)) == 2
    # One table per table name; meshStack's has EventId because one of its sinks sends it.
    tables = {x["properties"]["schema"]["name"]: x for x in of_type(t, TABLE)}
    assert sorted(tables) == ["MimecastAudit_CL", "O365Audit_CL", "meshStackEventLogs_CL"]
    mesh_cols = [c["name"] for c in tables["meshStackEventLogs_CL"]["properties"]["schema"]["columns"]]
    assert mesh_cols[-1] == "EventId"
    streams = streams_of(t)
    assert "EventId" in [c["name"] for c in streams["Custom-meshStackEventLogs_CL"]]
    assert "EventId" not in [c["name"] for c in streams["Custom-meshStackEventLogsPlain_CL"]]
    # The outputs give each covered sink the three values its config needs.
    sinks_out = t["outputs"]["sinks"]["value"]
    assert sorted(sinks_out) == ["mesh_events", "mesh_plain", "mimecast", "o365"]
    assert sinks_out["mesh_plain"]["stream_name"] == "Custom-meshStackEventLogsPlain_CL"
    assert "'mimecast')" in sinks_out["mesh_plain"]["dcr_immutable_id"]
    assert "'mesh_events')" in sinks_out["o365"]["dcr_immutable_id"]
    # The sink without a table is reported, not guessed at; the file sink is not a Sentinel sink.
    assert list(result.skipped) == ["raw"]
    assert "Custom-RawEvents" in result.skipped["raw"]
    assert "archive" not in result.covered


def test_one_sink_uses_the_parameter_names_as_given(arm_schema: Draft202012Validator) -> None:
    sinks = {"s": sentinel_sink(DCR_A, table="O365Audit_CL")}
    t = generate(_parsed(sinks).sinks, Options(workspace_name="ws", location="westeurope")).template
    assert_valid(arm_schema, t)
    assert of_type(t, DCR)[0]["name"] == "[parameters('dcrName')]"
    assert t["parameters"]["workspaceName"]["defaultValue"] == "ws"
    assert t["parameters"]["location"]["defaultValue"] == "westeurope"


def test_direct_rules_need_no_endpoint(arm_schema: Draft202012Validator) -> None:
    t = generate(
        _parsed({"s": sentinel_sink(DCR_A, table="O365Audit_CL")}).sinks, Options(direct=True)
    ).template
    assert_valid(arm_schema, t)
    assert_consistent(t)
    assert of_type(t, DCE) == []
    (rule,) = of_type(t, DCR)
    assert rule["kind"] == "Direct"
    assert "dataCollectionEndpointId" not in rule["properties"]
    assert "dceName" not in t["parameters"]
    assert t["outputs"]["sinks"]["value"]["s"]["endpoint"].endswith(".endpoints.logsIngestion]")


def test_one_stream_declared_two_ways_in_one_dcr_is_refused() -> None:
    sinks = {
        "a": sentinel_sink(DCR_B, table="meshStackEventLogs_CL", include_event_id=True),
        "b": sentinel_sink(DCR_B, table="meshStackEventLogs_CL"),
    }
    with pytest.raises(TemplateError, match="sinks a and b send different columns to stream"):
        generate(_parsed(sinks).sinks)
    # The same two sinks on different DCRs are fine: each rule declares its own stream.
    sinks["b"]["dcr_immutable_id"] = DCR_A
    assert len(of_type(generate(_parsed(sinks).sinks).template, DCR)) == 2


def test_the_schema_refuses_what_azure_would(arm_schema: Draft202012Validator) -> None:
    """The schema has teeth: each of these is a deployment Azure refuses."""
    good = generate(_parsed({"s": sentinel_sink(DCR_A, table="O365Audit_CL")}).sinks).template
    assert_valid(arm_schema, good)

    def broken(edit: Any) -> dict[str, Any]:
        t = copy.deepcopy(good)
        edit(t)
        return t

    def rule(t: dict[str, Any]) -> dict[str, Any]:
        return of_type(t, DCR)[0]

    def table(t: dict[str, Any]) -> dict[str, Any]:
        return of_type(t, TABLE)[0]

    cases = {
        "guid in a stream": lambda t: rule(t)["properties"]["streamDeclarations"]["Custom-O365Audit_CL"][
            "columns"
        ].append({"name": "X", "type": "guid"}),
        "DCR without location": lambda t: rule(t).pop("location"),
        "DCR without dataFlows": lambda t: rule(t)["properties"].pop("dataFlows"),
        "table type spelled for a stream": lambda t: table(t)["properties"]["schema"]["columns"][0].update(
            type="datetime"
        ),
        "table without _CL": lambda t: table(t)["properties"]["schema"].update(name="O365Audit"),
        "reserved column": lambda t: table(t)["properties"]["schema"]["columns"].append(
            {"name": "TenantId", "type": "string"}
        ),
        "typo in a resource key": lambda t: rule(t).update(dependOn=[]),
        "old API version": lambda t: rule(t).update(apiVersion="2021-09-01-preview"),
        "no $schema": lambda t: t.pop("$schema"),
    }
    for what, edit in cases.items():
        assert list(arm_schema.iter_errors(broken(edit))), f"schema accepted: {what}"


def test_guid_columns_are_sent_as_strings_and_converted_by_thetransform_kql() -> None:
    cols = (Column("TimeGenerated", "datetime"), Column("Id", "guid"), Column("Other", "guid"))
    assert transform_kql(cols) == "source | extend Id = toguid(Id), Other = toguid(Other)"
    assert transform_kql(cols[:1]) == "source"


# --- the stream declaration equals what the sink sends ------------------------------------------------

_SAMPLE: dict[str, Any] = {
    "datetime": "2026-11-22T09:30:00.123456Z",
    "string": "text",
    "int": 7,
    "long": 2**40,
    "real": 1.5,
    "boolean": True,
    "dynamic": {"nested": [1, "two"]},
    "guid": str(uuid.UUID(int=42)),
}


def _record_filling(table: TableDefinition) -> dict[str, Any]:
    """A source record with a value, of the column's type, at the source path of every column."""
    record: dict[str, Any] = {}
    for col in table.columns:
        path = table.mapping.get(col.name, ())
        node = record
        for key in path[:-1]:
            node = node.setdefault(key, {})
        if path:
            node.setdefault(path[-1], _SAMPLE[col.type])
    return record


def _validator_for(name: str, columns: list[dict[str, str]]) -> RowValidator:
    decl = tuple(Column(c["name"], c["type"]) for c in columns)
    return RowValidator(TableDefinition(table=name, stream=name, columns=decl, mapping={}))


CASES = [
    (t, eid)
    for t in available_tables()
    for eid in (False, True)
    if not eid or load_table(t).column("EventId")
]


@pytest.mark.parametrize(("table", "include_event_id"), CASES)
async def test_stream_columns_are_exactly_what_the_sentinel_sink_encodes(
    table: str, include_event_id: bool, tmp_path: Path
) -> None:
    sinks = {"s": sentinel_sink(DCR_A, table=table, include_event_id=include_event_id)}
    cfg = _parsed(sinks)
    (declared,) = streams_of(generate(cfg.sinks).template).values()
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    try:
        sink = cfg.sinks["s"].build("s", ctx)  # the real sink, encoding as it does at commit time
        rows = [orjson.loads(line) for line in sink.encode([_record_filling(load_table(table))])]
    finally:
        await ctx.close()
    assert list(rows[0]) == [c["name"] for c in declared]
    _validator_for(table, declared).validate(rows)


async def test_real_meshstack_records_fit_the_stream_declaration(tmp_path: Path) -> None:
    log = EventLog(seed=6, backlog_events=200, backlog_secs=3600, live_rate=0, now_us=int(time.time() * 1e6))
    records = [log.render(e, "https://mesh.example") for e in log.query(None, None, Filters())]
    cfg = _parsed({"s": sentinel_sink(DCR_A, table="meshStackEventLogs_CL")})
    (declared,) = streams_of(generate(cfg.sinks).template).values()
    ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
    try:
        lines = cfg.sinks["s"].build("s", ctx).encode(records)
    finally:
        await ctx.close()
    rows = [orjson.loads(line) for line in lines]
    # Every row's keys are declared; across the backlog, every declared column is filled somewhere.
    assert set().union(*rows) == {c["name"] for c in declared}
    _validator_for("meshStackEventLogs_CL", declared).validate(rows)
    assert all(dt.datetime.fromisoformat(r["TimeGenerated"]) for r in rows)
