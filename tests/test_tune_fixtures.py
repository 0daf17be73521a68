"""Shared fixtures and helpers of the tune tests (imported by tests/test_tune_*.py; no tests here).

``tune_workspace`` (session-scoped) writes, once, into a temporary folder:

* ``model/``: the bundled DNABERT-2 tokenizer plus the built-in token inventory, and a randomly
  initialised model of the debug preset sized to it (what `genoforge model init` produces);
* ``training.packed`` (240 samples) and ``validation.packed`` (24 samples): random DNA windows
  of 60-300 bp, each with a target of 0-2 transcript lines (``<bos>`` ... ``<eos>``), written with
  PackedWriter and the model's tokenizer hash;
* ``tune.toml``: the row settings that keep the CPU runs tiny (rows of 16-token granularity).

Runs of the CLI go through :func:`run_tune` (a subprocess, one torch thread: deterministic and
kind to a shared 2-core machine).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

TUNE_TOML = """\
[tune]
row_multiple = 16
num_workers = 0
log_steps = 1
"""
# Flags of the tiny runs: one 160 + 32 position row per micro-batch.
TINY_FLAGS = ["--token_budget", "192", "--max_batch_size", "1", "--lr", "3e-3", "--warmup_ratio", "0.1"]


@dataclasses.dataclass(frozen=True)
class TuneWorkspace:
    root: Path
    model_dir: Path
    train: Path
    validation: Path
    config: Path


def write_samples(path: Path, tokenizer, n: int, seed: int, tokenizer_hash: str | None = None) -> Path:
    """A shard of ``n`` random windows with small transcript targets (see the module docstring)."""
    from genoforge.baking.packed_writer import PackedWriter
    from genoforge.genes.packed_format import token_dtype_for

    rng = np.random.default_rng(seed)
    with PackedWriter(path, tokenizer_hash=tokenizer_hash or tokenizer.content_hash(),
                      token_dtype=token_dtype_for(tokenizer.vocab_size)) as writer:
        for i in range(n):
            length = int(rng.integers(60, 300))
            dna = "".join(rng.choice(list("ACGT"), length))
            target = ["<bos>"]
            for _ in range(int(rng.integers(0, 3))):
                start = int(rng.integers(0, length // 2))
                target += ["transcript", "+", "0", ":", str(start), "\n"]
            target.append("<eos>")
            writer.add(tokenizer.encode_dna(dna), tokenizer.encode_target(target), species="toy",
                       seqid=f"chr{i % 3}", window_start=0, window_end=length)
    return path


def build_workspace(root: Path) -> TuneWorkspace:
    import torch

    from genoforge.model.config import preset
    from genoforge.model.io import save_model
    from genoforge.model.model import GenoforgeModel
    from genoforge.tokenizer.core import GenoTokenizer, dnabert2_tokenizer_path
    from genoforge.tokenizer.edit import ensure_builtin_tokens

    model_dir = root / "model"
    model_dir.mkdir(parents=True)
    shutil.copyfile(dnabert2_tokenizer_path(), model_dir / "tokenizer.json")
    ensure_builtin_tokens(model_dir)
    tokenizer = GenoTokenizer.load(model_dir)
    config = dataclasses.replace(preset("debug"), vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_id,
                                 decoder_dropout=0.1)
    digits = torch.tensor([tokenizer.token_to_id(str(i)) for i in range(1000)])
    torch.manual_seed(0)
    model = GenoforgeModel(config, digits)
    model.init_weights()
    save_model(model, model_dir, tokenizer)
    train = write_samples(root / "baked" / "training.packed", tokenizer, 240, seed=1)
    validation = write_samples(root / "baked" / "validation.packed", tokenizer, 24, seed=2)
    config_path = root / "tune.toml"
    config_path.write_text(TUNE_TOML)
    return TuneWorkspace(root=root, model_dir=model_dir, train=train, validation=validation, config=config_path)


@pytest.fixture(scope="session")
def tune_workspace(tmp_path_factory) -> TuneWorkspace:
    return build_workspace(tmp_path_factory.mktemp("tune"))


def tune_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")})
    env.update(extra)
    return env


def tune_args(ws: TuneWorkspace, output_dir: Path, *flags: str) -> list[str]:
    return ["tune", str(ws.train), str(ws.validation), str(output_dir), str(ws.model_dir),
            "--config", str(ws.config), *TINY_FLAGS, *flags]


def run_tune(ws: TuneWorkspace, output_dir: Path, *flags: str, env: dict[str, str] | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m genoforge tune` on the workspace with the tiny flags plus ``flags``."""
    return subprocess.run([sys.executable, "-m", "genoforge", *tune_args(ws, output_dir, *flags)],
                          capture_output=True, text=True, env=env or tune_env(), timeout=timeout, cwd=REPO_ROOT)


def read_metrics(output_dir: Path, kind: str | None = None) -> list[dict]:
    records = [json.loads(line) for line in (output_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if kind is None or r["kind"] == kind]


def train_losses(output_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(output_dir, "train")}
