"""The shared conformance suite every source type passes (Airbyte's ``standard_tests``).

A source's test module subclasses :class:`SourceConformance` and provides one fixture, ``case``,
that starts the source's simulator and returns a :class:`SourceCase`. The suite then checks, over
real sockets, what every source promises: its config validates and refuses unknown keys, its type
is in the JSON Schema, a run collects every event exactly once, a restart resumes from the saved
cursor without loss or duplicates, and ``check()`` says ok — or names the problem — in plain words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logferry.config.base import BuildContext
from logferry.config.loader import config_schema, parse_config
from logferry.core.errors import ConfigError
from logferry.observe.metrics import Metrics
from tests.conftest import read_ndjson, running, wait_for

__all__ = ["SourceCase", "SourceConformance"]


@dataclass
class SourceCase:
    """One source type against its simulator."""

    config: dict[str, Any]  # the source's config entry, secrets by reference
    total: int  # events the simulator holds (no live generation)
    event_id: Callable[[dict[str, Any]], str]  # the vendor's stable id of an output record
    wrong_credentials: dict[str, Any]  # keys that make authentication fail
    check_failure: str  # a phrase the failed check's message must contain


def pipeline_config(case: SourceCase, tmp_path: Path, **source: Any) -> dict[str, Any]:
    return {
        "state": {"path": str(tmp_path / "state.db")},
        "api": {"enabled": False},
        "sources": {"src": {**case.config, **source}},
        "sinks": {"out": {"type": "file", "inputs": ["src"], "path": str(tmp_path / "out.ndjson")}},
    }


class SourceConformance:
    """Subclass as ``TestXConformance`` and define the ``case`` fixture."""

    def ids(self, case: SourceCase, tmp_path: Path) -> list[str]:
        out = tmp_path / "out.ndjson"
        return [case.event_id(r) for r in read_ndjson(out)] if out.exists() else []

    async def test_config_validates_and_refuses_unknown_keys(self, case: SourceCase, tmp_path: Path) -> None:
        parse_config(pipeline_config(case, tmp_path), tmp_path)
        with pytest.raises(ConfigError) as exc:
            parse_config(pipeline_config(case, tmp_path, no_such_option=1), tmp_path)
        assert any(p.startswith("sources.src.no_such_option: unknown key") for p in exc.value.problems)

    def test_type_is_in_the_json_schema(self, case: SourceCase) -> None:
        assert f'"const": "{case.config["type"]}"' in str(config_schema()).replace("'", '"')

    async def test_collects_every_event_exactly_once(self, case: SourceCase, tmp_path: Path) -> None:
        async with running(pipeline_config(case, tmp_path), tmp_path):
            await wait_for(lambda: len(self.ids(case, tmp_path)) >= case.total, timeout=60)
        ids = self.ids(case, tmp_path)
        assert len(ids) == len(set(ids)) == case.total

    async def test_restart_resumes_from_the_saved_cursor(self, case: SourceCase, tmp_path: Path) -> None:
        cfg = pipeline_config(case, tmp_path)
        async with running(dict(cfg), tmp_path):
            await wait_for(lambda: len(self.ids(case, tmp_path)) > 0, timeout=60)
        assert len(self.ids(case, tmp_path)) < case.total, "the first run must stop part-way"
        async with running(dict(cfg), tmp_path):
            await wait_for(lambda: len(self.ids(case, tmp_path)) >= case.total, timeout=60)
        ids = self.ids(case, tmp_path)
        assert len(ids) == len(set(ids)) == case.total

    async def test_check_says_ok_or_names_the_problem(self, case: SourceCase, tmp_path: Path) -> None:
        ctx = BuildContext(data_dir=tmp_path, metrics=Metrics())
        try:
            good = parse_config(pipeline_config(case, tmp_path), tmp_path).sources["src"].build("src", ctx)
            assert (await good.check()).ok
            bad_cfg = pipeline_config(case, tmp_path, **case.wrong_credentials)
            bad = parse_config(bad_cfg, tmp_path).sources["src"].build("src", ctx)
            result = await bad.check()
            assert not result.ok
            assert case.check_failure in result.message
        finally:
            await ctx.close()
