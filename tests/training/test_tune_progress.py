"""tune's progress display: a rich bar of optimizer steps on a terminal, plain log lines elsewhere.

The terminal is simulated by pointing the library's stderr console (``genoforge.console.stderr``)
at a ``Console(force_terminal=True)`` writing to a StringIO; the non-terminal case is a real
subprocess whose stderr is a pipe (what CI and ``2>log`` give).
"""

from __future__ import annotations

import re
import time
import tomllib
from io import StringIO

import pytest
import torch
from rich.console import Console

from genoforge import console
from genoforge.training import telemetry
from genoforge.training.step_bar import BAR_UPDATE_S, StepBar, format_duration, format_rate
from genoforge.training.telemetry import TrainingLog

from tests.training.tune_runs import TUNE_TOML, read_metrics, run_tune

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture
def terminal(monkeypatch):
    """The library's stderr console as a 120-column terminal; returns a reader of its plain text."""
    buffer = StringIO()
    monkeypatch.setattr(console, "stderr", Console(file=buffer, force_terminal=True, width=120))
    return lambda: ANSI.sub("", buffer.getvalue())


def test_off_a_terminal_tune_prints_plain_lines_and_no_bar(tune_workspace, tmp_path):
    out = tmp_path / "run"
    result = run_tune(tune_workspace, out, "--max_steps", "4", "--save_steps", "0")
    assert result.returncode == 0, result.stderr
    for step in range(1, 5):  # log_steps 1 in the workspace's tune.toml
        assert f"step {step}/4  epoch 1  loss" in result.stderr
    assert "\x1b[" not in result.stderr and "━" not in result.stderr  # no animation, no colour codes
    assert "ETA" in result.stderr  # the lines carry speed and ETA instead


def test_on_a_terminal_tune_draws_the_step_bar(tune_workspace, tmp_path, terminal):
    from genoforge.training.config import TuneConfig
    from genoforge.training.loop import tune

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = TuneConfig(**tomllib.loads(TUNE_TOML)["tune"], token_budget=192, max_batch_size=1, lr=3e-3,
                        warmup_ratio=0.1, max_steps=6, save_steps=0, device="cpu")
    try:
        result = tune(tune_workspace.train, tune_workspace.validation, tmp_path / "run", tune_workspace.model_dir,
                      config)
    finally:
        torch.set_num_threads(threads)
    assert result.stopped == "max_steps"
    text = terminal()
    assert re.search(r"tune ━+ 6/6 steps [\d.]+ steps/s ETA 0:00:00", text), text[-2000:]
    assert "step 6/6  epoch 1  loss" in text  # the log lines are still printed, above the bar
    assert [r["step"] for r in read_metrics(tmp_path / "run", "train")] == list(range(1, 7))


def test_the_bar_is_updated_at_most_a_few_times_a_second(terminal):
    bar = StepBar(100_000, console=console.stderr)
    pushed = []
    real_update = bar._progress.update
    bar._progress.update = lambda task, **kw: (pushed.append(kw["completed"]), real_update(task, **kw))
    started = time.monotonic()
    for step in range(1, 100_001):
        bar.update(step)
    elapsed = time.monotonic() - started
    bar.close()
    assert len(pushed) <= 2 + elapsed / BAR_UPDATE_S
    assert pushed[-1] == 100_000  # close shows the last step
    assert "100000/100000 steps" in terminal()


def test_a_resumed_run_starts_the_bar_at_its_step(terminal):
    bar = StepBar(50, start_step=20, console=console.stderr)
    bar.close()
    assert "20/50 steps" in terminal()


def test_the_live_panel_replaces_the_bar(tmp_path, terminal, monkeypatch):
    # rich shows one live display at a time: --log_memory's panel (it has step, speed and ETA rows).
    made = []
    monkeypatch.setattr(telemetry, "StepBar", lambda *a, **kw: made.append(a))
    log = TrainingLog(tmp_path / "metrics.jsonl", live=True, log_memory=True, device=torch.device("cpu"),
                      total_steps=10)
    log.interval([{"kind": "train", "step": 4, "epoch": 0, "loss": 2.5, "ce": 2.25, "lr": 1e-4, "grad_norm": 0.7}],
                 flops=1e9, tokens=1000, world_size=1, peak=None, expert_load=None)
    log.close()
    assert made == []
    assert re.search(r"ETA\s+│\s+\d:\d\d:\d\d", terminal()) and "steps/s" in terminal()
    plain = TrainingLog(tmp_path / "other.jsonl", live=False, log_memory=False, device=torch.device("cpu"),
                        total_steps=10)
    plain.close()
    assert len(made) == 1  # without the panel, a terminal gets the bar


def test_rate_and_duration_formats():
    assert format_rate(12.345) == "12.35 steps/s"
    assert format_rate(0.25) == "0.25 steps/s (4.0 s/step)"
    assert format_rate(None) == "-" and format_rate(0.0) == "-"
    assert format_duration(3725.4) == "1:02:05" and format_duration(None) == "-"
    assert format_duration(float("inf")) == "-"
