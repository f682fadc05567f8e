"""Every module's ``__all__`` names what it really exports (httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import logferry

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(logferry.__path__, "logferry.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_only_names_the_module_defines(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        pytest.fail(f"{name} declares no __all__")
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    assert len(exported) == len(set(exported))
