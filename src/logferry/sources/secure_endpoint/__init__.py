"""Cisco Secure Endpoint (AMP for Endpoints) events source (type ``cisco_secure_endpoint``)."""

from __future__ import annotations

from logferry.sources.secure_endpoint.config import SecureEndpointConfig
from logferry.sources.secure_endpoint.source import SecureEndpointSource

__all__ = ["SecureEndpointConfig", "SecureEndpointSource"]
