"""Simulators by name, registered where each is defined (``@register("meshstack")``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .server import SimServer

__all__ = ["SIMULATORS", "register"]

#: Every simulator class by its ``logferry sim NAME`` name.
SIMULATORS: dict[str, type[SimServer[Any]]] = {}

SimT = TypeVar("SimT", bound=type[SimServer[Any]])


def register(name: str) -> Callable[[SimT], SimT]:
    """Class decorator adding a simulator to :data:`SIMULATORS` under ``name``."""

    def decorate(cls: SimT) -> SimT:
        existing = SIMULATORS.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"simulator name {name!r} is taken by {existing.__qualname__}")
        cls.name = name
        SIMULATORS[name] = cls
        return cls

    return decorate
