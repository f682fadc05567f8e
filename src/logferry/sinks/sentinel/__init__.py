"""Microsoft Sentinel (Log Analytics) through the Logs Ingestion API and a data collection rule.

``config`` is what the user writes and checks without I/O; ``encoder`` maps and encodes records
and frames request bodies; ``service`` sends one request and classifies its outcome.
"""

from __future__ import annotations

from logferry.sinks.sentinel.config import SentinelConfig
from logferry.sinks.sentinel.service import SentinelSink

__all__ = ["SentinelConfig", "SentinelSink"]
