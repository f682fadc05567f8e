"""``logferry azure template`` as a user runs it: JSON on stdout or in a file, notes and errors on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner, Result

from logferry.azure.cli import app

from .conftest import DCR_A, MULTI_SINKS, SENTINEL_EXAMPLES, assert_valid, sentinel_sink, write_config


def run(*args: str) -> Result:
    result = CliRunner().invoke(app, ["template", *args])
    # Exits are SystemExit; anything else escaped as a traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_prints_the_template_to_stdout(
    arm_schema: Draft202012Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENTINEL_CLIENT_SECRET", raising=False)  # a template needs no secret
    result = run("-c", str(SENTINEL_EXAMPLES[0]), "--workspace-name", "soc-ws", "--location", "westeurope")
    assert result.exit_code == 0, result.stderr
    template = json.loads(result.stdout)
    assert_valid(arm_schema, template)
    assert template["parameters"]["workspaceName"]["defaultValue"] == "soc-ws"
    assert template["parameters"]["location"]["defaultValue"] == "westeurope"
    assert result.stderr == ""


def test_writes_the_template_to_a_file_and_reports_skipped_sinks(
    tmp_path: Path, arm_schema: Draft202012Validator
) -> None:
    cfg = write_config(tmp_path / "logferry.yaml", MULTI_SINKS)
    out = tmp_path / "azuredeploy.json"
    result = run("-c", str(cfg), "-o", str(out), "--dcr-name", "soc", "--dce-name", "soc-dce")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    template = json.loads(out.read_text("utf-8"))
    assert_valid(arm_schema, template)
    assert template["parameters"]["dcrName"]["defaultValue"] == "soc"
    assert template["parameters"]["dceName"]["defaultValue"] == "soc-dce"
    assert "sinks.raw: left out of the template: no `table`" in result.stderr
    assert "declare stream Custom-RawEvents" in result.stderr
    assert f"{out}: template for sinks mesh_events, o365, mimecast, mesh_plain" in result.stderr


def test_a_config_without_sentinel_sinks_exits_1(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", {"archive": MULTI_SINKS["archive"]})
    result = run("-c", str(cfg))
    assert result.exit_code == 1
    assert result.stdout == ""
    assert (
        result.stderr.strip()
        == f"{cfg}: no sink of type sentinel; the template creates what sentinel sinks send to"
    )


def test_only_sinks_without_a_table_exits_1_with_the_reason(tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", {"raw": MULTI_SINKS["raw"]})
    result = run("-c", str(cfg))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0].startswith("sinks.raw: left out of the template: no `table`")
    assert (
        lines[1] == f"{cfg}: no sentinel sink with a table; the template creates what sentinel sinks send to"
    )


def test_conflicting_streams_exit_1_naming_the_sinks(tmp_path: Path) -> None:
    sinks = {
        "a": sentinel_sink(DCR_A, table="meshStackEventLogs_CL", include_event_id=True),
        "b": sentinel_sink(DCR_A, table="meshStackEventLogs_CL"),
    }
    result = run("-c", str(write_config(tmp_path / "c.yaml", sinks)))
    assert result.exit_code == 1
    assert "sinks a and b send different columns to stream Custom-meshStackEventLogs_CL" in result.stderr


def test_an_invalid_config_gives_the_loaders_error_and_exit_2(tmp_path: Path) -> None:
    bad = sentinel_sink("dcr-not-hex", table="NoSuchTable_CL")
    result = run("-c", str(write_config(tmp_path / "c.yaml", {"s": bad})))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "sinks.s.dcr_immutable_id:" in result.stderr
    assert "sinks.s.table: no table definition named 'NoSuchTable_CL'" in result.stderr
    # The unset secret is mentioned (it might be what a field complains about), not fatal on its own.
    assert "H6_AZURE_TEMPLATE_UNSET_SECRET is not set; export it (left empty)" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read the config file"), ("sinks: [unclosed", "not valid YAML")],
)
def test_an_unreadable_config_gives_the_loaders_error(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content, "utf-8")
    result = run("-c", str(path))
    assert result.exit_code == 2
    assert expected in result.stderr


def test_config_is_required() -> None:
    result = run()
    assert result.exit_code == 2
    assert "--config" in result.stderr


def test_unresolved_deployment_outputs_get_placeholders(
    tmp_path: Path, arm_schema: Draft202012Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before the first deployment the DCE and the DCR do not exist: the template is what creates them.
    for var in ("H6_UNSET_DCE", "H6_UNSET_DCR_A", "H6_UNSET_DCR_B"):
        monkeypatch.delenv(var, raising=False)
    unset = {"endpoint": "${env:H6_UNSET_DCE}"}
    sinks = {
        "mesh": sentinel_sink("${env:H6_UNSET_DCR_A}", table="meshStackEventLogs_CL", **unset),
        "o365": sentinel_sink("${env:H6_UNSET_DCR_A}", table="O365Audit_CL", **unset),
        "mimecast": sentinel_sink("${env:H6_UNSET_DCR_B}", table="MimecastAudit_CL", **unset),
    }
    result = run("-c", str(write_config(tmp_path / "c.yaml", sinks)))
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    template = json.loads(result.stdout)
    assert_valid(arm_schema, template)
    # The same reference still means the same DCR, a different one another.
    rules = [r for r in template["resources"] if r["type"] == "Microsoft.Insights/dataCollectionRules"]
    assert sorted(len(r["properties"]["streamDeclarations"]) for r in rules) == [1, 2]
    assert "invalid" not in result.stdout  # placeholders are for validation only


def test_a_placeholder_is_named_when_the_config_fails_for_another_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("H6_UNSET_DCE", raising=False)
    bad = sentinel_sink(DCR_A, table="NoSuchTable_CL", endpoint="${env:H6_UNSET_DCE}")
    result = run("-c", str(write_config(tmp_path / "c.yaml", {"s": bad})))
    assert result.exit_code == 2
    assert "sinks.s.table: no table definition named 'NoSuchTable_CL'" in result.stderr
    assert "sinks.s.endpoint: environment variable H6_UNSET_DCE is not set; export it (a placeholder" in (
        result.stderr
    )
    assert "sinks.s.endpoint: endpoint must be" not in result.stderr


def test_a_migration_config_with_the_legacy_sinks_key_unset_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The legacy sink runs elsewhere; its key is not in this shell.
    monkeypatch.delenv("H6_UNSET_LA_KEY", raising=False)
    legacy = {
        "type": "log_analytics",
        "inputs": ["mesh"],
        "workspace_id": "0b5d6c3e-1111-4222-8333-944455556666",
        "shared_key": "${env:H6_UNSET_LA_KEY}",
        "log_type": "meshStackEventLogs",
    }
    sinks = {"legacy_la": legacy, "sentinel": sentinel_sink(DCR_A, table="meshStackEventLogs_CL")}
    result = run("-c", str(write_config(tmp_path / "c.yaml", sinks)))
    assert result.exit_code == 0, result.stderr
    assert "Microsoft.Insights/dataCollectionRules" in result.stdout


def test_a_config_that_is_not_utf8_gives_a_clear_error_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"sources: {}\nsinks: {}\n# caf\xe9\n")
    result = run("-c", str(path))
    assert result.exit_code == 2
    assert result.stderr.strip() == f"{path}: the config file is not UTF-8 (byte 27); save it as UTF-8"
