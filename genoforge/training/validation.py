"""Validation of a tune run (:class:`ValidationMixin` of :class:`~genoforge.training.loop.Trainer`).

Evaluation (every ``eval_steps`` steps, or per epoch) reports plain and label-smoothed CE of the
validation shard, the per-base CE (``val_base_loss``) and base-level F1 per class and group
(``base_cds_f1`` ...); ``val_objective`` = generative weight x plain CE + base weight x the
base *structure error* (1 - the mean of the CDS, intron and intergenic group F1,
:func:`~genoforge.training.base_metrics.base_structure_error`)
picks ``best/`` and drives early stopping (``--select_by base``: the structure error alone,
``generative``: the plain CE alone). With ``--generate_samples N`` the first N validation windows are also decoded (each
rank its share under DDP) and their exon/gene F1 (``gen_*``, :mod:`genoforge.training.generate`)
added to the eval record.
"""

from __future__ import annotations

import math
from typing import Any

from genoforge.genes.classes import N_CLASSES
from genoforge.training import parallelize as par
from genoforge.training.base_metrics import base_confusion, base_f1_scores, base_structure_error
from genoforge.training.data import MicroBatchDataset, eval_micro_batch_ids, make_loader
from genoforge.training.losses import decoder_loss_sums
from genoforge.training.run_artifacts import BEST_DIR


def _generation_summary(result: dict[str, Any]) -> str:
    """The generative-validation part of an eval log line ('' when it did not run)."""
    if "gen_windows" not in result:
        return ""
    scores = ", ".join(
        f"{key[4:-3]} {'-' if value is None else f'{value:.3f}'}"
        for key, value in result.items() if key.startswith("gen_") and key.endswith("_f1")
    )
    return f"; decoded {result['gen_windows']} windows ({result['gen_truncated']} truncated): F1 {scores}"


# The eval record's value that picks best/ for each TuneConfig.select_by.
_SELECTION_KEY = {"objective": "val_objective", "base": "val_base_structure_error", "generative": "val_loss"}


class ValidationMixin:
    """Trainer methods that evaluate, decode validation windows and record the result."""

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
                    inputs["pointer_labels"] = labels
                    inputs["docs_per_row"] = self.fixed_docs_per_row or batch["docs_per_row"]
                    with self.autocast():
                        out = module(inputs, with_decoder=cfg.generative_loss_weight > 0)
                    weight = float(batch["weight"])
                    if out.logits is not None:
                        smoothed, nll, count = decoder_loss_sums(out.logits, out.pointer, labels, cfg.label_smoothing)
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
        if base_batches:
            result["val_base_structure_error"] = base_structure_error(result)
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
        val = result[_SELECTION_KEY[self.config.select_by]]
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
                f"eval step {self.global_step}: objective {result['val_objective']:.4f} (val_loss {result['val_loss']:.4f}, "
                f"smoothed {result['val_loss_smoothed']:.4f}, {result['val_tokens']:,} tokens{base})"
                f"{' *best*' if improved else ''}{_generation_summary(result)}"
            )
        return self.early.should_stop
