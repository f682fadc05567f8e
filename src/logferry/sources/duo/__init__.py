"""Cisco Duo Admin API logs source (type ``duo``); see ``config``, ``source`` and ``signing``."""

from __future__ import annotations

from logferry.sources.duo.config import DuoConfig
from logferry.sources.duo.source import DuoSource

__all__ = ["DuoConfig", "DuoSource"]
