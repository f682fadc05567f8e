"""CrowdStrike Falcon Event Streams (type ``crowdstrike``); importing registers the type."""

from __future__ import annotations

from logferry.sources.crowdstrike.config import CrowdStrikeConfig

__all__ = ["CrowdStrikeConfig"]
