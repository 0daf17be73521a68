"""`genoforge tune`: the training loop (one process, or one per device under torchrun).

Before any weight loads, the model's training memory is estimated from its config.json and
compared with what the device has (``genoforge.training.memory_check``; ``skip_memory_check``).

Per optimizer step, on each rank: ``grad_accum`` micro-batches (``genoforge.training.data``;
``--grad_accum``, or fewer where an epoch is too short for it: ``Trainer._choose_grad_accum``), each
seeded by its global micro-batch index before the forward (dropout is then the same whatever the
number of ranks, and a resumed run replays it exactly), bf16 autocast on CUDA over fp32 master
weights, then clipping, the scheduled lr and one AdamW update.

The loss is normalised by the label tokens of the whole optimizer step over all ranks (known from
the plan, no device sync): ``sum of label-smoothed token losses / step label tokens``, plus the
MoE load-balancing and router z-losses times their coefficients (``ModelConfig.moe_*_coef``),
averaged over the step's micro-batches. So one process with ``grad_accum = W * A`` and W
processes with ``grad_accum = A`` optimise the same function.

The per-base head adds ``base_loss_weight`` x its class-weighted CE (a mean per micro-batch,
averaged over the step's micro-batches; :mod:`genoforge.training.base_metrics`), and the token
terms are scaled by ``generative_loss_weight``.

Evaluation (every ``eval_steps`` steps, or per epoch) reports plain and label-smoothed CE of the
validation shard, the per-base CE (``val_base_loss``) and base-level F1 per class and group
(``base_cds_f1`` ...); ``val_objective`` = generative weight x plain CE + base weight x the
base *structure error* (1 - the mean of the CDS, intron and intergenic group F1,
:func:`~genoforge.training.base_metrics.base_structure_error`)
picks ``best/`` and drives early stopping. With ``--generate_samples N`` the first N validation windows are also decoded (each
rank its share under DDP) and their exon/gene F1 (``gen_*``, :mod:`genoforge.training.generate`)
added to the eval record. Checkpoints, the signal handling and the run directory layout are
described in ``genoforge.training.checkpoint`` and the CLI help.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genoforge.console import info, warn
from genoforge.errors import CheckpointError, ConfigError, DeviceMemoryError, ShardFormatError
from genoforge.training import checkpoint as ckpt
from genoforge.training import parallelize as par
from genoforge.training.config import TuneConfig
from genoforge.training.data import (
    EpochPlan,
    MicroBatchDataset,
    RowShape,
    check_tokenizer_match,
    decoder_lengths,
    eval_micro_batch_ids,
    make_loader,
    plan_epoch,
    plan_row_shape,
    rank_micro_batch_ids,
)
from genoforge.genes.classes import N_CLASSES
from genoforge.training.base_metrics import base_class_weights, base_confusion, base_f1_scores, base_structure_error
from genoforge.training.early_stopping import EarlyStopping
from genoforge.training.losses import micro_batch_seed, token_loss_sums

METRICS_FILE = "metrics.jsonl"
MEMORY_FILE = "memory.csv"
CONFIG_FILE = "tune_config.json"
BEST_DIR = "best"
FINAL_DIR = "final"
# Test hook: SIGKILL this process right after the given optimizer step (and its checkpoint).
FAULT_ENV = "GENOFORGE_FAULT_KILL_AFTER_STEP"


@dataclass
class TuneResult:
    """How a run ended and where its artifacts are."""

    output_dir: Path
    global_step: int
    total_steps: int
    stopped: str  # completed | max_steps | early_stopping | interrupted
    best_val_loss: float | None
    best_step: int | None
    final_dir: Path | None
    best_dir: Path | None

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"


# ------------------------------------------------------------------------------------- helpers


def _install_stop_handlers(stop: threading.Event) -> dict:
    """SIGINT/SIGTERM set ``stop`` (the loop saves a checkpoint and returns); a second one raises
    KeyboardInterrupt at once. Only the main thread may install handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}

    def handler(signum, frame):  # type: ignore[no-untyped-def]
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _generation_summary(result: dict[str, Any]) -> str:
    """The generative-validation part of an eval log line ('' when it did not run)."""
    if "gen_windows" not in result:
        return ""
    scores = ", ".join(
        f"{key[4:-3]} {'-' if value is None else f'{value:.3f}'}"
        for key, value in result.items() if key.startswith("gen_") and key.endswith("_f1")
    )
    return f"; decoded {result['gen_windows']} windows ({result['gen_truncated']} truncated): F1 {scores}"


# ---------------------------------------------------------------------------------------- trainer


class Trainer:
    """One tune run. Build it, then :meth:`run`. Library users call :func:`tune`."""

    def __init__(self, train_path, val_path, output_dir, model_dir, config: TuneConfig,
                 config_sources: dict[str, str] | None = None):
        self.train_path = Path(train_path)
        self.val_path = Path(val_path)
        self.output_dir = Path(output_dir)
        self.model_dir = Path(model_dir)
        self.config = config
        self.config_sources = config_sources or {}
        self.stop_requested = threading.Event()

    # ------------------------------------------------------------------------------ setup
    def _setup(self) -> None:
        import torch

        from genoforge.baking.packed_reader import PackedShard
        from genoforge.model.io import load_model
        from genoforge.tokenizer.core import GenoTokenizer

        cfg = self.config
        self.env = env = par.init_distributed(cfg.device)
        self.device = env.device
        self.is_cuda = self.device.type == "cuda"
        torch.manual_seed(cfg.seed)
        if not cfg.skip_memory_check:  # before a weight loads: a model too big fails in a second
            self._check_memory()

        self.tokenizer = GenoTokenizer.load(self.model_dir)
        self.train_shard = PackedShard(self.train_path)
        self.val_shard = PackedShard(self.val_path)
        check_tokenizer_match(self.train_path, self.val_path, (self.train_shard, self.val_shard),
                              self.tokenizer, self.model_dir)
        if len(self.train_shard) == 0:
            raise ShardFormatError("holds no samples; bake more data", self.train_path)
        self.training_window = ckpt.training_window_of(self.train_path, self.train_shard)  # for predict
        self._warn_inert_flags()
        self.gen_windows = None
        if cfg.generate_samples:
            if env.distributed and cfg.strategy == "fsdp":
                # Ranks decode different windows for different numbers of steps, but every forward of
                # FSDP-sharded layers all-gathers over all ranks: they would wait on each other.
                if env.is_main:
                    warn("--generate_samples is not supported with --strategy fsdp; generative validation is off")
            else:  # every rank loads them: under DDP each decodes its share (see _generate)
                from genoforge.training.generate import load_validation_windows

                self.gen_windows = load_validation_windows(self.val_shard, self.tokenizer, cfg.generate_samples)
                if self.gen_windows.skipped and env.is_main:
                    warn(f"{self.val_path}: {self.gen_windows.skipped} of the first {cfg.generate_samples} "
                         "validation targets do not parse and are left out of generative validation; "
                         "re-bake the validation shard")

        model = load_model(self.model_dir, device="cpu")
        self.model_config = model.config
        if model.config.vocab_size < self.tokenizer.vocab_size:
            raise CheckpointError(
                f"{self.model_dir}: the model has {model.config.vocab_size} embedding rows but its "
                f"tokenizer {self.tokenizer.vocab_size} ids; run genoforge tokens resize"
            )
        from genoforge.training.telemetry import flop_model

        self.flops = flop_model(model, model.config)
        self.n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
        if cfg.generative_loss_weight == 0 and env.distributed:
            raise ConfigError("--generative_loss_weight 0 skips the decoder, which DDP/FSDP cannot do "
                              "(its parameters get no gradient); run it in one process")
        if model.base_head is None and cfg.base_loss_weight > 0 and env.is_main:
            warn("the model has no per-base head (base_head_channels 0): --base_loss_weight has no effect")
        model.base_class_weights = base_class_weights(self.train_shard)
        model.base_boundary_weight = cfg.base_boundary_weight
        model.to(self.device)
        model.train()
        self.raw_model = model

        # The plan: row shape from the training index, every epoch planned up front (index only).
        self.enc_len = self.train_shard.input_lengths().astype(np.int64)
        self.dec_len = decoder_lengths(self.train_shard.target_lengths())
        enc_multiple, dec_multiple = self._row_multiples()
        self.shape: RowShape = plan_row_shape(
            self.enc_len, self.dec_len, token_budget=cfg.token_budget, max_batch_size=cfg.max_batch_size,
            row_multiple=enc_multiple, decoder_multiple=dec_multiple, encoder_row_len=cfg.encoder_row_len,
            decoder_row_len=cfg.decoder_row_len,
        )
        self.packed_plans: dict[int, EpochPlan] = {}  # packed, not yet cut to whole steps
        self.plans: dict[int, EpochPlan] = {}
        self.grad_accum, micro_per_epoch = self._choose_grad_accum()
        self.step_micro = env.world_size * self.grad_accum
        for epoch in range(len(micro_per_epoch)):
            self._plan(epoch)  # cut to whole steps now: fixed_docs_per_row below reads every plan
        self.steps_per_epoch = [n // self.step_micro for n in micro_per_epoch]
        total = sum(self.steps_per_epoch)
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        if total == 0:
            raise ConfigError(
                f"{self.train_path}: {len(self.train_shard)} samples make {len(self._packed_plan(0))} micro-batches "
                f"of {self.shape.rows_per_batch} rows, fewer than one optimizer step needs (one micro-batch on each "
                f"of {env.world_size} process(es)); lower --max_batch_size or --token_budget, or bake more data"
            )
        self.total_steps = total
        from genoforge.training.optim import CosineSchedule, build_optimizer

        self.schedule = CosineSchedule.from_ratio(total, cfg.warmup_ratio, cfg.min_lr_ratio)
        val_enc = self.val_shard.input_lengths().astype(np.int64)
        val_dec = decoder_lengths(self.val_shard.target_lengths())
        self.val_plan = plan_epoch(val_enc, val_dec, self.shape, seed=cfg.seed, epoch=0,
                                   pack_window=cfg.pack_window, step_micro_batches=1, shuffle=False)
        self.fixed_docs_per_row = None
        if cfg.compile or self.is_cuda:  # constant latent slots: one graph, no FlexAttention recompiles
            rows = [r for p in (*self.plans.values(), self.val_plan) for mb in p.micro_batches for r in mb]
            self.fixed_docs_per_row = max((len(r) for r in rows), default=1)

        # Wrapping order: compile -> activation checkpointing -> DDP/FSDP -> optimizer. Each block
        # is compiled first and the checkpoint wraps the compiled block: compiling a checkpointed
        # block traces flex_attention inside the checkpoint's higher-order op, which torch 2.11
        # cannot do (pytorch/pytorch#167116; the seed preset failed so on an H100).
        if cfg.compile:
            par.compile_blocks(model)
        if self.is_cuda and not (env.distributed and cfg.strategy == "fsdp"):
            # bf16 expert copies re-cast once per optimizer step instead of every micro-batch:
            # seed fwd+bwd 190.9 -> 184.5 ms on an H100 (benchmarks/RESULTS.md, "Model"); the
            # gradients still reach the fp32 weights, bitwise as before (tests/test_moe_bf16_copies).
            # Not under FSDP2: it swaps the experts' weights between sharded and unsharded tensors
            # around every layer's forward, which the copies' version-counter refresh does not track.
            model.enable_bf16_expert_copies()
        if cfg.gradient_checkpointing:
            par.apply_activation_checkpointing(model)
        self.model = par.wrap_model(model, env, cfg.strategy)
        self.fsdp = env.distributed and cfg.strategy == "fsdp"
        self.optimizer = build_optimizer(
            par.unwrap(self.model), lr=cfg.lr, weight_decay=cfg.weight_decay,
            betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_eps, fused=self.is_cuda,
        )
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.autocast = (
            (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if self.is_cuda and cfg.bf16 else nullcontext
        )

        # Loop state (replaced by a checkpoint's on resume).
        self.global_step = 0
        self.epoch = 0
        self.step_in_epoch = 0
        self.tokens_seen = 0
        self.early = EarlyStopping(patience=cfg.early_stopping, min_delta=cfg.early_stopping_min_delta)
        self.last_eval_step = -1
        self.last_saved_step = -1
        self._resume()

    def _row_multiples(self) -> tuple[int, int]:
        """Row-length multiples: ``row_multiple`` and the attention blocks of each stream.

        On CUDA FlexAttention's block is max(128, block size rounded up to 128); a row that is not
        a whole number of blocks would let the mask predicate index past the row.

        Raises:
            ConfigError: an explicit row length that is not such a multiple.
        """
        cfg, mc = self.config, self.model_config

        def block(size: int) -> int:
            return max(128, -(-size // 128) * 128) if self.is_cuda else size

        enc = math.lcm(cfg.row_multiple, block(mc.encoder_block_size))
        dec = math.lcm(cfg.row_multiple, block(mc.decoder_block_size))
        for name, value, multiple in (("encoder_row_len", cfg.encoder_row_len, enc),
                                      ("decoder_row_len", cfg.decoder_row_len, dec)):
            if value % multiple:
                raise ConfigError(f"{name} {value} is not a multiple of {multiple} (row_multiple and the "
                                  f"model's attention block); use a multiple of {multiple}")
        return enc, dec

    def _warn_inert_flags(self) -> None:
        cfg, given = self.config, self.config_sources
        if not self.is_cuda:
            if cfg.empty_cache_steps and self.env.is_main:
                warn("--empty_cache_steps has no effect on CPU (there is no CUDA cache to empty)")
            if cfg.log_memory and self.env.is_main:
                warn("--log_memory shows host memory only on CPU (no GPU memory to report)")
        if not self.env.distributed and given.get("strategy") in ("flag", "config file") and self.env.is_main:
            warn(f"--strategy {cfg.strategy} has no effect in a single process (launch with torchrun)")

    def _packed_plan(self, epoch: int) -> EpochPlan:
        """Epoch ``epoch`` packed into micro-batches, before the cut to whole optimizer steps."""
        if epoch not in self.packed_plans:
            self.packed_plans[epoch] = plan_epoch(
                self.enc_len, self.dec_len, self.shape, seed=self.config.seed, epoch=epoch,
                pack_window=self.config.pack_window, step_micro_batches=1,
            )
        return self.packed_plans[epoch]

    def _plan(self, epoch: int) -> EpochPlan:
        """Epoch ``epoch``'s micro-batches cut to whole optimizer steps of ``self.step_micro``
        (what plan_epoch with step_micro_batches=step_micro gives; see EpochPlan.whole_steps)."""
        if epoch not in self.plans:
            packed = self._packed_plan(epoch)
            del self.packed_plans[epoch]  # not needed again: the cut plan shares its arrays
            self.plans[epoch] = packed.whole_steps(self.step_micro)
        return self.plans[epoch]

    def _choose_grad_accum(self) -> tuple[int, list[int]]:
        """The micro-batches per optimizer step on each process, and the micro-batches of each
        epoch the run reaches (planned up front, index only: the schedule's length must be known
        before the first step).

        ``--grad_accum`` A, unless an epoch has fewer than W x A micro-batches (W processes):
        then the largest accumulation every such epoch allows, ``min(micro-batches) // W``,
        with one warning. A small bake then still trains (the recipe's ``--grad_accum 64`` on one
        species) instead of planning zero steps. The choice is a pure function of the data plan's
        inputs plus ``--epochs`` and ``--max_steps`` (all in :meth:`data_signature`), so a resumed
        run recomputes the same one; the checkpoint records it and resume verifies it.

        Epochs are planned until they cover the run: all of them, or as many as ``--max_steps``
        needs; an epoch with fewer micro-batches than processes ends the run before it.
        """
        cfg, world = self.config, self.env.world_size
        counts: list[int] = []
        accum = cfg.grad_accum
        for epoch in range(cfg.epochs):
            n_micro = len(self._packed_plan(epoch))
            if n_micro < world:
                break
            counts.append(n_micro)
            accum = min(cfg.grad_accum, min(counts) // world)
            if cfg.max_steps and sum(n // (world * accum) for n in counts) >= cfg.max_steps:
                break
        if accum < cfg.grad_accum and self.env.is_main:
            warn(f"--grad_accum {cfg.grad_accum} needs {world * cfg.grad_accum} micro-batches per optimizer step "
                 f"({world} process(es) x {cfg.grad_accum}), but an epoch of {self.train_path.name} has only "
                 f"{min(counts)} micro-batches of {self.shape.rows_per_batch} rows: accumulating {accum} per "
                 f"process instead ({world * accum} per step); bake more data, or pass a --grad_accum of at "
                 f"most {accum} to choose yourself")
        return accum, counts

    def _check_memory(self) -> None:
        """Refuse a model whose training state cannot fit the device (genoforge.training.memory_check),
        on every process at once: a process that went on alone would wait in DDP's first broadcast."""
        from genoforge.training.memory_check import check_training_memory

        error = None
        try:
            check_training_memory(self.model_dir, self.device, world_size=self.env.world_size,
                                  strategy=self.config.strategy)
        except DeviceMemoryError as exc:
            error = exc
        if par.any_rank(error is not None, self.env):
            raise error or DeviceMemoryError(
                "another process of this run has too little memory for the model (its error says how much); "
                "pass --skip_memory_check to try anyway")

    def data_signature(self) -> dict[str, Any]:
        """What a data position is valid for; a resume with another signature is refused."""
        cfg = self.config
        return {
            "seed": cfg.seed, "world_size": self.env.world_size, "grad_accum": cfg.grad_accum,
            "effective_grad_accum": self.grad_accum,
            "encoder_row_len": self.shape.encoder_row_len, "decoder_row_len": self.shape.decoder_row_len,
            "rows_per_batch": self.shape.rows_per_batch, "pack_window": cfg.pack_window,
            "train_samples": len(self.train_shard), "epochs": cfg.epochs, "max_steps": cfg.max_steps,
        }

    def _resume(self) -> None:
        cfg = self.config
        path = ckpt.resolve_resume(cfg.resume, self.output_dir)
        if path is None:
            if cfg.resume == "auto" and self.env.is_main:
                info(f"--resume auto: no checkpoint in {self.output_dir}; starting afresh")
            if not cfg.resume and ckpt.list_checkpoints(self.output_dir):
                raise ConfigError(
                    f"{self.output_dir}: holds checkpoints of an earlier run; pass --resume auto to "
                    "continue it, or choose an empty OUTPUT_DIR"
                )
            return
        state = ckpt.load_checkpoint(path)
        trainer = state.trainer_state
        # Checkpoints from before partial accumulation used --grad_accum as given.
        saved_sig = {"effective_grad_accum": trainer.get("data", {}).get("grad_accum"), **trainer.get("data", {})}
        mismatched = {k: (saved_sig.get(k), v) for k, v in self.data_signature().items() if saved_sig.get(k) != v}
        if mismatched:
            detail = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in mismatched.items())
            raise CheckpointError(
                f"{path}: cannot resume exactly: the data plan changed ({detail}); resume with the "
                "original settings and process count, or start a new run in another OUTPUT_DIR"
            )
        par.load_full_state_dicts(self.model, self.optimizer, state.model_state, state.optimizer_state)
        self._restore_rng(state.rng_state)
        self.global_step = int(trainer["global_step"])
        self.epoch = int(trainer["epoch"])
        self.step_in_epoch = int(trainer["step_in_epoch"])
        self.tokens_seen = int(trainer.get("tokens_seen", 0))
        self.early.load_state_dict(trainer.get("early_stopping", {}))
        self.last_eval_step = int(trainer.get("last_eval_step", -1))
        self.last_saved_step = self.global_step
        if self.env.is_main:
            info(f"resumed from {path} (step {self.global_step}, epoch {self.epoch + 1})")

    def _rng_state(self) -> dict[str, Any]:
        import torch

        state = {"torch_cpu": torch.get_rng_state()}
        if self.is_cuda:
            state[f"torch_cuda_{self.device.index}"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore_rng(self, state: dict[str, Any]) -> None:
        import torch

        if "torch_cpu" in state:
            torch.set_rng_state(state["torch_cpu"])
        key = f"torch_cuda_{self.device.index}" if self.is_cuda else None
        if key in state:
            torch.cuda.set_rng_state(state[key], self.device)

    # ------------------------------------------------------------------------------ artifacts
    def trainer_state(self) -> dict[str, Any]:
        from genoforge.config import config_to_dict

        return {
            "global_step": self.global_step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "total_steps": self.total_steps,
            "tokens_seen": self.tokens_seen,
            "last_eval_step": self.last_eval_step,
            "schedule": self.schedule.state_dict(),
            "early_stopping": self.early.state_dict(),
            "data": self.data_signature(),
            "rng": {"scheme": "torch.manual_seed(micro_batch_seed(seed, epoch, micro-batch index)) "
                              "before every micro-batch; generator states of rank 0 in rng.safetensors"},
            "config": config_to_dict(self.config),
        }

    def save_checkpoint(self) -> Path | None:
        """Collective: every rank calls it; rank 0 writes. Skips a step already saved."""
        if self.global_step == self.last_saved_step:
            return None
        model_state = optim_state = None
        if self.fsdp or self.env.is_main:
            model_state, optim_state = par.full_state_dicts(self.model, self.optimizer, self.env)
        path = None
        if self.env.is_main:
            started = time.monotonic()
            path = ckpt.save_checkpoint(
                self.output_dir, self.global_step, model_state=model_state, optimizer_state=optim_state,
                rng_state=self._rng_state(), trainer_state=self.trainer_state(),
                keep_last=self.config.save_total_limit, training_window=self.training_window,
            )
            self.log.message(f"saved {path.name} ({time.monotonic() - started:.1f} s)")
        par.barrier(self.env)
        self.last_saved_step = self.global_step
        return path

    def export_model(self, name: str) -> Path | None:
        """Write a loadable model directory ``OUTPUT_DIR/name`` (collective under FSDP)."""
        from genoforge.io import atomic_dir

        target = self.output_dir / name
        if self.fsdp:
            from genoforge.model.io import TIED_HEAD_KEY, write_model_config, write_weights

            state, _ = par.full_state_dicts(self.model, self.optimizer, self.env)
            if self.env.is_main:
                if self.model_config.tie_weights:
                    state.pop(TIED_HEAD_KEY, None)
                with atomic_dir(target, overwrite=True) as tmp:
                    write_weights(tmp / "model.safetensors", {k: v.contiguous() for k, v in state.items()})
                    write_model_config(tmp, self.model_config)
                    self.tokenizer.save(tmp)
                    ckpt.write_training_window(tmp, self.training_window)
                    ckpt.copy_gene_structure(self.train_path, tmp)
        elif self.env.is_main:
            from genoforge.model.io import save_model

            with atomic_dir(target, overwrite=True) as tmp:
                save_model(par.unwrap(self.model), tmp, self.tokenizer)
                ckpt.write_training_window(tmp, self.training_window)
                ckpt.copy_gene_structure(self.train_path, tmp)
        par.barrier(self.env)
        return target if self.env.is_main else None

    # ------------------------------------------------------------------------------ steps
    def _forward_losses(self, batch, label_smoothing: float):
        import torch

        from genoforge.training.collate import model_batch

        inputs = model_batch(batch, self.device)
        labels = inputs.pop("labels")
        inputs["docs_per_row"] = self.fixed_docs_per_row or batch["docs_per_row"]
        with self.autocast():
            out = self.model(inputs, with_decoder=self.config.generative_loss_weight > 0)
        if out.logits is None:
            zero = labels.new_zeros((), dtype=torch.float32)
            return out, zero, zero, zero
        smoothed, nll, count = token_loss_sums(out.logits, labels, label_smoothing)
        return out, smoothed, nll, count

    def _train_step(self, loader_iter, epoch: int, step: int, plan: EpochPlan) -> bool:
        """One optimizer step; False when a stop request abandoned it (single process only)."""
        import torch

        cfg, env = self.config, self.env
        per_step = self.step_micro
        mc = self.model_config
        aux_scale = 1.0 / per_step
        for j in range(self.grad_accum):
            if not env.distributed and self.stop_requested.is_set():
                self.optimizer.zero_grad(set_to_none=True)
                return False
            batch = next(loader_iter)
            index = step * per_step + j * env.world_size + env.rank
            torch.manual_seed(micro_batch_seed(cfg.seed, epoch, index))
            step_labels = max(int(batch["step_label_tokens"]), 1)
            with par.no_grad_sync(self.model, env, cfg.strategy, last_micro_batch=j == self.grad_accum - 1):
                out, smoothed, nll, _ = self._forward_losses(batch, cfg.label_smoothing)
                gen_weight = cfg.generative_loss_weight
                aux = gen_weight * mc.moe_aux_loss_coef * out.aux_loss * aux_scale
                z = gen_weight * mc.moe_z_loss_coef * out.z_loss * aux_scale
                ce_term = gen_weight * smoothed / step_labels
                # The per-base CE is a mean per micro-batch: the step takes the mean of those.
                base = out.base_loss * aux_scale if out.base_loss is not None else None
                objective = ce_term + aux + z
                if base is not None and cfg.base_loss_weight > 0:
                    objective = objective + cfg.base_loss_weight * base
                # DDP/FSDP average gradients over ranks: scale by W so the step's gradient is the
                # gradient of (sum over all ranks of the terms).
                (env.world_size * objective).backward()
            tpe = out.tokens_per_expert if out.tokens_per_expert.numel() else None
            self.acc.add_micro_batch(loss=objective, ce=nll / step_labels, aux=aux, z=z, base=base,
                                     tokens_per_expert=tpe)
        if cfg.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm, foreach=True)
        else:
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, float("inf"), foreach=True)
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        lr = self.schedule.apply(self.optimizer, cfg.lr, self.global_step)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        first = step * per_step
        enc_tokens = int(plan.enc_tokens[first : first + per_step].sum())
        dec_tokens = int(plan.dec_tokens[first : first + per_step].sum())
        self.tokens_seen += enc_tokens + dec_tokens
        self._interval_tokens += enc_tokens + dec_tokens
        self._interval_flops += sum(
            self.flops.micro_batch_flops(plan.doc_enc_lengths[i], plan.doc_dec_lengths[i])
            for i in range(first, first + per_step)
        )
        self.acc.end_step(step=self.global_step, epoch=epoch, lr=lr, grad_norm=grad_norm,
                          enc_tokens=enc_tokens, dec_tokens=dec_tokens,
                          all_reduce=(lambda t: par.all_reduce_sum(t, env)) if env.distributed else None)
        return True

    def evaluate(self) -> dict[str, float]:
        """Plain and label-smoothed CE over the validation plan (all ranks; one host sync)."""
        import torch

        cfg, env = self.config, self.env
        ids = eval_micro_batch_ids(len(self.val_plan), world_size=env.world_size, rank=env.rank)
        if cfg.eval_max_batches:
            ids = ids[: math.ceil(cfg.eval_max_batches / env.world_size)]
        micro = [self.val_plan.micro_batches[i] if i is not None else None for i in ids]
        dataset = MicroBatchDataset(self.val_path, micro, self.shape, pad_id=self.tokenizer.pad_id,
                                    bp_lengths=self.tokenizer.bp_lengths())
        sums = torch.zeros(5, dtype=torch.float64, device=self.device)  # nll, smoothed, count, base CE, micro-batches
        confusion = torch.zeros(N_CLASSES, N_CLASSES, dtype=torch.float64, device=self.device)
        module = self.model if self.fsdp else par.unwrap(self.model)
        module.eval()
        try:
            with torch.no_grad():
                loader = make_loader(dataset, num_workers=min(cfg.num_workers, len(dataset)),
                                     pin_memory=self.is_cuda, seed=cfg.seed)
                for batch in loader:
                    from genoforge.training.collate import model_batch

                    inputs = model_batch(batch, self.device)
                    labels = inputs.pop("labels")
                    inputs["docs_per_row"] = self.fixed_docs_per_row or batch["docs_per_row"]
                    with self.autocast():
                        out = module(inputs, with_decoder=cfg.generative_loss_weight > 0)
                    weight = float(batch["weight"])
                    if out.logits is not None:
                        smoothed, nll, count = token_loss_sums(out.logits, labels, cfg.label_smoothing)
                        sums[:3] += torch.stack([nll, smoothed, count]).double() * weight
                    if out.base_loss is not None:
                        sums[3] += out.base_loss.double() * weight
                        sums[4] += weight
                        confusion += weight * base_confusion(out.base_logits, inputs["base_labels"])
        finally:
            module.train()
        par.all_reduce_sum(sums, env)
        par.all_reduce_sum(confusion, env)
        nll, smoothed, count, base_sum, base_batches = sums.tolist()
        count = max(count, 1.0)
        result = {"val_loss": nll / count, "val_loss_smoothed": smoothed / count, "val_tokens": int(count)}
        objective = cfg.generative_loss_weight * result["val_loss"]
        if base_batches:
            result["val_base_loss"] = base_sum / base_batches
            result.update(base_f1_scores(confusion.cpu().numpy()))
            objective += cfg.base_loss_weight * base_structure_error(result)
        result["val_objective"] = objective
        if self.gen_windows is not None:
            result.update(self._generate())
        return result

    def _generate(self) -> dict[str, Any]:
        """Generative validation (``genoforge.training.generate``); RNG state kept.

        Each rank decodes every world_size-th window with its own (unwrapped, so collective-free)
        copy of the model; the predictions are gathered and every rank scores all of them.
        """
        from genoforge.training.generate import decode_validation_windows, score_decoded

        env = self.env
        rng = self._rng_state()  # greedy decoding draws none; kept anyway so resume stays exact
        try:
            mine = decode_validation_windows(
                par.unwrap(self.model), self.tokenizer, self.gen_windows,
                range(env.rank, len(self.gen_windows.input_ids), env.world_size),
                max_new_tokens=self.config.generate_max_new_tokens,
                batch_size=self.shape.rows_per_batch, autocast=self.autocast)
        finally:
            self._restore_rng(rng)
        return score_decoded(self.gen_windows, par.all_gather_objects(mine, env))

    def _after_eval(self, result: dict[str, float], epoch: int) -> bool:
        """Record an evaluation; export best/; True when early stopping says stop."""
        self.last_eval_step = self.global_step
        val = result["val_objective"]
        improved = self.early.update(val, self.global_step)
        if improved:
            self.export_model(BEST_DIR)
        if self.env.is_main:
            self.log.write({"kind": "eval", "step": self.global_step, "epoch": epoch, **result,
                            "best": improved, "evals_without_improvement": self.early.evals_without_improvement})
            base = ""
            if "val_base_loss" in result:
                cds_f1 = result.get("base_cds_f1")
                base = (f", base CE {result['val_base_loss']:.4f}, base CDS F1 "
                        f"{'-' if cds_f1 is None else format(cds_f1, '.3f')}")
            self.log.message(
                f"eval step {self.global_step}: objective {val:.4f} (val_loss {result['val_loss']:.4f}, "
                f"smoothed {result['val_loss_smoothed']:.4f}, {result['val_tokens']:,} tokens{base})"
                f"{' *best*' if improved else ''}{_generation_summary(result)}"
            )
        return self.early.should_stop

    def _flush_metrics(self) -> None:
        from genoforge.training.telemetry import peak_flops

        records, load = self.acc.read()
        if self.env.is_main and records:
            self.log.interval(records, flops=self._interval_flops, tokens=self._interval_tokens,
                              world_size=self.env.world_size, peak=peak_flops(self.device), expert_load=load)
        self._interval_flops = 0.0
        self._interval_tokens = 0

    # ------------------------------------------------------------------------------ run
    def run(self) -> TuneResult:
        import torch

        from genoforge.config import config_to_dict, write_resolved_config
        from genoforge.training.memwatch import MemWatch
        from genoforge.training.telemetry import StepAccumulator, TrainingLog, truncate_metrics

        self._setup()
        cfg, env = self.config, self.env
        metrics_path = self.output_dir / METRICS_FILE
        if env.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            if self.global_step:
                truncate_metrics(metrics_path, self.global_step)
            elif metrics_path.exists():
                metrics_path.unlink()
            write_resolved_config(self.output_dir / CONFIG_FILE, {
                "tune": config_to_dict(cfg), "sources": self.config_sources,
                "train": str(self.train_path), "validation": str(self.val_path),
                "model_dir": str(self.model_dir), "world_size": env.world_size,
                "effective_grad_accum": self.grad_accum,
                "row_shape": self.shape.__dict__,
            })
        from genoforge.console import is_interactive

        self.log = TrainingLog(metrics_path if env.is_main else None, live=cfg.log_memory and is_interactive(),
                               log_memory=cfg.log_memory, device=self.device, total_steps=self.total_steps,
                               generative=self.gen_windows is not None, start_step=self.global_step)
        self.acc = StepAccumulator(self.device)
        self._interval_flops = 0.0
        self._interval_tokens = 0
        previous_handlers = _install_stop_handlers(self.stop_requested)
        stopped = "completed"
        try:
            with ExitStack() as stack:
                memwatch = None
                if cfg.memwatch and env.is_main:
                    memwatch = stack.enter_context(
                        MemWatch(self.output_dir / MEMORY_FILE, interval=cfg.memwatch_interval, device=self.device)
                    )
                    memwatch.step = self.global_step
                self._log_start()
                try:
                    stopped = self._train(memwatch)
                except torch.OutOfMemoryError as exc:
                    self._flush_metrics()
                    raise self._out_of_memory(exc) from exc
                self._flush_metrics()
                if stopped != "interrupted":
                    if self.last_eval_step != self.global_step:
                        self._after_eval(self.evaluate(), max(self.epoch - (self.step_in_epoch == 0), 0))
                    self.save_checkpoint()
                    self.export_model(FINAL_DIR)
                if env.is_main:
                    self.log.write({"kind": "end", "step": self.global_step, "stopped": stopped,
                                    "best_val_loss": self.early.best_val_loss, "best_step": self.early.best_step})
        finally:
            _restore_handlers(previous_handlers)
            self.log.close()
            par.shutdown_distributed(env)
        best = self.output_dir / BEST_DIR
        final = self.output_dir / FINAL_DIR
        return TuneResult(
            output_dir=self.output_dir, global_step=self.global_step, total_steps=self.total_steps,
            stopped=stopped, best_val_loss=self.early.best_val_loss, best_step=self.early.best_step,
            final_dir=final if final.exists() else None, best_dir=best if best.exists() else None,
        )

    def _log_start(self) -> None:
        if not self.env.is_main:
            return
        plan = self._plan(self.epoch)
        eff = plan.efficiency()
        s = self.shape
        self.log.write({
            "kind": "start", "world_size": self.env.world_size, "device": str(self.device),
            "row_shape": s.__dict__, "total_steps": self.total_steps, "steps_per_epoch": self.steps_per_epoch,
            "micro_batches_per_step": self.step_micro, "grad_accum": self.grad_accum,
            "grad_accum_requested": self.config.grad_accum, "train_samples": len(self.train_shard),
            "val_samples": len(self.val_shard), "val_micro_batches": len(self.val_plan),
            "packing_efficiency": eff, "dropped_samples": plan.dropped_samples,
            "val_dropped_samples": self.val_plan.dropped_samples, "parameters": self.n_params,
            "resumed_from_step": self.global_step,
        })
        self.log.message(
            f"tune: {len(self.train_shard):,} training samples -> rows of {s.encoder_row_len} encoder + "
            f"{s.decoder_row_len} decoder positions, {s.rows_per_batch} rows per micro-batch "
            f"({s.batch_tokens:,} of --token_budget {self.config.token_budget:,}), "
            f"{self.step_micro} micro-batch(es) per step on {self.env.world_size} process(es); "
            f"packing efficiency {100 * eff['overall']:.1f}% (encoder {100 * eff['encoder']:.1f}%, "
            f"decoder {100 * eff['decoder']:.1f}%); {self.total_steps} optimizer steps"
        )
        if self.val_plan.dropped_samples:
            warn(f"{self.val_plan.dropped_samples} validation samples are longer than a row and are not evaluated")

    def _train(self, memwatch) -> str:
        import torch

        cfg, env = self.config, self.env
        fault_step = int(os.environ.get(FAULT_ENV, "0") or 0)
        while self.epoch < cfg.epochs and self.global_step < self.total_steps:
            plan = self._plan(self.epoch)
            n_steps = self.steps_per_epoch[self.epoch]
            ids = rank_micro_batch_ids(len(plan), world_size=env.world_size, rank=env.rank,
                                       grad_accum=self.grad_accum, start_step=self.step_in_epoch)
            label_tokens = []
            for i in ids:
                step = i // self.step_micro
                label_tokens.append(int(plan.dec_tokens[step * self.step_micro : (step + 1) * self.step_micro].sum()))
            dataset = MicroBatchDataset(self.train_path, [plan.micro_batches[i] for i in ids], self.shape,
                                        pad_id=self.tokenizer.pad_id, bp_lengths=self.tokenizer.bp_lengths(),
                                        label_tokens=label_tokens)
            loader = make_loader(dataset, num_workers=cfg.num_workers, pin_memory=self.is_cuda, seed=cfg.seed)
            loader_iter = iter(loader)
            while self.step_in_epoch < n_steps and self.global_step < self.total_steps:
                done = self._train_step(loader_iter, self.epoch, self.step_in_epoch, plan)
                if not done:
                    return self._interrupt()
                self.step_in_epoch += 1
                self.log.step_done(self.global_step)
                end_of_epoch = self.step_in_epoch == n_steps
                if memwatch is not None:
                    memwatch.step = self.global_step
                if self.global_step % cfg.log_steps == 0:
                    self._flush_metrics()
                if cfg.empty_cache_steps and self.is_cuda and self.global_step % cfg.empty_cache_steps == 0:
                    torch.cuda.empty_cache()
                early_stop = False
                epoch_now = self.epoch
                eval_due = (cfg.eval_steps and self.global_step % cfg.eval_steps == 0) or (
                    not cfg.eval_steps and end_of_epoch
                )
                if end_of_epoch:  # the position of a checkpoint taken now is the next epoch's start
                    self.epoch += 1
                    self.step_in_epoch = 0
                if eval_due:
                    self._flush_metrics()
                    early_stop = self._after_eval(self.evaluate(), epoch_now)
                if cfg.save_steps and self.global_step % cfg.save_steps == 0:
                    self._flush_metrics()
                    self.save_checkpoint()
                if fault_step and self.global_step == fault_step:
                    os.kill(os.getpid(), signal.SIGKILL)
                if par.any_rank(self.stop_requested.is_set(), env):
                    return self._interrupt()
                if early_stop:
                    if env.is_main:
                        self.log.message(
                            f"early stopping: {self.early.evals_without_improvement} evaluations without a "
                            f"lower validation loss (best {self.early.best_val_loss:.4f} at step "
                            f"{self.early.best_step})"
                        )
                    return "early_stopping"
                if end_of_epoch:
                    break
            del loader_iter, loader
        return "max_steps" if cfg.max_steps and self.global_step >= cfg.max_steps else "completed"

    def _out_of_memory(self, exc: BaseException) -> DeviceMemoryError:
        """The one-line error for an out-of-memory failure: where, how much, and what to change."""
        import torch

        shape = self.shape
        where = f"step {self.global_step + 1}"
        usage = ""
        if self.is_cuda:
            peak = torch.cuda.max_memory_allocated(self.device) / 2**30
            total = torch.cuda.get_device_properties(self.device).total_memory / 2**30
            usage = f", peak {peak:.1f} of {total:.1f} GiB"
        saved = ckpt.latest_checkpoint(self.output_dir)
        resume = f"; the last checkpoint ({saved}) resumes with --resume auto" if saved else ""
        checkpointing = "" if self.config.gradient_checkpointing else "add --gradient_checkpointing, "
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        return DeviceMemoryError(
            f"out of device memory at {where} (micro-batch of {shape.rows_per_batch} rows x "
            f"{shape.encoder_row_len} encoder + {shape.decoder_row_len} decoder positions{usage}): "
            f"{checkpointing}lower --token_budget / --max_batch_size, or shard the model over several GPUs "
            f"with torchrun ... --strategy fsdp{resume} [{first}]"
        )

    def _interrupt(self) -> str:
        self._flush_metrics()
        path = self.save_checkpoint()
        if self.env.is_main:
            where = path or ckpt.latest_checkpoint(self.output_dir)
            self.log.message(f"interrupted at step {self.global_step}; resume with --resume auto ({where})")
        return "interrupted"


def tune(train_path, val_path, output_dir, model_dir, config: TuneConfig,
         config_sources: dict[str, str] | None = None) -> TuneResult:
    """Train ``model_dir`` on ``train_path``, validate on ``val_path``, write to ``output_dir``.

    Returns a TuneResult; ``result.interrupted`` is True after SIGINT/SIGTERM (a checkpoint was
    saved first). Raises GenoforgeError subclasses for bad input (see the CLI help).
    """
    return Trainer(train_path, val_path, output_dir, model_dir, config, config_sources).run()
