"""Generated docs and shipped examples stay true to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from logferry.config.loader import load_config
from logferry.docgen import render

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_is_generated_from_the_models() -> None:
    current = (ROOT / "docs" / "configuration.md").read_text("utf-8")
    assert current == render(), (
        "docs/configuration.md is stale: python -m logferry.docgen > docs/configuration.md"
    )


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_config_validates(example: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every ${env:NAME} the example references, so each example validates on its own terms.
    for name in re.findall(r"\$\{env:([A-Za-z0-9_]+)\}", example.read_text("utf-8")):
        monkeypatch.setenv(name, "placeholder-secret")
    load_config(example, remote_secrets=False)
