"""Out of device memory during tune: one line naming the micro-batch and the knobs, exit 1.

A CUDA out-of-memory error is simulated on the CPU by making the first training step raise
``torch.OutOfMemoryError`` (what the CUDA caching allocator raises); the real case was the
recipe's 63,700-position micro-batch on one 80 GB H100 without --gradient_checkpointing.
"""

from __future__ import annotations


import pytest
import torch

from genoforge.errors import DeviceMemoryError
from genoforge.training import loop
from genoforge.training.config import resolve_tune_config

from tests.training.tune_runs import build_workspace


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return build_workspace(tmp_path_factory.mktemp("oom"))


def fake_oom(self, *args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def run(workspace, out, **flags):
    config, sources = resolve_tune_config(workspace.config, {"token_budget": 192, "max_batch_size": 1, **flags})
    return loop.tune(workspace.train, workspace.validation, out, workspace.model_dir, config, sources)


def test_out_of_memory_is_one_actionable_line(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(loop.Trainer, "_train_step", fake_oom)
    with pytest.raises(DeviceMemoryError) as info:
        run(workspace, tmp_path / "run", max_steps=2)
    message = str(info.value)
    assert "\n" not in message
    assert "out of device memory at step 1" in message
    assert "--gradient_checkpointing" in message and "--token_budget" in message and "fsdp" in message
    assert "Tried to allocate 2.00 GiB" in message  # the allocator's own words are kept
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)


def test_out_of_memory_with_checkpointing_on_does_not_suggest_it(workspace, tmp_path, monkeypatch):
    monkeypatch.setattr(loop.Trainer, "_train_step", fake_oom)
    with pytest.raises(DeviceMemoryError) as info:
        run(workspace, tmp_path / "run", max_steps=2, gradient_checkpointing=True)
    assert "--gradient_checkpointing" not in str(info.value)


def test_out_of_memory_after_a_checkpoint_says_how_to_resume(workspace, tmp_path, monkeypatch):
    real_step = loop.Trainer._train_step

    def oom_on_step_3(self, *args, **kwargs):
        if self.global_step == 2:
            fake_oom(self)
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(loop.Trainer, "_train_step", oom_on_step_3)
    with pytest.raises(DeviceMemoryError) as info:
        run(workspace, tmp_path / "run", max_steps=4, save_steps=2)
    message = str(info.value)
    assert "at step 3" in message and "step-00000002" in message and "--resume auto" in message
