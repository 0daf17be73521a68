"""What a tune run writes and reads back (:class:`ArtifactsMixin` of
:class:`~genoforge.training.loop.Trainer`): checkpoints and their resume, the RNG state, and the
loadable model directories ``best/`` and ``final/``.

The run directory: ``step-NNNNNNNN/`` checkpoints (format: :mod:`genoforge.training.checkpoint`),
:data:`BEST_DIR` and :data:`FINAL_DIR` model directories, :data:`METRICS_FILE`
(:mod:`genoforge.training.telemetry`), :data:`CONFIG_FILE` (the resolved config) and, with
``--memwatch``, :data:`MEMORY_FILE`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from genoforge.console import info
from genoforge.errors import CheckpointError, ConfigError
from genoforge.training import checkpoint as ckpt
from genoforge.training import parallelize as par

METRICS_FILE = "metrics.jsonl"
MEMORY_FILE = "memory.csv"
CONFIG_FILE = "tune_config.json"
BEST_DIR = "best"
FINAL_DIR = "final"


class ArtifactsMixin:
    """Trainer methods that save, resume and export (collective where they say so)."""

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
