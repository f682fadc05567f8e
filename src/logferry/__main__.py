"""``python -m logferry`` is the ``logferry`` command."""

from __future__ import annotations

from logferry.cli import main

main()
