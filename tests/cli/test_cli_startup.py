"""Fast failure: a missing input is reported before torch/transformers are imported (seconds).

Each case runs in a fresh interpreter (another test may have imported torch in this one) and
checks the modules loaded, not the clock, so the test is deterministic on a slow CI machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CODE = """
import json, sys
from typer.testing import CliRunner
from genoforge.cli.app import app
r = CliRunner().invoke(app, json.loads(sys.argv[1]))
print(json.dumps([r.exit_code, r.stderr, 'torch' in sys.modules, 'transformers' in sys.modules]))
"""


def _run(args: list[str]) -> tuple[int, str, bool, bool]:
    proc = subprocess.run(
        [sys.executable, "-c", CODE, json.dumps(args)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    exit_code, stderr, torch, transformers = json.loads(proc.stdout.strip().splitlines()[-1])
    return exit_code, stderr, torch, transformers


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "/nonexistent", "x.fa", "-o", "out.gff3"], "/nonexistent/config.json: not found"),
        (["tune", "/nonexistent", "v.packed", "run", "model"], "/nonexistent: file not found"),
        (["tune", "a", "b", "c", "d", "--strategy", "zero3"], "strategy must be one of"),
        (["model", "info", "/nonexistent"], "/nonexistent/config.json: not found"),
        (["predict", "/nonexistent", "x.fa"], "Missing option"),  # a usage error: exit 2
        (["tune", "--help"], ""),
        (["predict", "--help"], ""),  # its defaults come from PredictConfig, read without torch
    ],
)
def test_missing_input_fails_before_heavy_imports(args: list[str], message: str) -> None:
    exit_code, stderr, torch, transformers = _run(args)
    assert exit_code == (0 if "--help" in args else 2 if message == "Missing option" else 1), stderr
    assert message in stderr
    assert (torch, transformers) == (False, False), f"`genoforge {' '.join(args)}` imported torch"


def test_predict_checks_the_genome_too(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    exit_code, stderr, torch, _ = _run(["predict", str(model), str(tmp_path / "nope.fa"), "-o", "o.gff3"])
    assert exit_code == 1 and "nope.fa: file not found" in stderr and not torch
