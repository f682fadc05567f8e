from __future__ import annotations

import inspect

import logferry.observe as observe


def test_all_lists_exactly_the_public_members() -> None:
    public = {
        name
        for name, value in vars(observe).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert set(observe.__all__) == public


def test_all_has_no_duplicates() -> None:
    assert len(observe.__all__) == len(set(observe.__all__))
