"""Office 365 Management Activity API source (type ``office365``); see ``config`` and ``source``."""

from __future__ import annotations

from logferry.sources.o365.config import Office365Config
from logferry.sources.o365.source import Office365Source

__all__ = ["Office365Config", "Office365Source"]
