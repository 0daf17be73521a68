"""How a signal stops `genoforge tune`: the first SIGINT/SIGTERM asks the loop to stop after a
checkpoint and is remembered; the command then exits 128 + that signal (Ctrl-C 130, SIGTERM 143),
as a shell reports a process the signal ended. The end-to-end SIGTERM run (a real checkpoint, exit
143) is tests/training/test_tune_run.py; Ctrl-C through quickstart is tests/cli/test_cli_shell.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.training import loop
from genoforge.training.signals import StopRequest, install_stop_handlers, restore_handlers


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_first_signal_requests_a_stop_and_is_remembered(signum):
    stop = StopRequest()
    previous = install_stop_handlers(stop)
    try:
        assert not stop.is_set() and stop.signum is None
        signal.raise_signal(signum)
        assert stop.is_set() and stop.signum == signum
        with pytest.raises(KeyboardInterrupt):  # a second one does not wait for the checkpoint
            signal.raise_signal(signal.SIGINT)
        assert stop.signum == signum  # the first signal is the one reported
    finally:
        restore_handlers(previous)
    assert signal.getsignal(signal.SIGTERM) is previous[signal.SIGTERM]


@pytest.mark.parametrize(("stop_signal", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (None, 130)])
def test_an_interrupted_tune_exits_128_plus_the_signal(tmp_path, monkeypatch, stop_signal, exit_code):
    """None: a DDP rank that stopped because another rank got the signal keeps Ctrl-C's code."""
    train, validation, model_dir = tmp_path / "train.packed", tmp_path / "val.packed", tmp_path / "model"
    train.touch()
    validation.touch()
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")

    def interrupted_tune(train_path, val_path, output_dir, model_dir, config, config_sources=None):
        return loop.TuneResult(output_dir=Path(output_dir), global_step=3, total_steps=10, stopped="interrupted",
                               best_val_loss=None, best_step=None, final_dir=None, best_dir=None,
                               stop_signal=stop_signal)

    monkeypatch.setattr(loop, "tune", interrupted_tune)
    result = CliRunner().invoke(app, ["tune", str(train), str(validation), str(tmp_path / "run"), str(model_dir)])
    assert result.exit_code == exit_code, result.output
    assert result.stdout == ""  # no result line for a run that did not finish
