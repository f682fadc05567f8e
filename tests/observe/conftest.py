from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from logferry.observe import clear_secrets


@pytest.fixture(autouse=True)
def _isolated_observe_state() -> Iterator[None]:
    """Secrets and the ``logferry`` logger are process-wide; restore both after each test."""
    logger = logging.getLogger("logferry")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    clear_secrets()
    yield
    clear_secrets()
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]
