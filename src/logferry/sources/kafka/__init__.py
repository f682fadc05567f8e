"""Kafka and Azure Event Hubs (Kafka endpoint) source (types ``kafka`` and ``event_hubs``)."""

from __future__ import annotations

from logferry.sources.kafka.config import EventHubsConfig, KafkaConfig
from logferry.sources.kafka.source import KafkaSource

__all__ = ["EventHubsConfig", "KafkaConfig", "KafkaSource"]
