"""The library's stderr console (genoforge.console): what its message helpers print."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from rich.console import Console

from genoforge import console

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# A real warning of tune, far longer than 80 columns.
LONG = ("--grad_accum 64 needs 64 micro-batches per optimizer step (1 process(es) x 64), but an epoch of "
        "training.packed has only 12 micro-batches of 8 rows: accumulating 12 per process instead (12 per "
        "step); bake more data, or pass a --grad_accum of at most 12 to choose yourself")


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log-file"])
def test_a_long_warning_prints_as_one_line_at_80_columns(monkeypatch, terminal):
    buffer = StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=buffer, width=80, force_terminal=terminal))
    console.warn(LONG)
    console.warn("two\nlines [not markup]")
    assert ANSI.sub("", buffer.getvalue()).splitlines() == [f"Warning: {LONG}", "Warning: two lines [not markup]"]
