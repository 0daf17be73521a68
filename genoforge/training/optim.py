"""AdamW with decay only where it belongs, and the cosine learning-rate schedule.

No weight decay on: every parameter with fewer than two dimensions (norm weights and biases), the
weights of ``nn.Embedding`` modules (a tied output head shares its embedding's tensor and so is
exempt too), and parameters whose name marks them as embeddings or learned latents (queries that
act as embeddings). Every other matrix (projections, experts, router, an untied head) decays.

The schedule is a pure function of the optimizer step, so resuming needs only the step count:
``lr(s) = lr * (s + 1) / warmup`` for the first ``warmup = ceil(warmup_ratio * total)`` steps
(s counts from 0, so the first update is not wasted at lr 0), then a half cosine from ``lr``
towards ``lr * min_lr_ratio``, reached at s = total (one past the last update, so the last update
is not wasted either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NO_DECAY_NAME_PARTS = ("embed", "latents")


def split_decay_groups(model) -> tuple[list[tuple[str, object]], list[tuple[str, object]]]:
    """(decay, no_decay) lists of (name, parameter) over the trainable parameters of ``model``.

    A parameter shared by several modules (tied weights) appears once, under its first name.
    """
    from torch import nn

    embedding_params = {
        id(module.weight) for module in model.modules() if isinstance(module, nn.Embedding)
    }
    decay, no_decay = [], []
    seen: set[int] = set()
    for name, param in model.named_parameters():
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        leaf = name.rsplit(".", 1)[-1]
        if (
            param.ndim < 2
            or id(param) in embedding_params
            or any(part in name.lower() for part in NO_DECAY_NAME_PARTS)
            or leaf == "bias"
        ):
            no_decay.append((name, param))
        else:
            decay.append((name, param))
    return decay, no_decay


def build_optimizer(model, *, lr: float, weight_decay: float, betas: tuple[float, float], eps: float,
                    fused: bool):
    """AdamW over two groups (decay / no decay); ``fused`` selects the fused CUDA kernel."""
    import torch

    decay, no_decay = split_decay_groups(model)
    groups = [
        {"params": [p for _, p in decay], "weight_decay": weight_decay, "group_name": "decay"},
        {"params": [p for _, p in no_decay], "weight_decay": 0.0, "group_name": "no_decay"},
    ]
    kwargs = {"fused": True} if fused else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **kwargs)


@dataclass(frozen=True)
class CosineSchedule:
    """Linear warm-up then cosine decay; ``multiplier(step)`` for 0-based optimizer step ``step``."""

    total_steps: int
    warmup_steps: int
    min_lr_ratio: float = 0.0

    @classmethod
    def from_ratio(cls, total_steps: int, warmup_ratio: float, min_lr_ratio: float = 0.0) -> CosineSchedule:
        warmup = math.ceil(warmup_ratio * total_steps) if total_steps else 0
        return cls(total_steps=total_steps, warmup_steps=min(warmup, total_steps), min_lr_ratio=min_lr_ratio)

    def multiplier(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        decay_steps = max(self.total_steps - self.warmup_steps, 1)
        progress = min((step - self.warmup_steps) / decay_steps, 1.0)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def apply(self, optimizer, base_lr: float, step: int) -> float:
        """Set every group's lr for ``step``; returns the lr."""
        lr = base_lr * self.multiplier(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict:
        return {"kind": "cosine", "total_steps": self.total_steps, "warmup_steps": self.warmup_steps,
                "min_lr_ratio": self.min_lr_ratio}
