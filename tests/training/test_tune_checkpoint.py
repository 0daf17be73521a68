"""Training checkpoints: round trip, exact continuation, keep-last-K, corruption refused."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from genoforge.errors import CheckpointError
from genoforge.training import checkpoint as ckpt
from genoforge.training.parallelize import DistEnv, full_state_dicts, load_full_state_dicts

from tests.training.tune_runs import REPO_ROOT, run_tune, tune_args, tune_env


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(7, 4)
        self.proj = nn.Linear(4, 4)
        self.head = nn.Linear(4, 7, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(torch.tanh(self.proj(self.embed(ids))))


ENV = DistEnv(rank=0, local_rank=0, world_size=1, device=torch.device("cpu"), backend=None)


def train_steps(model, optimizer, steps: int, seed: int) -> list[float]:
    losses = []
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(0, 7, (3, 5), generator=generator)
        loss = nn.functional.cross_entropy(model(ids).view(-1, 7), ids.view(-1))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def make(seed: int = 0):
    torch.manual_seed(seed)
    model = Tied()
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def save(tmp_path, model, optimizer, step, keep=0):
    model_state, optim_state = full_state_dicts(model, optimizer, ENV)
    return ckpt.save_checkpoint(
        tmp_path, step, model_state=model_state, optimizer_state=optim_state,
        rng_state={"torch_cpu": torch.get_rng_state()}, trainer_state={"global_step": step, "note": "x"},
        keep_last=keep,
    )


def test_round_trip_continues_exactly(tmp_path):
    model, optimizer = make()
    train_steps(model, optimizer, 3, seed=1)
    path = save(tmp_path, model, optimizer, 3)
    assert path.name == "step-00000003"
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["checkpoint.json", "model.safetensors", "optimizer.safetensors", "optimizer.json", "rng.safetensors",
         "trainer_state.json"])
    expected = train_steps(model, optimizer, 4, seed=2)

    fresh, fresh_optimizer = make(seed=99)  # different weights until loaded
    loaded = ckpt.load_checkpoint(path)
    assert loaded.global_step == 3 and loaded.trainer_state["note"] == "x"
    manifest = json.loads((path / "checkpoint.json").read_text())
    assert manifest["aliases"] == {"head.weight": "embed.weight"}  # the tied tensor is stored once
    load_full_state_dicts(fresh, fresh_optimizer, loaded.model_state, loaded.optimizer_state)
    assert fresh.head.weight is fresh.embed.weight  # tying survives the load
    assert train_steps(fresh, fresh_optimizer, 4, seed=2) == expected  # exact continuation


def test_no_pickle_in_a_checkpoint(tmp_path):
    model, optimizer = make()
    train_steps(model, optimizer, 1, seed=1)
    path = save(tmp_path, model, optimizer, 1)
    for file in path.iterdir():
        assert not file.read_bytes().startswith(b"\x80"), file  # pickle protocol marker
        assert not file.name.endswith((".pt", ".bin", ".pkl"))


def test_keep_last_k_and_latest(tmp_path):
    model, optimizer = make()
    for step in (5, 10, 15, 20):
        save(tmp_path, model, optimizer, step, keep=2)
    assert [s for s, _ in ckpt.list_checkpoints(tmp_path)] == [15, 20]
    assert ckpt.latest_checkpoint(tmp_path).name == "step-00000020"
    assert ckpt.resolve_resume("auto", tmp_path).name == "step-00000020"
    assert ckpt.resolve_resume(str(tmp_path), tmp_path / "elsewhere").name == "step-00000020"
    assert ckpt.resolve_resume("", tmp_path) is None
    assert ckpt.resolve_resume("auto", tmp_path / "empty") is None
    with pytest.raises(CheckpointError, match="no checkpoint there"):
        ckpt.resolve_resume(str(tmp_path / "empty"), tmp_path)


@pytest.fixture
def saved(tmp_path):
    model, optimizer = make()
    train_steps(model, optimizer, 1, seed=1)
    return save(tmp_path, model, optimizer, 7)


def test_flipped_byte_is_refused(saved):
    weights = saved / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors: checksum mismatch.*--resume PATH"):
        ckpt.load_checkpoint(saved)


def test_truncated_file_is_refused(saved):
    optimizer = saved / "optimizer.safetensors"
    optimizer.write_bytes(optimizer.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="optimizer.safetensors: .* bytes, but the checkpoint recorded"):
        ckpt.load_checkpoint(saved)


def test_missing_manifest_or_file_is_refused(saved):
    (saved / "rng.safetensors").unlink()
    with pytest.raises(CheckpointError, match="rng.safetensors: missing"):
        ckpt.load_checkpoint(saved)
    (saved / "checkpoint.json").unlink()
    with pytest.raises(CheckpointError, match="checkpoint.json: missing, so the checkpoint is incomplete"):
        ckpt.load_checkpoint(saved)


def test_unknown_format_version_is_refused(saved):
    manifest = json.loads((saved / "checkpoint.json").read_text())
    manifest["format_version"] = 99
    (saved / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="unknown checkpoint format version 99"):
        ckpt.load_checkpoint(saved)


def test_cli_refuses_a_corrupt_checkpoint(tune_workspace, tmp_path):
    """`--resume auto` on a damaged newest checkpoint: exit 1, one clear line, nothing trained."""
    import subprocess
    import sys

    out = tmp_path / "run"
    first = run_tune(tune_workspace, out, "--max_steps", "2", "--save_steps", "1", "--eval_steps", "1")
    assert first.returncode == 0, first.stderr
    weights = out / "step-00000002" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    metrics_before = (out / "metrics.jsonl").read_text()
    result = subprocess.run([sys.executable, "-m", "genoforge", *tune_args(tune_workspace, out, "--max_steps", "2",
                                                                           "--resume", "auto")],
                            capture_output=True, text=True, env=tune_env(), cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 1
    assert "Error:" in result.stderr and "step-00000002/model.safetensors: checksum mismatch" in result.stderr
    assert "Traceback" not in result.stderr
    assert (out / "metrics.jsonl").read_text() == metrics_before

