"""Destinations for ``bench/sinks.py``: one module per sink type, each defining ``peer(tmp)``.

``peer`` is an async context manager. It runs the destination (our simulator, Tansu, rsyslog),
preferably in its own process so its CPU never counts as logferry's, and yields a :class:`Peer`:
the sink's config entry (without ``inputs``) and a way to count what arrived. Bench scripts put
``bench/`` on ``sys.path``, so a peer module imports this as ``from peers import Peer``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Peer"]


@dataclass
class Peer:
    config: dict[str, Any]  # the sink entry without `inputs`
    arrived: Callable[[], Awaitable[int]]  # records the destination holds now
