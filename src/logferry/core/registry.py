"""Source and sink types register themselves by name where they are defined.

The core never imports a concrete connector; ``logferry.connectors`` imports the built-in
ones, and the config loader builds its ``type:``-tagged unions from this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from logferry.config.base import SinkConfig, SourceConfig

__all__ = ["SINK_TYPES", "SOURCE_TYPES", "register_sink", "register_source"]

SOURCE_TYPES: dict[str, type[SourceConfig]] = {}
SINK_TYPES: dict[str, type[SinkConfig]] = {}

S = TypeVar("S", bound="SourceConfig")
K = TypeVar("K", bound="SinkConfig")


def register_source(type_name: str) -> Callable[[type[S]], type[S]]:
    def deco(cls: type[S]) -> type[S]:
        SOURCE_TYPES[type_name] = cls
        return cls

    return deco


def register_sink(type_name: str) -> Callable[[type[K]], type[K]]:
    def deco(cls: type[K]) -> type[K]:
        SINK_TYPES[type_name] = cls
        return cls

    return deco
