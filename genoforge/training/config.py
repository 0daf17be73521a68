"""TuneConfig: every setting of `genoforge tune`, with what each one counts.

Defaults live here and only here. Precedence: these defaults < ``--config FILE.toml`` (keys at the
top level or under ``[tune]``) < flags. The resolved config is written to ``OUTPUT_DIR/tune_config.json``.

Units, precisely (the same text is the flags' help):

* A *row* is one packed sequence pair: ``encoder_row_len`` encoder positions and
  ``decoder_row_len`` decoder positions, holding several whole samples (documents); no sample is
  ever split across rows. A sample of ``n`` target tokens (``<bos>`` ... ``<eos>``) occupies
  ``n - 1`` decoder positions (inputs ``<bos>``..t(n-1), labels t1..``<eos>``).
* A *micro-batch* is ``rows_per_batch`` rows, one forward/backward on one process.
* ``token_budget`` counts encoder + decoder positions of one micro-batch on one process,
  padding included (every position costs compute): ``rows_per_batch * (encoder_row_len +
  decoder_row_len) <= token_budget``.
* ``max_batch_size`` is the most rows in one micro-batch. Unless the row lengths are given, a row
  gets ``token_budget // max_batch_size`` positions, split between encoder and decoder in the
  ratio of the training shard's token totals (each side at least the longest sample, rounded up
  to ``row_multiple``); then ``rows_per_batch = min(max_batch_size, token_budget // row)``.
* An *optimizer step* is ``grad_accum`` micro-batches on each of ``world_size`` processes.
  ``--save_steps``, ``--eval_steps``, ``--max_steps``, ``--empty_cache_steps``, ``--log_steps``
  and the warm-up all count optimizer steps.
* ``early_stopping`` counts *evaluations* (every ``eval_steps`` optimizer steps, or at the end of
  each epoch when ``eval_steps`` is 0) without a new lowest validation loss (plain cross-entropy).
  0 turns it off.
* ``generate_samples`` windows (the first ones of the validation shard, the same every time) are
  decoded greedily at each evaluation (each rank its share under DDP; off under FSDP), each up
  to ``generate_max_new_tokens`` target tokens, and scored like ``genoforge eval``
  (``gen_*_f1`` in metrics.jsonl; see ``genoforge.training.generate``). 0 turns it off.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from genoforge.errors import ConfigError

STRATEGIES = ("ddp", "fsdp")
# What picks best/ and drives early stopping: the weighted objective, the per-base head's
# structure error alone (for --decoder hmm and --guide_from hmm), or the decoder's token CE alone.
SELECT_BY = ("objective", "base", "generative")


@dataclass(kw_only=True)
class TuneConfig:
    """All settings of one `genoforge tune` run (see the module docstring for units)."""

    # Length of training.
    epochs: int = 1
    max_steps: int = 0  # stop after this many optimizer steps (0: the epochs decide)
    # Stop after this much wall time of this process (0: no limit), like max_steps: a last
    # evaluation, a checkpoint and final/ are written; the schedule still spans the full run.
    max_minutes: float = 0.0

    # Optimisation (AdamW, cosine schedule).
    lr: float = 1e-4  # peak learning rate, reached at the end of the warm-up
    min_lr_ratio: float = 0.0  # the cosine ends at lr * min_lr_ratio
    warmup_ratio: float = 0.03  # fraction of all optimizer steps spent warming up linearly
    weight_decay: float = 0.01  # decoupled; never applied to norms, biases, embeddings, latents
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0  # global L2 norm clip (0: no clipping)
    label_smoothing: float = 0.0  # on the training loss only; validation reports plain CE too
    # The objective: generative_loss_weight x token CE (+ MoE terms) + base_loss_weight x the
    # per-base head's class-weighted CE. 0 turns a part off (a generative weight of 0 skips the
    # decoder's forward: a per-base-only run, single process).
    base_loss_weight: float = 1.0
    generative_loss_weight: float = 1.0
    # Bases within BOUNDARY_RADIUS of a change of per-base class count 1 + this in the per-base
    # CE (genoforge.model.model.GenoModel.base_loss): gene boundaries are few, and exact ones are
    # what the structure decoder needs.
    base_boundary_weight: float = 4.0  # measured: fly exon F1 52.5 -> 57.8 (benchmarks/RESULTS.md)
    # Weight of the head's splice-site / start / stop BCE (genoforge.model.base_signals) within
    # the per-base loss, beside the class CE's 1. Measured 1 -> 4: fly exon F1 65.0 -> 69.1,
    # transcript F1 21.7 -> 27.3 (benchmarks/RESULTS.md).
    base_signal_weight: float = 4.0
    # best/ and early stopping follow this validation score (SELECT_BY): with both losses on, the
    # token CE can rise while the head still improves, and "objective" then keeps an early step.
    select_by: str = "objective"

    # Batching (see the module docstring).
    token_budget: int = 16384
    max_batch_size: int = 8
    grad_accum: int = 1
    encoder_row_len: int = 0  # 0: derived from the token budget and the data
    decoder_row_len: int = 0  # 0: derived from the token budget and the data
    row_multiple: int = 128  # row lengths are multiples of this (FlexAttention's block)
    pack_window: int = 4096  # samples sorted and first-fit packed together (shuffled first)
    num_workers: int = 2  # DataLoader worker processes (0: load in the training process)

    # Evaluation, early stopping, checkpoints.
    eval_steps: int = 0  # evaluate every N optimizer steps (0: at the end of every epoch)
    eval_max_batches: int = 0  # cap on validation micro-batches per evaluation (0: all)
    generate_samples: int = 0  # validation windows decoded and scored per evaluation (0: off)
    generate_max_new_tokens: int = 512  # token cap per decoded window (a capped window is truncated)
    early_stopping: int = 0  # evaluations without improvement before stopping (0: off)
    early_stopping_min_delta: float = 0.0  # an improvement must lower the best val loss by more
    save_steps: int = 500  # checkpoint every N optimizer steps (0: only at the end)
    save_total_limit: int = 3  # keep the newest K step-NNNNNNNN/ checkpoints (0: keep all)
    resume: str = ""  # "" (fresh run), "auto" (newest checkpoint in OUTPUT_DIR, if any) or a path

    # Telemetry.
    log_steps: int = 10  # read metrics from the device and log every N optimizer steps
    log_memory: bool = False  # rich live panel (plain lines when stderr is not a terminal)
    memwatch: bool = False  # background memory sampler -> OUTPUT_DIR/memory.csv
    memwatch_interval: float = 1.0  # seconds between memwatch samples
    empty_cache_steps: int = 0  # torch.cuda.empty_cache() every N optimizer steps (0: never)

    # Execution.
    seed: int = 42
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    strategy: str = "ddp"  # ddp or fsdp (FSDP2), used when launched with torchrun
    gradient_checkpointing: bool = False
    compile: bool = False
    bf16: bool = True  # bf16 autocast on CUDA (fp32 master weights); ignored on CPU
    # Before loading weights, refuse a model whose training state cannot fit the device
    # (genoforge.training.memory_check); True skips that check.
    skip_memory_check: bool = False

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming every inconsistent value."""
        problems: list[str] = []
        positive = ("epochs", "token_budget", "max_batch_size", "grad_accum", "row_multiple",
                    "pack_window", "log_steps", "generate_max_new_tokens")
        for name in positive:
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        non_negative = ("max_steps", "max_minutes", "num_workers", "eval_steps", "eval_max_batches", "generate_samples",
                        "early_stopping",
                        "save_steps", "save_total_limit", "empty_cache_steps", "encoder_row_len",
                        "decoder_row_len", "weight_decay", "max_grad_norm", "early_stopping_min_delta",
                        "base_loss_weight", "generative_loss_weight", "base_boundary_weight",
                        "base_signal_weight")
        for name in non_negative:
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0:
            problems.append(f"lr must be positive, got {self.lr}")
        for name in ("warmup_ratio", "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            problems.append(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.base_loss_weight == 0 and self.generative_loss_weight == 0:
            problems.append("base_loss_weight and generative_loss_weight are both 0: nothing to train")
        if self.select_by not in SELECT_BY:
            problems.append(f"select_by must be one of {', '.join(SELECT_BY)}, got {self.select_by!r}")
        elif self.select_by == "base" and self.base_loss_weight == 0:
            problems.append("select_by base needs the per-base head's loss (base_loss_weight > 0)")
        elif self.select_by == "generative" and self.generative_loss_weight == 0:
            problems.append("select_by generative needs the decoder's loss (generative_loss_weight > 0)")
        if self.strategy not in STRATEGIES:
            problems.append(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.memwatch_interval <= 0:
            problems.append(f"memwatch_interval must be positive, got {self.memwatch_interval}")
        if problems:
            raise ConfigError("invalid tune configuration: " + "; ".join(problems))


def tune_config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(TuneConfig))


def resolve_tune_config(config_file, flags: dict) -> tuple[TuneConfig, dict[str, str]]:
    """defaults < ``config_file`` (top-level keys or ``[tune]``) < ``flags`` (None = not given).

    Returns the resolved config and, per field, where its value came from.

    Raises:
        ConfigError: unreadable TOML, an unknown key, a mistyped or out-of-range value.
    """
    from genoforge.config import config_section, load_toml_config, resolve_config

    file_values = config_section(load_toml_config(config_file), "tune") if config_file else {}
    return resolve_config(TuneConfig(), file_values, flags, file_path=config_file)
