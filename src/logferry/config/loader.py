"""Load a logferry YAML config into validated models, or one clear line per problem.

Shape (Vector's convention)::

    state:   {type: sqlite, path: ./logferry-data/state.db}
    api:     {address: 127.0.0.1:8686}
    sources: {NAME: {type: TYPE, ...}}
    sinks:   {NAME: {type: TYPE, inputs: [SOURCE, ...], ...}}

Every problem is reported as ``field.path: what is wrong; the fix`` and no traceback ever
reaches the user. Unknown keys are refused with the closest known key as a suggestion.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model

from logferry.config.base import Model, SinkConfig, SourceConfig
from logferry.config.secrets import resolve_refs
from logferry.core.errors import ConfigError
from logferry.core.registry import SINK_TYPES, SOURCE_TYPES

__all__ = ["ApiConfig", "Config", "LogConfig", "StateConfig", "config_schema", "load_config", "parse_config"]

NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DEFAULT_STATE_PATH = "./logferry-data/state.db"
DEFAULT_API_ADDRESS = "127.0.0.1:8686"


class StateConfig(Model):
    type: Literal["sqlite"] = Field(
        "sqlite", description="State backend. 'sqlite' is embedded and needs nothing."
    )
    path: str = Field(
        DEFAULT_STATE_PATH,
        description="SQLite database file (created with its directory). Relative paths are relative to the "
        "config file.",
        examples=["/var/lib/logferry/state.db"],
    )
    synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="'normal' survives a killed process (pull sources re-fetch after power loss); "
        "'full' fsyncs every commit and also survives power loss.",
    )


class ApiConfig(Model):
    enabled: bool = Field(True, description="Serve /healthz, /readyz, /status and /metrics.")
    address: str = Field(
        DEFAULT_API_ADDRESS,
        pattern=r"^[^:]+:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$",
        description="host:port to listen on. Binds to localhost unless you say otherwise.",
        examples=["127.0.0.1:8686", "0.0.0.0:8686"],
    )

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.address.rpartition(":")
        return host.strip("[]"), int(port)


class LogConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = Field("info", description="Log level.")
    format: Literal["json", "text"] = Field(
        "json", description="One JSON object per line, or text for humans."
    )


class Config(Model):
    state: StateConfig = StateConfig()
    api: ApiConfig = ApiConfig()
    log: LogConfig = LogConfig()
    sources: dict[str, SourceConfig]
    sinks: dict[str, SinkConfig]
    base_dir: Path = Field(default=Path("."), exclude=True)

    def state_path(self) -> Path:
        p = Path(self.state.path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(sorted(choices))}"


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, unions, Annotated, lists)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType, list, dict):
        return [m for a in typing.get_args(annotation) for m in _models_in(a)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _walk(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[Any], list[str]]:
    """The user's path for a pydantic error location, and the keys valid at its end.

    Discriminated unions put the tag (``client_secret`` in ``auth.client_secret.tenant_id``)
    into the location; it is not something the user wrote, so it is dropped.
    """
    models = [model]
    user_loc: list[Any] = []
    for part in loc:
        if isinstance(part, int):
            user_loc.append(part)
            continue
        fields = [m.model_fields[str(part)] for m in models if str(part) in m.model_fields]
        if fields:
            user_loc.append(part)
            models = [sub for f in fields for sub in _models_in(f.annotation)] or models
            continue
        tagged = [m for m in models if _tag_of(m) == part]
        if tagged:
            models = tagged
        else:
            user_loc.append(part)
    return user_loc, sorted({n for m in models for n in m.model_fields if n != "base_dir"})


def _tag_of(model: type[BaseModel]) -> Any:
    f = model.model_fields.get("type")
    if f is not None and typing.get_origin(f.annotation) is Literal:
        return typing.get_args(f.annotation)[0]
    return None


def _format(prefix: str, model: type[BaseModel], err: Any) -> str:
    loc = tuple(err["loc"])
    user_loc, _ = _walk(model, loc)
    path = prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in user_loc)
    kind = err["type"]
    if kind == "missing":
        return f"{path}: required"
    if kind == "extra_forbidden":
        _, keys = _walk(model, loc[:-1])
        return f"{path}: unknown key{_suggest(str(loc[-1]), keys)}"
    msg = str(err["msg"])
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    return f"{path}: {msg}"


def _validate_component(
    kind: str, name: str, raw: Any, registry: dict[str, type[Any]], problems: list[str]
) -> Any | None:
    prefix = f"{kind}.{name}"
    if not NAME_RE.match(name):
        problems.append(f"{prefix}: names may use letters, digits, '_' and '-' only (max 64)")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{prefix}: must be a mapping with at least 'type'")
        return None
    type_name = raw.get("type")
    if type_name is None:
        problems.append(f"{prefix}.type: required; one of: {', '.join(sorted(registry))}")
        return None
    model = registry.get(str(type_name))
    if model is None:
        close = difflib.get_close_matches(str(type_name), list(registry), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"one of: {', '.join(sorted(registry))}"
        problems.append(f"{prefix}.type: unknown {kind[:-1]} type '{type_name}'; {hint}")
        return None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend(_format(prefix, model, e) for e in exc.errors())
        return None


def parse_config(data: Any, base_dir: Path = Path("."), remote_secrets: bool = True) -> Config:
    """Validate an already-parsed YAML document; raises ``ConfigError`` listing every problem."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise ConfigError(["config: the file must be a YAML mapping with 'sources' and 'sinks'"])
    data = resolve_refs(data, base_dir, problems, remote=remote_secrets)
    known = ["state", "api", "log", "sources", "sinks"]
    for key in data:
        if key not in known:
            problems.append(f"{key}: unknown key{_suggest(str(key), known)}")
    for key in ("sources", "sinks"):
        if not isinstance(data.get(key), dict) or not data.get(key):
            problems.append(f"{key}: required; a mapping of NAME: {{type: ...}} with at least one entry")
    raw_sources = data.get("sources") if isinstance(data.get("sources"), dict) else {}
    raw_sinks = data.get("sinks") if isinstance(data.get("sinks"), dict) else {}
    sources = {
        str(n): _validate_component("sources", str(n), raw, SOURCE_TYPES, problems)
        for n, raw in raw_sources.items()
    }
    sinks = {
        str(n): _validate_component("sinks", str(n), raw, SINK_TYPES, problems)
        for n, raw in raw_sinks.items()
    }
    sections: dict[str, Any] = {}
    for key, model in (("state", StateConfig), ("api", ApiConfig), ("log", LogConfig)):
        try:
            sections[key] = model.model_validate(data.get(key) or {})
        except ValidationError as exc:
            problems.extend(_format(key, model, e) for e in exc.errors())
    source_names = list(sources)
    routed: set[str] = set()
    for sname, sink in sinks.items():
        for i, inp in enumerate(sink.inputs if sink else []):
            if inp not in source_names:
                problems.append(
                    f"sinks.{sname}.inputs[{i}]: no source named '{inp}'{_suggest(inp, source_names)}"
                )
            routed.add(inp)
    # A sink that failed validation still names its inputs: one problem about it is enough.
    for raw in raw_sinks.values():
        if isinstance(raw, dict) and isinstance(raw.get("inputs"), list):
            routed.update(str(i) for i in raw["inputs"])
    for src in sources:
        if src not in routed:
            problems.append(f"sources.{src}: no sink takes its events; add '{src}' to a sink's inputs")
    if problems:
        raise ConfigError(problems)
    return Config(
        sources={n: c for n, c in sources.items() if c},
        sinks={n: c for n, c in sinks.items() if c},
        base_dir=base_dir,
        **sections,
    )


def load_config(path: str | Path, remote_secrets: bool = True) -> Config:
    """Read and validate a config file; every failure is a ``ConfigError``."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read the config file: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [f"{p}: the config file is not UTF-8 (byte {exc.start}); save it as UTF-8"]
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError([f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}"]) from exc
    return parse_config(data, p.parent.resolve(), remote_secrets)


def config_schema() -> dict[str, Any]:
    """JSON Schema of the whole config, with ``type``-tagged unions of every registered connector."""

    def union(registry: dict[str, type[Any]]) -> Any:
        members = tuple(registry.values())
        if len(members) == 1:
            return members[0]
        return Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007

    fields: dict[str, Any] = {
        "state": (StateConfig, StateConfig()),
        "api": (ApiConfig, ApiConfig()),
        "log": (LogConfig, LogConfig()),
        "sources": (dict[str, union(SOURCE_TYPES)], ...),  # type: ignore[misc]
        "sinks": (dict[str, union(SINK_TYPES)], ...),  # type: ignore[misc]
    }
    schema_model = create_model("LogferryConfig", __base__=Model, **fields)
    schema: dict[str, Any] = schema_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "logferry configuration"
    return schema
