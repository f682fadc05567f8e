"""Config loading: one clear line per problem, secrets only by reference, JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from logferry.config.loader import config_schema, load_config, parse_config
from logferry.config.secrets import Secret
from logferry.connectors import load_builtin
from logferry.core.errors import ConfigError

load_builtin()


def base(**source: Any) -> dict[str, Any]:
    src = {
        "type": "meshstack",
        "api_url": "https://mesh.example.com",
        "client_id": "key-id",
        "client_secret": "${env:MESH_SECRET}",
        **source,
    }
    return {
        "sources": {"mesh": src},
        "sinks": {"out": {"type": "file", "inputs": ["mesh"], "path": "/tmp/out.ndjson"}},
    }


def problems(data: Any, tmp_path: Path = Path(".")) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, tmp_path)
    return exc.value.problems


@pytest.fixture(autouse=True)
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESH_SECRET", "s3cr3t-value")


def test_valid_config_resolves_secret_references() -> None:
    cfg = parse_config(base())
    secret = cfg.sources["mesh"].client_secret  # type: ignore[attr-defined]
    assert isinstance(secret, Secret)
    assert secret.reveal() == "s3cr3t-value"
    assert "s3cr3t" not in repr(cfg)


def test_file_reference_is_read_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("from-file\n")
    cfg = parse_config(base(client_secret="${file:secret.txt}"), tmp_path)
    assert cfg.sources["mesh"].client_secret.reveal() == "from-file"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (base(client_secret=None) | {}, "sources.mesh.client_secret:"),
        ({"sources": base()["sources"], "sinks": {}}, "sinks: required"),
        (
            base(client_secret="literal-secret"),
            "sources.mesh.client_secret: a secret must not be written inline",
        ),
        (base(client_secret="${env:NOT_SET_ANYWHERE}"), "environment variable NOT_SET_ANYWHERE is not set"),
        (base(clientsecret="x"), "sources.mesh.clientsecret: unknown key; did you mean 'client_secret'?"),
        (
            base(type="meshstak"),
            "sources.mesh.type: unknown source type 'meshstak'; did you mean 'meshstack'?",
        ),
        (base(api_url="http://mesh.example.com"), "sources.mesh.api_url: must use https"),
        (base(page_size=5000), "sources.mesh.page_size: Input should be less than or equal to 1000"),
        (base() | {"stat": {}}, "stat: unknown key; did you mean 'state'?"),
        (base() | {"state": {"synchronous": "sometimes"}}, "state.synchronous:"),
    ],
    ids=[
        "secret-null",
        "no-sinks",
        "inline-secret",
        "unset-env",
        "typo-key",
        "typo-type",
        "plain-http",
        "page-size-over-api-max",
        "typo-top-level",
        "bad-enum",
    ],
)
def test_invalid_config_names_the_field_and_the_fix(data: dict[str, Any], expected: str) -> None:
    found = problems(data)
    assert any(expected in p for p in found), found


def test_missing_secret_is_reported_as_required() -> None:
    data = base()
    del data["sources"]["mesh"]["client_secret"]
    assert "sources.mesh.client_secret: required" in problems(data)


def test_routes_must_name_existing_sources_and_every_source_needs_a_sink() -> None:
    data = base()
    data["sinks"]["out"]["inputs"] = ["mesj"]
    found = problems(data)
    assert "sinks.out.inputs[0]: no source named 'mesj'; did you mean 'mesh'?" in found
    assert "sources.mesh: no sink takes its events; add 'mesh' to a sink's inputs" in found


def test_a_sink_that_fails_validation_still_routes_its_inputs() -> None:
    data = base()
    data["sinks"]["out"]["no_such_option"] = 1
    found = problems(data)
    assert any(p.startswith("sinks.out.no_such_option") for p in found)
    assert not any("no sink takes its events" in p for p in found)


def test_every_problem_is_reported_at_once() -> None:
    data = base(clientsecret="x", page_size=0)
    assert len(problems(data)) >= 2


def test_load_config_reports_yaml_errors_with_position(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    p.write_text("sources:\n  mesh: [unclosed\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert "not valid YAML (line" in exc.value.problems[0]


def test_load_config_of_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read the config file" in exc.value.problems[0]


def test_load_config_of_a_file_that_is_not_utf8_names_the_byte(tmp_path: Path) -> None:
    p = tmp_path / "latin1.yaml"
    p.write_bytes("sources: {}\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert exc.value.problems == [f"{p}: the config file is not UTF-8 (byte 17); save it as UTF-8"]


def test_schema_lists_every_registered_type_and_refuses_unknown_keys() -> None:
    schema = config_schema()
    text = yaml.safe_dump(schema)
    for t in ("meshstack", "sentinel", "file", "stdout"):
        assert f"const: {t}" in text or f"- {t}" in text
    mesh = schema["$defs"]["MeshStackConfig"]
    assert mesh["additionalProperties"] is False
    assert "client_secret" in mesh["required"]
