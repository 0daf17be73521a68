"""`genoforge tune`: train a model directory on baked shards (one process, or under torchrun).

Every option defaults to None ("not given") so that TuneConfig's defaults < --config FILE.toml
(keys at the top level or under [tune]) < flags holds. The help texts state what each flag counts,
and the default each shows is read from TuneConfig, the one source of defaults.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Annotated, Optional

import typer

from genoforge.cli._common import boundary, examples, flag

# Cheap: genoforge.training.config imports no torch (tests/cli/test_cli_startup.py checks `tune --help`).
from genoforge.training.config import SELECT_BY, STRATEGIES, TuneConfig

DEFAULTS = TuneConfig()

RECIPE_LINE = (
    "genoforge tune ../baked/5k4.5k/training.packed ../baked/5k4.5k/validation.packed ../model/feb.3 "
    "../model/init --epochs 4 --lr 1e-4 --token_budget 63700 --max_batch_size 8 --grad_accum 64 "
    "--weight_decay 0.01 --warmup_ratio 0.03 --max_grad_norm 1.0 --label_smoothing 0.1 --early_stopping 2 "
    "--save_steps 500 --log_memory --empty_cache_steps 100 --memwatch"
)

HELP = """Train MODEL_DIR on TRAIN.packed, validate on VAL.packed, write the run to OUTPUT_DIR.

OUTPUT_DIR gets step-NNNNNNNN/ checkpoints (resume exactly with --resume auto), best/ (lowest
validation loss) and final/ (loadable model directories), metrics.jsonl, tune_config.json and,
with --memwatch, memory.csv. Ctrl-C saves a checkpoint and exits with code 130; SIGTERM saves one
and exits with code 143.

Units: a row packs whole samples into a fixed number of encoder + decoder positions; a
micro-batch is up to --max_batch_size rows; an optimizer step is --grad_accum micro-batches on
each process (fewer, with a warning, where an epoch has fewer). All *_steps flags count
optimizer steps. Multi-GPU: torchrun --nproc_per_node N
-m genoforge tune ... (the same arguments; --grad_accum is per process)."""

OptPath = Optional[Path]  # noqa: UP007 - typer inspects Optional[...]
OptInt = Optional[int]  # noqa: UP007
OptFloat = Optional[float]  # noqa: UP007
OptBool = Optional[bool]  # noqa: UP007
OptStr = Optional[str]  # noqa: UP007


def _default(name: str) -> str:
    """``[default: X]`` for a help text, read from TuneConfig (the one source of defaults)."""
    return f"\\[default: {getattr(DEFAULTS, name)}]"


def register(app: typer.Typer) -> None:
    app.command(
        "tune",
        help=HELP,
        short_help="Train a model on baked shards (resumable, torchrun-ready).",
        epilog=examples(
            RECIPE_LINE,
            "genoforge tune baked/training.packed baked/validation.packed runs/a model/init --max_steps 200",
            "genoforge tune baked/training.packed baked/validation.packed runs/a model/init --resume auto",
            "torchrun --nproc_per_node 8 -m genoforge tune baked/training.packed baked/validation.packed "
            "runs/a model/init --grad_accum 8",
        ),
    )(tune)


@boundary
def tune(
    train: Annotated[Path, typer.Argument(metavar="TRAIN.packed", help="Training shard (genoforge bake).")],
    validation: Annotated[Path, typer.Argument(metavar="VAL.packed", help="Validation shard.")],
    output_dir: Annotated[Path, typer.Argument(metavar="OUTPUT_DIR", help="Run directory (created).")],
    model_dir: Annotated[Path, typer.Argument(metavar="MODEL_DIR", help="Model to start from (model init).")],
    epochs: Annotated[OptInt, typer.Option(*flag("epochs"), help=f"Passes over the training shard. {_default('epochs')}")] = None,
    lr: Annotated[OptFloat, typer.Option(*flag("lr"), help=f"Peak learning rate (after warm-up). {_default('lr')}")] = None,
    token_budget: Annotated[OptInt, typer.Option(*flag("token_budget"), help=(
        "Encoder + decoder positions per micro-batch per process, padding included (rows x row "
        f"length). {_default('token_budget')}"))] = None,
    max_batch_size: Annotated[OptInt, typer.Option(*flag("max_batch_size"), help=(
        "Most rows (packed sequences) per micro-batch; a row gets token_budget / max_batch_size "
        f"positions. {_default('max_batch_size')}"))] = None,
    encoder_row_len: Annotated[OptInt, typer.Option(*flag("encoder_row_len"), help=(
        "Encoder positions per row (0: chosen from --token_budget and the data). On a CPU keep "
        f"rows short: its attention cost grows with the square of the row. {_default('encoder_row_len')}"))] = None,
    decoder_row_len: Annotated[OptInt, typer.Option(*flag("decoder_row_len"), help=(
        f"Decoder positions per row (0: chosen with --encoder_row_len). {_default('decoder_row_len')}"))] = None,
    grad_accum: Annotated[OptInt, typer.Option(*flag("grad_accum"), help=(
        f"Micro-batches per optimizer step on each process. {_default('grad_accum')}"))] = None,
    weight_decay: Annotated[OptFloat, typer.Option(*flag("weight_decay"), help=(
        f"AdamW decoupled decay; none on norms, biases, embeddings, latents. {_default('weight_decay')}"))] = None,
    warmup_ratio: Annotated[OptFloat, typer.Option(*flag("warmup_ratio"), help=(
        f"Share of optimizer steps with linear warm-up, then cosine decay. {_default('warmup_ratio')}"))] = None,
    max_grad_norm: Annotated[OptFloat, typer.Option(*flag("max_grad_norm"), help=(
        f"Clip the global gradient L2 norm to this (0: no clipping). {_default('max_grad_norm')}"))] = None,
    label_smoothing: Annotated[OptFloat, typer.Option(*flag("label_smoothing"), help=(
        f"Label smoothing of the training loss (validation also reports plain CE). {_default('label_smoothing')}"))] = None,
    # min=0, not 0.0: the type column reads "<float> [x>=0]"; two characters wider ("[x>=0.0]") and
    # the 80-column option table cuts --generate_max_new_tokens (tests/cli/test_cli_help.py).
    base_loss_weight: Annotated[OptFloat, typer.Option(*flag("base_loss_weight"), min=0, metavar="<float>", help=(
        f"Weight of the per-base head's class-weighted CE in the objective (0: off). {_default('base_loss_weight')}"))] = None,
    base_boundary_weight: Annotated[OptFloat, typer.Option(*flag("base_boundary_weight"), min=0, metavar="<float>", help=(
        "Extra per-base CE weight on bases next to a class change (gene boundaries). "
        f"{_default('base_boundary_weight')}"))] = None,
    base_signal_weight: Annotated[OptFloat, typer.Option(*flag("base_signal_weight"), min=0, metavar="<float>", help=(
        "Weight of the per-base head's splice-site and start/stop outputs' BCE, beside the class CE. "
        f"{_default('base_signal_weight')}"))] = None,
    generative_loss_weight: Annotated[OptFloat, typer.Option(*flag("generative_loss_weight"), min=0, metavar="<float>", help=(
        "Weight of the decoder's token CE (0: train only the encoder and per-base head). "
        f"{_default('generative_loss_weight')}"))] = None,
    early_stopping: Annotated[OptInt, typer.Option(*flag("early_stopping"), help=(
        "Stop after this many evaluations in a row without a better --select_by score (0: off). "
        f"{_default('early_stopping')}"))] = None,
    select_by: Annotated[OptStr, typer.Option(
        *flag("select_by"), metavar="<name>",
        autocompletion=lambda incomplete: [s for s in SELECT_BY if s.startswith(incomplete)], help=(
        "What picks best/ and drives early stopping: objective (the weighted validation objective), base (the per-base "
        "head's structure error alone, for predict --decoder hmm or --guide_from hmm) or generative (the decoder's "
        f"token CE alone). {_default('select_by')}"))] = None,
    save_steps: Annotated[OptInt, typer.Option(*flag("save_steps"), help=(
        f"Checkpoint every N optimizer steps (0: only at the end). {_default('save_steps')}"))] = None,
    save_total_limit: Annotated[OptInt, typer.Option(*flag("save_total_limit"), help=(
        f"Keep the newest K step checkpoints (0: all). {_default('save_total_limit')}"))] = None,
    eval_steps: Annotated[OptInt, typer.Option(*flag("eval_steps"), help=(
        f"Evaluate every N optimizer steps (0: at the end of each epoch). {_default('eval_steps')}"))] = None,
    eval_max_batches: Annotated[OptInt, typer.Option(*flag("eval_max_batches"), help=(
        f"Validation micro-batches per evaluation (0: the whole shard). {_default('eval_max_batches')}"))] = None,
    generate_samples: Annotated[OptInt, typer.Option(*flag("generate_samples"), help=(
        "At each evaluation decode the first N validation windows and log their exon/gene F1 "
        f"(gen_* in metrics.jsonl; 0: off). {_default('generate_samples')}"))] = None,
    generate_max_new_tokens: Annotated[OptInt, typer.Option(*flag("generate_max_new_tokens"), help=(
        f"Target tokens decoded per validation window at most (--generate_samples). {_default('generate_max_new_tokens')}"
    ))] = None,
    log_steps: Annotated[OptInt, typer.Option(*flag("log_steps"), help=(
        f"Read metrics from the device and log every N optimizer steps. {_default('log_steps')}"))] = None,
    log_memory: Annotated[OptBool, typer.Option(*flag("log_memory"), help=(
        "Live panel: loss, lr, tokens/s, MFU, GPU/host memory, expert load (plain lines off a terminal)."
    ))] = None,
    empty_cache_steps: Annotated[OptInt, typer.Option(*flag("empty_cache_steps"), help=(
        f"torch.cuda.empty_cache() every N optimizer steps (0: never; no effect on CPU). {_default('empty_cache_steps')}"))] = None,
    memwatch: Annotated[OptBool, typer.Option(*flag("memwatch"), help=(
        "Sample memory in a background thread to OUTPUT_DIR/memory.csv."))] = None,
    seed: Annotated[OptInt, typer.Option(*flag("seed"), help=f"Seed of the plan, dropout and init. {_default('seed')}")] = None,
    resume: Annotated[OptStr, typer.Option(*flag("resume"), metavar="auto|PATH", help=(
        "Continue exactly: 'auto' (newest checkpoint in OUTPUT_DIR, if any) or a step-NNNNNNNN path."
    ))] = None,
    num_workers: Annotated[OptInt, typer.Option(*flag("num_workers"), help=(
        f"DataLoader worker processes (0: load in the training process). {_default('num_workers')}"))] = None,
    gradient_checkpointing: Annotated[OptBool, typer.Option(*flag("gradient_checkpointing"), help=(
        "Recompute each block's activations in the backward pass (less memory, ~30% more compute)."
    ))] = None,
    compile: Annotated[OptBool, typer.Option(*flag("compile"), help="torch.compile every block.")] = None,
    strategy: Annotated[OptStr, typer.Option(
        *flag("strategy"), metavar="ddp|fsdp",
        autocompletion=lambda incomplete: [s for s in STRATEGIES if s.startswith(incomplete)], help=(
        f"Under torchrun: ddp (replicate) or fsdp (FSDP2 shards). {_default('strategy')}"))] = None,
    device: Annotated[OptStr, typer.Option(*flag("device"), help=(
        f"auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK). {_default('device')}"))] = None,
    skip_memory_check: Annotated[OptBool, typer.Option(*flag("skip_memory_check"), help=(
        "Train even when the model's estimated training memory (16 B per parameter for weights, "
        "gradients and AdamW, plus an activation allowance) exceeds what the device has."))] = None,
    max_steps: Annotated[OptInt, typer.Option(*flag("max_steps"), help=(
        "Stop after this many optimizer steps (0: the epochs decide; the schedule spans the shorter)."
        f" {_default('max_steps')}"))] = None,
    max_minutes: Annotated[OptFloat, typer.Option(*flag("max_minutes"), help=(
        "Stop after this many minutes of training wall time, as --max_steps does: a last evaluation, "
        "a checkpoint and final/ (0: no limit; --resume auto continues). "
        f"{_default('max_minutes')}"))] = None,
    config: Annotated[OptPath, typer.Option(*flag("config"), help="TOML with any of these settings (flags win).")] = None,
) -> None:
    """Train a model on baked shards."""
    from genoforge.cli._common import require_file, require_model_dir
    from genoforge.training.config import resolve_tune_config

    flags = {
        "epochs": epochs, "lr": lr, "token_budget": token_budget, "max_batch_size": max_batch_size,
        "grad_accum": grad_accum, "encoder_row_len": encoder_row_len,
        "decoder_row_len": decoder_row_len, "weight_decay": weight_decay, "warmup_ratio": warmup_ratio,
        "max_grad_norm": max_grad_norm, "label_smoothing": label_smoothing, "early_stopping": early_stopping,
        "save_steps": save_steps, "save_total_limit": save_total_limit, "eval_steps": eval_steps,
        "eval_max_batches": eval_max_batches, "generate_samples": generate_samples,
        "generate_max_new_tokens": generate_max_new_tokens, "log_steps": log_steps, "log_memory": log_memory,
        "empty_cache_steps": empty_cache_steps, "memwatch": memwatch, "seed": seed, "resume": resume,
        "num_workers": num_workers, "gradient_checkpointing": gradient_checkpointing, "compile": compile,
        "strategy": strategy, "device": device, "max_steps": max_steps, "max_minutes": max_minutes, "select_by": select_by,
        "skip_memory_check": skip_memory_check,
        "base_loss_weight": base_loss_weight, "generative_loss_weight": generative_loss_weight,
        "base_boundary_weight": base_boundary_weight,
        "base_signal_weight": base_signal_weight,
    }
    resolved, sources = resolve_tune_config(config, flags)
    for path in (train, validation):  # before the torch import below: a typo fails in a blink
        require_file(path)
    require_model_dir(model_dir)
    from genoforge.training.loop import tune as run_tune

    result = run_tune(train, validation, output_dir, model_dir, resolved, sources)
    if result.interrupted:  # 128 + the signal, as a shell reports it: Ctrl-C 130, SIGTERM 143
        raise typer.Exit(128 + int(result.stop_signal or signal.SIGINT))
    if os.environ.get("RANK", "0") != "0":
        return
    best = f"{result.best_val_loss:.4f} at step {result.best_step}" if result.best_val_loss is not None else "n/a"
    typer.echo(f"{result.output_dir}\tsteps {result.global_step}/{result.total_steps}\tstopped {result.stopped}"
               f"\tbest val_loss {best}")
