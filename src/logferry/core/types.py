"""Type aliases shared across logferry."""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["JSONValue", "Record"]

Record: TypeAlias = dict[str, Any]
JSONValue: TypeAlias = Any
