"""Golden file: the 10-step training-loss curve of the debug preset on a tiny bake (CPU, fp32).

What is fixed: the data (two species written by ``tests.helpers.write_tiny_species``, baked with 1 kb
windows), the model (``init_model(preset_name="debug", seed=0)`` over the bundled DNABERT-2
tokenizer plus the built-in inventory), the TuneConfig below (seed 0, explicit rows of 256
encoder + 96 decoder positions, 4 rows per micro-batch, no DataLoader workers) and one torch
thread. The 10 ``{"kind": "train"}`` losses of OUTPUT_DIR/metrics.jsonl are compared with
tests/data/golden/debug_loss_curve.json.

Tolerance: relative 1e-3 per step. The run is bit-reproducible on one machine (one thread, every
micro-batch reseeded), but another CPU, BLAS build or torch version may pick other kernels and
sum in another order; fp32 rounding differences of ~1e-7 relative then grow through 10 AdamW
steps at lr 3e-3, still orders below 1e-3. A real change moves the curve by more: only another
init seed (same code) already moves all 10 steps beyond 1e-3 (checked when the file was written).

The curve changes whenever the model code, initialisation, tokenizer inventory, bake rules or
training loop change on purpose. Then regenerate and review the diff of the golden file:

    GENOFORGE_REGENERATE_GOLDEN=1 pytest tests/training/test_golden_loss.py

(the same convention as the bake's golden manifest in tests/baking/test_bake_determinism.py).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "debug_loss_curve.json"
REGENERATE = "GENOFORGE_REGENERATE_GOLDEN"
STEPS = 10
RTOL = 1e-3  # see the module docstring


def _train_losses(metrics_path: Path) -> dict[int, float]:
    records = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    return {r["step"]: r["loss"] for r in records if r["kind"] == "train"}


def test_debug_preset_loss_curve_matches_the_golden_file(tmp_path, tiny_raw_dir, baking_tokenizer_dir,
                                                         one_torch_thread):
    from genoforge.baking.bake import BakeConfig, bake
    from genoforge.model.init import init_model
    from genoforge.training.config import TuneConfig
    from genoforge.training.loop import tune

    model_dir = tmp_path / "model"
    init_model(model_dir, dnabert_path=baking_tokenizer_dir, preset_name="debug", seed=0)
    baked = tmp_path / "baked"
    bake(BakeConfig(raw_dir=str(tiny_raw_dir), output_dir=str(baked), tokenizer=str(model_dir),
                    window_size=1_000, val_fraction=0.1, intergenic_rate=0.5))
    config = TuneConfig(
        epochs=100, max_steps=STEPS, lr=3e-3, warmup_ratio=0.1, seed=0, device="cpu", num_workers=0,
        encoder_row_len=256, decoder_row_len=96, row_multiple=16, max_batch_size=4, token_budget=4 * (256 + 96),
        log_steps=1, eval_steps=0, eval_max_batches=1, save_steps=0,
    )
    output_dir = tmp_path / "run"
    tune(baked / "training.packed", baked / "validation.packed", output_dir, model_dir, config)

    losses = _train_losses(output_dir / "metrics.jsonl")
    assert sorted(losses) == list(range(1, STEPS + 1))
    curve = [losses[step] for step in range(1, STEPS + 1)]
    assert curve[-1] < curve[0], f"the loss did not fall over {STEPS} steps: {curve}"

    if os.environ.get(REGENERATE):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps({"steps": list(range(1, STEPS + 1)), "train_loss": curve}, indent=2) + "\n")
        warnings.warn(f"{REGENERATE} is set: rewrote {GOLDEN}; review its diff before committing", stacklevel=1)
    golden = json.loads(GOLDEN.read_text())
    assert golden["steps"] == list(range(1, STEPS + 1))
    assert curve == pytest.approx(golden["train_loss"], rel=RTOL), (
        f"the debug-preset loss curve changed beyond rel {RTOL}; if intended, regenerate with {REGENERATE}=1 "
        "(see the module docstring)"
    )
