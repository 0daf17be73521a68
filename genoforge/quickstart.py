"""The quickstart: the whole recipe, tiny preset, on the embedded example genome, on a CPU.

Each step calls the same library function as its command, so the quickstart is an executable copy
of the recipe in the README. Steps are added here as the commands they exercise land.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from genoforge.console import info

EXAMPLE_SPECIES = "yeast_chrI"
# The debug preset, with the decoder's window cut to the quickstart's short rows and a per-base
# head wide enough to find yeast genes in minutes (the debug preset's 13-channel head, trained
# 200 steps, leaves the structure decoder nothing to follow: no gene on the held-out region).
QUICKSTART_MODEL_FLAGS: dict[str, Any] = {
    "decoder_window_size": 256,
    "base_head_channels": 32,
    "base_head_layers": 6,
    "base_head_fused_layers": 2,
    "base_head_kernel": 9,
}


@dataclass
class QuickstartResult:
    """Where each artifact went and how long each step took."""

    workdir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)
    steps: list[tuple[str, Path, float]] = field(default_factory=list)  # (step, artifact, seconds)
    tune: Any = None  # training.loop.TuneResult
    evaluation: Any = None  # evaluation.compare.EvalResult
    losses: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # kind -> (step, loss)


def example_files() -> tuple[Path, Path]:
    """The embedded example genome FASTA and GFF3 (S. cerevisiae chrI, see PROVENANCE.md)."""
    root = resources.files("genoforge.data") / "example"
    return Path(str(root / "yeast_chrI.fa.gz")), Path(str(root / "yeast_chrI.gff3.gz"))


def stage_raw_dir(workdir: Path) -> Path:
    """Lay the example out in bake's input layout: raw/<species>/genome.fa.gz + annotation.gff3.gz."""
    fasta, gff = example_files()
    from genoforge.io import atomic_write

    species_dir = workdir / "raw" / EXAMPLE_SPECIES
    # Copied through atomic_write: an interrupted copy must not leave a truncated genome that a
    # rerun in the same workdir would then bake.
    for source, name in ((fasta, "genome.fa.gz"), (gff, "annotation.gff3.gz")):
        with open(source, "rb") as src, atomic_write(species_dir / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return workdir / "raw"


def run_quickstart(
    workdir: Path, vocab_size: int = 4096, seed: int = 42, window_size: int = 5000, tune_steps: int = 200,
    model_flags: dict[str, Any] | None = None, tune_settings: dict[str, Any] | None = None,
) -> QuickstartResult:
    """Run every recipe step that exists, in the recipe's order, under ``workdir``.

    ``model_flags`` and ``tune_settings`` override the quickstart's model-init flags and
    TuneConfig fields (for experiments; the defaults are what the command runs).
    """
    from genoforge.baking.bake import bake
    from genoforge.baking.config import resolve_bake_config
    from genoforge.evaluation.compare import evaluate
    from genoforge.inference.predict import predict_genome
    from genoforge.inference.predict_config import PredictConfig
    from genoforge.io import atomic_dir, atomic_write
    from genoforge.model.init import init_model
    from genoforge.model.resize import resize_model
    from genoforge.tokenizer.core import GenoTokenizer
    from genoforge.tokenizer.edit import append_tokens, read_tokens_file, write_tokens_file
    from genoforge.training.config import TuneConfig
    from genoforge.training.loop import tune
    from genoforge.genes.inventory import builtin_tokens
    from genoforge.tokenizer.train import train_dna_bpe

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    result = QuickstartResult(workdir=workdir)

    def step(name: str, artifact: str, body: Callable[[], Path]) -> None:
        info(f"[{len(result.steps) + 1}] {name}")
        started = time.monotonic()
        path = body()
        seconds = time.monotonic() - started
        result.steps.append((name, path, seconds))
        result.artifacts[artifact] = path
        info(f"    -> {path} ({seconds:.1f} s)")

    raw_dir = stage_raw_dir(workdir)
    result.artifacts["raw data"] = raw_dir
    fasta = raw_dir / EXAMPLE_SPECIES / "genome.fa.gz"

    def tokens_train() -> Path:
        out = workdir / "tokenizer"
        trained = GenoTokenizer(train_dna_bpe([fasta], vocab_size=vocab_size, seed=seed))
        with atomic_dir(out, overwrite=True) as tmp:
            trained.save(tmp)
        return out

    step("tokens train (offline DNA BPE tokenizer)", "tokenizer", tokens_train)

    def tokens_init() -> Path:
        path = workdir / "data" / "new_tokens.txt"
        write_tokens_file(path, builtin_tokens())
        return path

    step("tokens init", "token inventory", tokens_init)

    def model_init() -> Path:
        out = workdir / "model" / "init"
        init_model(
            out, dnabert_path=workdir / "tokenizer", preset_name="debug", overwrite=True, seed=seed,
            flags={**QUICKSTART_MODEL_FLAGS, **(model_flags or {})},
        )
        return out

    step("model init (debug preset, random encoder over the trained tokenizer)", "model", model_init)

    def tokens_append() -> Path:
        target = workdir / "model" / "init" / "tokenizer.json"
        report = append_tokens(target, read_tokens_file(workdir / "data" / "new_tokens.txt").tokens)
        info(f"    {len(report.added)} tokens added (model init already added the inventory)")
        return target

    step("tokens append", "tokenizer", tokens_append)

    def tokens_resize() -> Path:
        resize_model(workdir / "model" / "init")
        return workdir / "model" / "init"

    step("tokens resize", "model (resized)", tokens_resize)

    def bake_step() -> Path:
        out = workdir / "baked"
        bake(
            resolve_bake_config(
                None,
                {
                    "raw_dir": str(raw_dir), "output_dir": str(out),
                    "tokenizer": str(workdir / "model" / "init"), "window_size": window_size,
                    "val_fraction": 0.1, "seed": seed, "overwrite": True, "intergenic_rate": 0.5,
                },
            )
        )
        return out

    step("bake", "baked data", bake_step)

    def tune_step() -> Path:
        out = workdir / "runs" / "debug"
        if out.exists():  # an earlier quickstart's run: this one starts afresh, as every step does
            shutil.rmtree(out)
        config = TuneConfig(
            # Short rows on purpose: the CPU attention path materialises each row's mask, so
            # cost grows with the square of the row length (one 5 kb window is ~1k tokens).
            epochs=1000, max_steps=tune_steps, lr=3e-3, warmup_ratio=0.05, token_budget=6 * (1024 + 384),
            max_batch_size=6, encoder_row_len=1024, decoder_row_len=384, grad_accum=1, label_smoothing=0.0, eval_steps=max(tune_steps // 4, 1),
            save_steps=max(tune_steps // 2, 1), log_steps=max(1, min(20, tune_steps // 10)), num_workers=0,
            seed=seed, device="cpu",
        )
        config = dataclasses.replace(config, **(tune_settings or {}))
        tune_result = tune(
            workdir / "baked" / "training.packed", workdir / "baked" / "validation.packed", out,
            workdir / "model" / "init", config,
        )
        result.tune = tune_result
        if tune_result.interrupted:  # tune saved a checkpoint on Ctrl-C; stop the recipe here
            raise KeyboardInterrupt
        result.losses = read_losses(out / "metrics.jsonl")
        return out

    step("tune (debug preset, CPU)", "training run", tune_step)

    def predict_step() -> Path:
        region_fasta, region_gff = write_validation_region(workdir, raw_dir, seed=seed, val_fraction=0.1)
        result.artifacts["validation region"] = region_fasta
        result.artifacts["validation reference"] = region_gff
        out = workdir / "predicted.gff3"
        best = workdir / "runs" / "debug" / "best"
        model_dir = best if best.exists() else workdir / "runs" / "debug" / "final"
        predict_genome(model_dir, region_fasta, out, PredictConfig(window_size=window_size, device="cpu"))
        return out

    step("predict (validation region of chrI)", "prediction", predict_step)

    def eval_step() -> Path:
        result.evaluation = evaluate(
            result.artifacts["validation reference"], workdir / "predicted.gff3",
            result.artifacts["validation region"],
        )
        out = workdir / "eval.json"
        with atomic_write(out) as handle:
            json.dump(result.evaluation.to_dict(), handle, indent=2)
        return out

    step("eval (prediction vs SGD reference)", "evaluation", eval_step)
    return result


def read_losses(metrics_path: Path) -> dict[str, list[tuple[int, float]]]:
    """Training and validation loss by optimizer step, from a run's metrics.jsonl."""
    losses: dict[str, list[tuple[int, float]]] = {"train": [], "validation": []}
    with open(metrics_path, encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("kind") == "train":
                losses["train"].append((record["step"], record["loss"]))
            elif record.get("kind") == "eval":
                losses["validation"].append((record["step"], record["val_loss"]))
    return losses


def write_validation_region(workdir: Path, raw_dir: Path, seed: int, val_fraction: float) -> tuple[Path, Path]:
    """The held-out validation region of the example as its own FASTA + reference GFF3.

    The region is the one ``bake`` held out (same species, seqid, fraction and seed), so the
    evaluation is on sequence the model never trained on. Its coordinates start at 1 in both files
    (:func:`genoforge.evaluation.regions.write_region`).
    """
    from genoforge.evaluation.regions import validation_regions, write_region

    region = validation_regions(raw_dir, EXAMPLE_SPECIES, val_fraction, seed)[0]  # chrI at 10%: one
    return write_region(region.fasta, region.annotation, region.seqid, region.start, region.end, workdir)
