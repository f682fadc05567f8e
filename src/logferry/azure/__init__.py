"""Azure onboarding helpers: ARM templates for the resources the Sentinel sinks of a config send to."""

from __future__ import annotations

__all__: list[str] = []
