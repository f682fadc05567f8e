"""Built-in vendor API simulators: faithful local versions of the APIs logferry talks to.

Each simulator is an aiohttp application (see :class:`SimServer`) that the demo, the tests and the
benchmarks run in-process or via ``logferry sim NAME``. Simulators register themselves by name where
they are defined (``@register("meshstack")``); importing this package imports every module in it,
so adding a simulator is adding a module.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import SIMULATORS, register
from .server import SimOptions, SimServer
from .standalone import parse_options, run_standalone

__all__ = ["SIMULATORS", "SimOptions", "SimServer", "parse_options", "register", "run_standalone"]


def _load_simulators() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_load_simulators()
