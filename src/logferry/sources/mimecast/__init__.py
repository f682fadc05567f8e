"""Mimecast source (type ``mimecast``): audit events and SIEM logs; see ``config`` and ``source``."""

from __future__ import annotations

from logferry.sources.mimecast.config import MimecastConfig
from logferry.sources.mimecast.source import MimecastSource

__all__ = ["MimecastConfig", "MimecastSource"]
