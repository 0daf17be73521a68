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

Evaluation and the choice of ``best/``: :mod:`genoforge.training.validation`. Checkpoints, the
signal handling and the run directory layout are described in ``genoforge.training.checkpoint``
and the CLI help.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from genoforge.console import warn
from genoforge.errors import DeviceMemoryError
from genoforge.training import checkpoint as ckpt
from genoforge.training import parallelize as par
from genoforge.training.config import TuneConfig
from genoforge.training.data import EpochPlan, MicroBatchDataset, make_loader, rank_micro_batch_ids
from genoforge.training.losses import decoder_loss_sums, micro_batch_seed
from genoforge.training.run_artifacts import (
    BEST_DIR,
    CONFIG_FILE,
    FINAL_DIR,
    MEMORY_FILE,
    METRICS_FILE,
    ArtifactsMixin,
)
from genoforge.training.run_setup import SetupMixin
from genoforge.training.signals import StopRequest, install_stop_handlers, restore_handlers
from genoforge.training.validation import ValidationMixin

# Test hook: SIGKILL this process right after the given optimizer step (and its checkpoint).
FAULT_ENV = "GENOFORGE_FAULT_KILL_AFTER_STEP"


@dataclass
class TuneResult:
    """How a run ended and where its artifacts are."""

    output_dir: Path
    global_step: int
    total_steps: int
    stopped: str  # completed | max_steps | max_minutes | early_stopping | interrupted
    best_val_loss: float | None
    best_step: int | None
    final_dir: Path | None
    best_dir: Path | None
    # The signal that interrupted the run (signal.SIGINT or SIGTERM); None when no signal reached
    # this process (also a DDP rank that stopped because another rank was signalled).
    stop_signal: int | None = None

    @property
    def interrupted(self) -> bool:
        return self.stopped == "interrupted"


# ---------------------------------------------------------------------------------------- trainer


class Trainer(SetupMixin, ArtifactsMixin, ValidationMixin):
    """One tune run. Build it, then :meth:`run`. Library users call :func:`tune`.

    The steps and the loop are here; the setup (:mod:`~genoforge.training.run_setup`), checkpoints
    and exports (:mod:`~genoforge.training.run_artifacts`) and validation
    (:mod:`~genoforge.training.validation`) come from the mixins.
    """

    def __init__(self, train_path, val_path, output_dir, model_dir, config: TuneConfig,
                 config_sources: dict[str, str] | None = None):
        self.train_path = Path(train_path)
        self.val_path = Path(val_path)
        self.output_dir = Path(output_dir)
        self.model_dir = Path(model_dir)
        self.config = config
        self.config_sources = config_sources or {}
        self.stop_requested = StopRequest()

    # ------------------------------------------------------------------------------ steps
    def _forward_losses(self, batch, label_smoothing: float):
        import torch

        from genoforge.training.collate import model_batch

        inputs = model_batch(batch, self.device)
        labels = inputs.pop("labels")
        inputs["pointer_labels"] = labels  # the coordinate pointer's targets (the model computes no token CE)
        inputs["docs_per_row"] = self.fixed_docs_per_row or batch["docs_per_row"]
        with self.autocast():
            out = self.model(inputs, with_decoder=self.config.generative_loss_weight > 0)
        if out.logits is None:
            zero = labels.new_zeros((), dtype=torch.float32)
            return out, zero, zero, zero
        smoothed, nll, count = decoder_loss_sums(out.logits, out.pointer, labels, label_smoothing)
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

    def _flush_metrics(self) -> None:
        from genoforge.training.flops import peak_flops

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
        previous_handlers = install_stop_handlers(self.stop_requested)
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
                self._started = time.monotonic()
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
            restore_handlers(previous_handlers)
            self.log.close()
            par.shutdown_distributed(env)
        best = self.output_dir / BEST_DIR
        final = self.output_dir / FINAL_DIR
        return TuneResult(
            output_dir=self.output_dir, global_step=self.global_step, total_steps=self.total_steps,
            stopped=stopped, best_val_loss=self.early.best_val_loss, best_step=self.early.best_step,
            final_dir=final if final.exists() else None, best_dir=best if best.exists() else None,
            stop_signal=self.stop_requested.signum if stopped == "interrupted" else None,
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
                if cfg.max_minutes and par.any_rank(self._out_of_time(), env):
                    if env.is_main:
                        self.log.message(f"time limit: {cfg.max_minutes:g} minutes reached at step {self.global_step}")
                    return "max_minutes"
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

    def _out_of_time(self) -> bool:
        return time.monotonic() - self._started >= 60.0 * self.config.max_minutes

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
    saved first; ``result.stop_signal`` says which). Raises GenoforgeError subclasses for bad input (see the CLI help).
    """
    return Trainer(train_path, val_path, output_dir, model_dir, config, config_sources).run()
