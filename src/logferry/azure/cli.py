"""``logferry azure template``: the ARM template for a config's Sentinel sinks, as JSON.

The template is written before the resources (and often the secrets) exist, so references that
cannot be resolved here do not fail the command: secrets are left empty (the template needs
none), and a sentinel sink's ``endpoint`` and ``dcr_immutable_id`` (values the deployment outputs)
get placeholders for validation only. Every other problem in the config is reported the way
``logferry validate`` reports it, one line each, exit 2.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml

from logferry.azure.template import Options, TemplateError, generate
from logferry.config.loader import Config, load_config, parse_config
from logferry.config.secrets import Ref, resolve_refs
from logferry.connectors import load_builtin
from logferry.core.errors import ConfigError

__all__ = ["app", "load_without_secrets", "parse_without_secrets"]

#: Stands in for an unresolved sentinel ``endpoint`` (.invalid is reserved: RFC 2606).
_PLACEHOLDER_ENDPOINT = "https://endpoint-from-the-template-outputs.invalid"

app = typer.Typer(
    help="Azure resources for the Sentinel sinks of a config.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def azure() -> None:
    """Azure resources for the Sentinel sinks of a config."""
    # A callback keeps ``template`` a subcommand even while it is the only one.


def load_without_secrets(path: Path) -> Config:
    """The config at ``path``, loaded by :func:`parse_without_secrets`."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        # The loader reads the file again and says what is wrong with it, in its own words.
        return load_config(path, remote_secrets=False)
    return parse_without_secrets(data, path.parent.resolve())


def parse_without_secrets(data: Any, base_dir: Path) -> Config:
    """A parsed config in which references that cannot be resolved become empty values, or
    placeholders where the value is one the template's deployment outputs.

    Raises ``ConfigError`` for every other problem, listing the unresolved references too, since
    an empty value may be what a field complains about.
    """
    load_builtin()
    unresolved: list[str] = []
    resolved = resolve_refs(data, base_dir, unresolved, remote=False)
    replaced = _fill_deployment_outputs(resolved, unresolved)
    try:
        return parse_config(resolved, base_dir, remote_secrets=False)
    except ConfigError as exc:
        notes = []
        for p in unresolved:
            how = "a placeholder was used" if _field(p) in replaced else "left empty"
            notes.append(f"{p} ({how})")
        raise ConfigError(exc.problems + notes) from None


def _field(problem: str) -> str:
    """The field path a resolver problem (``path: what is wrong``) is about."""
    return problem.split(": ", 1)[0]


def _fill_deployment_outputs(data: Any, unresolved: list[str]) -> set[str]:
    """Give unresolved ``endpoint``/``dcr_immutable_id`` of sentinel sinks placeholders; their paths.

    Before the first deployment these values do not exist yet: the template creates them. A DCR id
    placeholder is derived from the reference, so sinks naming the same reference still share a rule
    and sinks naming different ones do not.
    """
    failed = {_field(p) for p in unresolved}
    sinks = data.get("sinks") if isinstance(data, dict) else None
    if not isinstance(sinks, dict):
        return set()
    replaced: set[str] = set()
    for name, entry in sinks.items():
        if not isinstance(entry, dict) or entry.get("type") != "sentinel":
            continue
        for key in ("endpoint", "dcr_immutable_id"):
            value, path = entry.get(key), f"sinks.{name}.{key}"
            if path not in failed or not isinstance(value, Ref):
                continue
            if key == "endpoint":
                entry[key] = _PLACEHOLDER_ENDPOINT
            else:
                entry[key] = "dcr-" + hashlib.sha256(value.ref.encode()).hexdigest()[:32]
            replaced.add(path)
    return replaced


def _fail(problems: list[str], code: int) -> typer.Exit:
    for p in problems:
        typer.echo(p, err=True)
    return typer.Exit(code)


@app.command("template")
def template(
    config: Annotated[Path, typer.Option("--config", "-c", help="Path to logferry.yaml.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the template here (default: stdout).")
    ] = None,
    workspace_name: Annotated[
        str | None,
        typer.Option(help="Default of the workspaceName parameter (else it is asked for at deployment)."),
    ] = None,
    location: Annotated[
        str | None, typer.Option(help="Default of the location parameter (else the resource group's).")
    ] = None,
    dce_name: Annotated[str, typer.Option(help="Default of the dceName parameter.")] = Options.dce_name,
    dcr_name: Annotated[str, typer.Option(help="Default of the dcrName parameter.")] = Options.dcr_name,
    direct: Annotated[
        bool,
        typer.Option("--direct", help="DCRs of kind Direct, with their own ingestion endpoint; no DCE."),
    ] = False,
) -> None:
    """Write an ARM template creating the tables, DCRs and DCE the config's Sentinel sinks send to."""
    try:
        cfg = load_without_secrets(config)
    except ConfigError as exc:
        raise _fail(exc.problems, 2) from None
    options = Options(
        workspace_name=workspace_name, location=location, dce_name=dce_name, dcr_name=dcr_name, direct=direct
    )
    try:
        result = generate(cfg.sinks, options)
    except TemplateError as exc:
        raise _fail([f"{config}: {exc}"], 1) from None
    for name, reason in result.skipped.items():
        typer.echo(f"sinks.{name}: left out of the template: {reason}", err=True)
    if not result.covered:
        what = "no sentinel sink with a table" if result.skipped else "no sink of type sentinel"
        raise _fail([f"{config}: {what}; the template creates what sentinel sinks send to"], 1)
    text = orjson.dumps(result.template, option=orjson.OPT_INDENT_2).decode() + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, "utf-8")
    except OSError as exc:
        raise _fail([f"{output}: cannot write the template: {exc.strerror}"], 1) from None
    typer.echo(f"{output}: template for sinks {', '.join(result.covered)}", err=True)
