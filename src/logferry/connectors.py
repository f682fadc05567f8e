"""Imports the built-in sources and sinks so they register their ``type`` names.

This is the one place that knows the concrete connectors; the core only sees the registry.
"""

from __future__ import annotations

import importlib

__all__ = ["BUILTIN_MODULES", "load_builtin"]

BUILTIN_MODULES = (
    "logferry.sources.meshstack",
    "logferry.sources.o365.config",
    "logferry.sources.graph_alerts",
    "logferry.sources.message_trace",
    "logferry.sources.mimecast",
    "logferry.sources.duo",
    "logferry.sources.secure_endpoint",
    "logferry.sources.crowdstrike",
    "logferry.sources.syslog",
    "logferry.sources.filedrop",
    "logferry.sources.s3",
    "logferry.sources.kafka",
    "logferry.sinks.sentinel",
    "logferry.sinks.file",
    "logferry.sinks.stdout",
    "logferry.sinks.log_analytics",
    "logferry.sinks.http",
    "logferry.sinks.logstash",
    "logferry.sinks.syslog",
    "logferry.sinks.kafka",
)


def load_builtin() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
