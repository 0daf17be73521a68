"""Training telemetry: device-side metric accumulation and the logs.

Metrics stay on the device as tensors and are read (one host sync) every ``log_steps`` optimizer
steps; each step still gets its own ``metrics.jsonl`` record, written at the read. Record kinds:

* ``start``: run facts (world size, row shape, packing efficiency, steps, parameters);
* ``train`` (every optimizer step): ``step`` (1-based count of optimizer updates done),
  ``epoch``, ``loss`` (the optimised objective: label-smoothed CE + MoE aux terms), ``ce``
  (plain CE of the training tokens), ``aux_loss`` and ``z_loss`` (already times their
  coefficients), ``base_loss`` (the per-base head's class-weighted CE, before its weight), ``lr``, ``grad_norm`` (before clipping), ``enc_tokens`` / ``dec_tokens`` (real
  positions over all ranks);
* ``perf`` (every read): ``tokens_per_s`` (real encoder + decoder tokens, all ranks),
  ``mfu`` (see below; null off CUDA), memory (MB) and ``expert_load_min`` / ``max`` (tokens routed
  to an expert / the mean per expert, over every MoE layer since the last read);
* ``eval``: ``val_objective`` (the early-stopping criterion: weighted plain token CE + the
  per-base structure error, 1 - mean group F1), ``val_loss`` (plain token CE), ``val_loss_smoothed``, ``val_tokens``, ``val_base_loss`` and
  base-level F1 (``base_cds_f1``, ``base_intron_f1``, ... and ``base_f1_<class>``), ``best``, and with generative validation ``gen_<level>_f1``, ``gen_windows``,
  ``gen_truncated`` (:mod:`genoforge.training.generate`);
* ``end``: why the run stopped.

MFU: :mod:`genoforge.training.flops`.

The live panel (``--log_memory`` on a terminal) shows the newest step and perf numbers and, when
generative validation is on, the newest evaluation's scores (:data:`GENERATION_ROWS`), '-' until
the first evaluation. Without the panel, a terminal gets a progress bar of optimizer steps
(:class:`~genoforge.training.step_bar.StepBar`: step/total, steps/s, ETA) under the log lines;
off a terminal (CI, pipes) there is no animation, only the log lines. The lines and the panel
carry steps/s and the ETA too.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from genoforge.console import info
from genoforge.training.memwatch import gpu_memory, host_rss_bytes
from genoforge.training.step_bar import StepBar, format_duration, format_rate

_MB = 1024 * 1024

# Live-panel rows of the newest generative validation: row name -> eval record key. Exon F1 is
# the CDS-exon level of the scorer (genoforge.evaluation.compare.LEVELS).
GENERATION_ROWS = {
    "gen exon F1": "gen_cds_exon_f1",
    "gen gene F1": "gen_gene_f1",
    "gen windows decoded": "gen_windows",
    "gen truncated": "gen_truncated",
}
NOT_YET = "-"  # a panel value before its first evaluation


class StepAccumulator:
    """Per-step metrics kept on the device; :meth:`read` syncs once for all pending steps."""

    def __init__(self, device):
        import torch

        self.device = device
        self._zero = lambda: torch.zeros((), dtype=torch.float32, device=device)  # noqa: E731
        self._pending: list[dict[str, Any]] = []
        self._expert_counts = None
        self._reset_step()

    def _reset_step(self) -> None:
        self._loss = self._zero()
        self._ce = self._zero()
        self._aux = self._zero()
        self._z = self._zero()
        self._base = self._zero()

    def add_micro_batch(self, *, loss, ce, aux, z, base=None, tokens_per_expert=None) -> None:
        """Add one micro-batch's share of the step (each term already normalised for the step)."""
        if base is not None:
            self._base += base.detach().float()
        self._loss += loss.detach().float()
        self._ce += ce.detach().float()
        self._aux += aux.detach().float()
        self._z += z.detach().float()
        if tokens_per_expert is not None:
            counts = tokens_per_expert.detach().float()
            self._expert_counts = counts if self._expert_counts is None else self._expert_counts + counts

    def end_step(self, *, step: int, epoch: int, lr: float, grad_norm, enc_tokens: int, dec_tokens: int,
                 all_reduce=None) -> None:
        """Close the step. ``all_reduce`` (optional) sums the loss terms over ranks, asynchronously
        enqueued on the device (no host sync)."""
        import torch

        terms = torch.stack([self._loss, self._ce, self._aux, self._z, self._base])
        if all_reduce is not None:
            terms = all_reduce(terms)
        gn = grad_norm.detach().float() if isinstance(grad_norm, torch.Tensor) else torch.tensor(float(grad_norm))
        self._pending.append(
            {"step": step, "epoch": epoch, "lr": lr, "terms": terms, "grad_norm": gn,
             "enc_tokens": enc_tokens, "dec_tokens": dec_tokens}
        )
        self._reset_step()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def read(self) -> tuple[list[dict[str, Any]], tuple[float, float] | None]:
        """Host copies of every pending step record, and (min, max) expert load since last read."""
        import torch

        if not self._pending:
            return [], None
        terms = torch.stack([p["terms"] for p in self._pending]).cpu().tolist()
        norms = torch.stack([p["grad_norm"].to(self.device) for p in self._pending]).cpu().tolist()
        records = []
        for p, (loss, ce, aux, z, base), gn in zip(self._pending, terms, norms, strict=True):
            records.append({
                "kind": "train", "step": p["step"], "epoch": p["epoch"], "loss": loss, "ce": ce,
                "aux_loss": aux, "z_loss": z, "base_loss": base, "lr": p["lr"], "grad_norm": gn,
                "enc_tokens": p["enc_tokens"], "dec_tokens": p["dec_tokens"],
            })
        self._pending.clear()
        load = None
        if self._expert_counts is not None:
            counts = self._expert_counts.reshape(-1, self._expert_counts.shape[-1])
            mean = counts.mean(dim=-1, keepdim=True).clamp_min(1e-9)
            ratio = (counts / mean).cpu()
            load = (float(ratio.min()), float(ratio.max()))
            self._expert_counts = None
        return records, load


def _fmt_tokens(value: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return f"{value:.0f}"


def generation_fields(record: dict[str, Any] | None) -> dict[str, str]:
    """Panel rows of an eval record's generative-validation scores (:data:`GENERATION_ROWS`).

    ``record`` None (no evaluation yet) shows :data:`NOT_YET` in every row; an F1 that is
    undefined (nothing to find and nothing found, reported as None) shows ``n/a``.
    """
    if record is None:
        return {row: NOT_YET for row in GENERATION_ROWS}
    fields = {}
    for row, key in GENERATION_ROWS.items():
        value = record.get(key)
        if key.endswith("_f1"):
            fields[row] = "n/a" if value is None else f"{value:.3f}"
        else:
            fields[row] = NOT_YET if value is None else f"{int(value):,}"
    return fields


class TrainingLog:
    """metrics.jsonl (always, rank 0) plus plain lines or a live panel on stderr.

    ``generative``: generative validation is on, so the live panel carries its rows
    (:func:`generation_fields`), updated by every ``eval`` record passed to :meth:`write`. Plain
    lines leave them out: the eval line already reports them.

    Without the live panel, when the library's stderr console is a terminal, a :class:`StepBar`
    from ``start_step`` to ``total_steps`` follows :meth:`step_done` (rich shows one live display
    at a time, so the panel, which has the step, steps/s and ETA rows, replaces the bar).
    """

    def __init__(self, metrics_path: Path | None, *, live: bool, log_memory: bool, device, total_steps: int,
                 generative: bool = False, start_step: int = 0):
        self.metrics_path = metrics_path
        self.log_memory = log_memory
        self.device = device
        self.total_steps = total_steps
        self.generative = generative
        self._last_generation: dict[str, Any] | None = None
        self._last_base_f1: float | None = None
        self._handle = open(metrics_path, "a") if metrics_path is not None else None
        self._live_cm = None
        self._live_update = None
        if live and metrics_path is not None:
            from genoforge.console import live_table

            self._live_cm = live_table("genoforge tune")
            self._live_update = self._live_cm.__enter__()
        self._bar: StepBar | None = None
        if self._live_cm is None and metrics_path is not None:
            from genoforge import console

            if console.stderr.is_terminal:
                self._bar = StepBar(total_steps, start_step=start_step)
        self._last_time = time.monotonic()
        self._last_flops = 0.0
        self._last_tokens = 0

    def write(self, record: dict[str, Any]) -> None:
        if self._handle is None:
            return
        record = {"time": round(time.time(), 3), **record}
        self._handle.write(json.dumps(record, default=_jsonable) + "\n")
        self._handle.flush()
        if record.get("kind") == "eval" and "base_cds_f1" in record:
            self._last_base_f1 = record["base_cds_f1"]
        if record.get("kind") == "eval" and "gen_windows" in record:
            self._last_generation = record
            if self._live_update is not None and self.generative:
                self._live_update(generation_fields(record))  # now, not at the next interval

    def step_done(self, step: int) -> None:
        """Optimizer step ``step`` is done: move the progress bar, if there is one (cheap)."""
        if self._bar is not None:
            self._bar.update(step)

    def message(self, text: str) -> None:
        """A log line on stderr (rank 0; printed above the live panel when there is one)."""
        if self._handle is not None:
            if self._bar is not None:
                self._bar.flush()
            info(text)

    def interval(self, records: list[dict[str, Any]], *, flops: float, tokens: int, world_size: int,
                 peak: float | None, expert_load: tuple[float, float] | None) -> dict[str, Any]:
        """Write the step records and one ``perf`` record; show the newest numbers."""
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-9)
        self._last_time = now
        for record in records:
            self.write(record)
        perf: dict[str, Any] = {
            "kind": "perf",
            "step": records[-1]["step"] if records else None,
            "tokens_per_s": tokens / elapsed,
            "step_time_s": elapsed / max(len(records), 1),
            "mfu": flops / (elapsed * world_size * peak) if peak else None,
            "host_rss_mb": host_rss_bytes() / _MB,
        }
        gpu = gpu_memory(self.device)
        if gpu is not None:
            perf.update(gpu_allocated_mb=gpu[0] / _MB, gpu_reserved_mb=gpu[1] / _MB, gpu_peak_mb=gpu[2] / _MB)
        if expert_load is not None:
            perf.update(expert_load_min=expert_load[0], expert_load_max=expert_load[1])
        self.write(perf)
        if self._bar is not None:
            self._bar.flush()
        if records and self._handle is not None:
            self._show(records[-1], perf)
        return perf

    def _show(self, last: dict[str, Any], perf: dict[str, Any]) -> None:
        fields: dict[str, str] = {
            "step": f"{last['step']}/{self.total_steps}",
            "epoch": str(last["epoch"] + 1),
            "loss": f"{last['loss']:.4f} (ce {last['ce']:.4f})",
            "base loss": f"{last.get('base_loss', 0.0):.4f}",
            "val base CDS F1": NOT_YET if self._last_base_f1 is None else f"{self._last_base_f1:.3f}",
            "lr": f"{last['lr']:.3e}",
            "grad norm": f"{last['grad_norm']:.3f}",
            "tokens/s": _fmt_tokens(perf["tokens_per_s"]),
            "MFU": "n/a" if perf["mfu"] is None else f"{100 * perf['mfu']:.1f}%",
        }
        step_time = perf.get("step_time_s")
        if step_time:  # over the interval since the last read (evaluations and saves included)
            fields["speed"] = format_rate(1.0 / step_time)
            fields["ETA"] = format_duration((self.total_steps - last["step"]) * step_time)
        if self.log_memory:
            if "gpu_allocated_mb" in perf:
                fields["GPU alloc/reserved/peak"] = (
                    f"{perf['gpu_allocated_mb'] / 1024:.1f} / {perf['gpu_reserved_mb'] / 1024:.1f} / "
                    f"{perf['gpu_peak_mb'] / 1024:.1f} GB"
                )
            fields["host RSS"] = f"{perf['host_rss_mb'] / 1024:.2f} GB"
            if "expert_load_min" in perf:
                fields["expert load min/max"] = f"{perf['expert_load_min']:.2f} / {perf['expert_load_max']:.2f}"
        if self._live_update is not None:
            if self.generative:
                fields.update(generation_fields(self._last_generation))
            self._live_update(fields)
        else:
            info("  ".join(f"{k} {v}" for k, v in fields.items()))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._live_cm is not None:
            self._live_cm.__exit__(None, None, None)
            self._live_cm = None
            self._live_update = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def truncate_metrics(path: Path, after_step: int) -> int:
    """Drop ``train``/``perf``/``eval`` records past ``after_step`` (a resumed run rewrites them).

    Returns how many records were dropped. The rewrite is atomic.
    """
    from genoforge.io import atomic_write

    if not path.exists():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            dropped += 1  # a line cut by a kill mid-write
            continue
        step = record.get("step")
        if record.get("kind") in ("train", "perf", "eval") and isinstance(step, int) and step > after_step:
            dropped += 1
            continue
        kept.append(line)
    with atomic_write(path) as handle:
        handle.write("".join(line + "\n" for line in kept))
    return dropped
