"""Sources, one module or package each; they register their type on import."""

from __future__ import annotations

__all__: list[str] = []
