"""Config pieces every Azure destination shares: the cloud names, the GUID shape, and a batch capped
at what the API accepts per request."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import field_validator

from logferry.config.base import Model

__all__ = ["GUID_PATTERN", "ApiCappedBatch", "Cloud"]

#: The sovereign clouds the Azure sinks know the hosts of.
Cloud = Literal["public", "usgov", "china"]

#: A GUID as Azure prints one (workspace ids, tenant ids, ...), anchored for a JSON Schema ``pattern``.
GUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class ApiCappedBatch(Model):
    """Request size limits whose ``max_bytes`` may not exceed the API's per-request cap.

    A subclass declares ``max_bytes`` (with its own default and description) and sets the cap and how
    the error names it.
    """

    api_max_bytes: ClassVar[int]
    #: Completes "max_bytes N exceeds ...", e.g. "the Logs Ingestion API limit of 1048576 bytes per request".
    api_limit: ClassVar[str]

    @field_validator("max_bytes", check_fields=False)
    @classmethod
    def _under_api_limit(cls, v: int) -> int:
        if v > cls.api_max_bytes:
            raise ValueError(f"max_bytes {v} exceeds {cls.api_limit}; set it to {cls.api_max_bytes} or less")
        return v
