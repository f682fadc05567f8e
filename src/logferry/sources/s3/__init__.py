"""Cisco Umbrella / Secure Access logs from S3 (type ``cisco_umbrella``), with optional SQS notifications."""

from __future__ import annotations

from logferry.sources.s3.config import UmbrellaConfig
from logferry.sources.s3.source import UmbrellaSource

__all__ = ["UmbrellaConfig", "UmbrellaSource"]
