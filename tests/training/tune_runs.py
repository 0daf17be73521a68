"""The tune tests' workspace and runs (imported by the tune tests; no tests here).

:func:`build_workspace` (behind the session-scoped ``tune_workspace`` fixture of conftest.py)
writes, once, into a temporary folder:

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
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.helpers import REPO_ROOT

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
    from genoforge.model.io import save_model
    from genoforge.tokenizer.core import GenoTokenizer

    from tests.tiny import tiny_model, write_tokenizer_dir

    model_dir = root / "model"
    model_dir.mkdir(parents=True)
    write_tokenizer_dir(model_dir)
    tokenizer = GenoTokenizer.load(model_dir)
    model = tiny_model(tokenizer, decoder_dropout=0.1)
    save_model(model, model_dir, tokenizer)
    train = write_samples(root / "baked" / "training.packed", tokenizer, 240, seed=1)
    validation = write_samples(root / "baked" / "validation.packed", tokenizer, 24, seed=2)
    config_path = root / "tune.toml"
    config_path.write_text(TUNE_TOML)
    return TuneWorkspace(root=root, model_dir=model_dir, train=train, validation=validation, config=config_path)


def write_parseable_samples(path: Path, tokenizer, n: int) -> Path:
    """A shard of ``n`` random windows whose targets parse (``write_samples``' toy targets do not):
    one single-exon protein-coding transcript each."""
    from genoforge.baking.packed_writer import PackedWriter
    from genoforge.genes.packed_format import token_dtype_for
    from genoforge.genes.target import WindowAnnotation, WindowTranscript, encode_target
    from genoforge.genes import inventory as inv

    rng = np.random.default_rng(3)
    with PackedWriter(path, tokenizer_hash=tokenizer.content_hash(),
                      token_dtype=token_dtype_for(tokenizer.vocab_size)) as writer:
        for _ in range(n):
            length = int(rng.integers(100, 300))
            start = int(rng.integers(0, length // 2))
            end = int(rng.integers(start + 10, length))
            wa = WindowAnnotation(records=(WindowTranscript(
                strand="+", biotype=inv.PROTEIN_CODING, gene=0, partial=".", exons=((start, end),), cds=(start, end)),))
            writer.add(tokenizer.encode_dna("".join(rng.choice(list("ACGT"), length))),
                       tokenizer.encode_target(encode_target(wa)), species="toy", seqid="chr0",
                       window_start=0, window_end=length)
    return path


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
