"""Logstash's beats input, or any Lumberjack v2 server, as Filebeat's Logstash output sends to it.

``config`` is what the user writes; ``encoder`` shapes records as Beats events; ``protocol`` is
the wire format (shared with ``logferry sim beats``); ``client`` is one connection, ``pool`` the
choice between hosts, and ``service`` the sink that sends one request.
"""

from __future__ import annotations

from logferry.sinks.logstash.config import LogstashConfig
from logferry.sinks.logstash.service import LogstashSink

__all__ = ["LogstashConfig", "LogstashSink"]
