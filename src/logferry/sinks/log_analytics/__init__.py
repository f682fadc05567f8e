"""A Log Analytics workspace through the legacy HTTP Data Collector API (retired 14 September 2026).

``config`` is what the user writes and checks without I/O; ``signing`` computes the SharedKey
signature; ``encoder`` turns records into lines with valid column names; ``service`` sends one
signed request and classifies its outcome.
"""

from __future__ import annotations

from logferry.sinks.log_analytics.config import LogAnalyticsConfig
from logferry.sinks.log_analytics.service import LogAnalyticsSink

__all__ = ["LogAnalyticsConfig", "LogAnalyticsSink"]
