"""Kafka and Azure Event Hubs sink (types ``kafka`` and ``event_hubs``)."""

from __future__ import annotations

from logferry.sinks.kafka.config import EventHubsSinkConfig, KafkaSinkConfig

__all__ = ["EventHubsSinkConfig", "KafkaSinkConfig"]
