"""Configuration: YAML loading, validated models, secret references, JSON Schema."""

from __future__ import annotations

from logferry.config.base import BuildContext, Model, SinkConfig, SourceConfig, TLSConfig
from logferry.config.loader import Config, config_schema, load_config, parse_config
from logferry.config.secrets import Secret

__all__ = [
    "BuildContext",
    "Config",
    "Model",
    "Secret",
    "SinkConfig",
    "SourceConfig",
    "TLSConfig",
    "config_schema",
    "load_config",
    "parse_config",
]
