"""logferry: security logs from cloud services into the SIEM you already run."""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
