"""Mixture-of-experts FFN: dropless top-k routing over stacked SwiGLU experts.

Shape legend: N tokens (flattened B x T), D model dim, F expert FFN dim, E experts, K top-k.

Routing (fp32): ``p = softmax(x W_r^T)``, take the top K experts per token and renormalise their
probabilities to sum to 1 (the gates). Every token is processed by its K experts (dropless: no
capacity, no dropped tokens). The router matmul runs with autocast disabled: inside a bf16
autocast region ``F.linear`` of fp32 tensors would still run in bf16, rounding the small router
logits (init std 0.006) and so the choice among near-tied experts.

Auxiliary losses, over real tokens only (``valid`` mask; padding is routed but not counted):

* Switch load balancing (Fedus et al. 2021, eq. 4, generalised to top-k):
  ``E * sum_e f_e * P_e`` with f_e = share of the N*K assignments that went to e and
  P_e = mean router probability of e. It is 1 when routing is uniform.
* Router z-loss (Zoph et al. 2022): ``mean(logsumexp(logits)^2)``.

Two execution paths compute the same function:

* ``grouped``: sort the N*K assignments by expert (argsort), count them (index_add), and run the
  three expert matrices as grouped GEMMs (``torch._grouped_mm``) over the sorted rows; no Python
  loop over experts and no host synchronisation. Needs 16-byte aligned rows (D and F multiples
  of 8 in bf16, of 4 in fp32). On CUDA the GEMMs run in bf16 (the SM90 fast path).
* ``loop``: one masked matmul per expert (a host sync per expert); the reference.

Weights are stored stacked: ``w_gate_EDF``, ``w_up_EDF`` and ``w_down_EDF`` (all [E, D, F];
the down projection uses the transpose, so all three read as "D x F per expert").

bf16 copies (:meth:`MoEFeedForward.enable_bf16_copies`; tune turns them on for CUDA training
except under FSDP): the grouped path casts the fp32 expert weights to bf16 on every forward
(2.7 B parameters in the seed preset: ~5.5 ms a micro-batch on an H100). With copies enabled,
training-mode forwards read persistent bf16 copies instead, refreshed in place only when a weight has changed (its version counter moved, e.g.
after an optimizer step), so micro-batches accumulated into one optimizer step cast once. The
gradient still reaches the fp32 weight (in fp32), so training is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MoeImpl = Literal["auto", "grouped", "loop"]


@dataclass
class RouterStats:
    """What one MoE layer reports: losses (scalars) and real tokens per expert [E]."""

    aux_loss: Tensor
    z_loss: Tensor
    tokens_per_expert: Tensor


class _FromBf16Copy(torch.autograd.Function):
    """Forward: the bf16 copy of an fp32 weight (kept up to date by the caller); backward: the
    gradient, in fp32, to the weight (the copy gets none)."""

    @staticmethod
    def forward(ctx, weight: Tensor, copy: Tensor) -> Tensor:  # noqa: ARG004 - weight: the grad's target
        return copy.view_as(copy)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad.float(), None


class _GatherRows(torch.autograd.Function):
    """``x[index]`` whose backward is a gather too: ``grad[backward_index]``, summed over groups.

    Autograd's backward of ``x[index]`` is an index_put with accumulation, which on CUDA sorts the
    indices every time (3.6 ms of an H100 step for the seed model's 12 MoE layers). Here the
    caller knows the inverse: ``index`` takes every row of ``x`` exactly ``group`` times, and row
    ``n``'s copies are the output rows ``backward_index[n * group : (n + 1) * group]``. The sum
    over a group runs in a fixed order (deterministic, no atomics).
    """

    @staticmethod
    def forward(ctx, x_ND: Tensor, index_A: Tensor, backward_index_A: Tensor, group: int) -> Tensor:
        ctx.save_for_backward(backward_index_A)
        ctx.group = group
        return x_ND[index_A]

    @staticmethod
    def backward(ctx, grad_AD: Tensor) -> tuple[Tensor, None, None, None]:
        (backward_index_A,) = ctx.saved_tensors
        grad = grad_AD[backward_index_A]
        if ctx.group > 1:
            wide = torch.promote_types(grad.dtype, torch.float32)
            grad = grad.view(-1, ctx.group, grad.shape[-1]).sum(dim=1, dtype=wide).to(grad.dtype)
        return grad, None, None, None


def grouped_mm_supported(dim: int, ff_dim: int, dtype: torch.dtype) -> bool:
    """Whether ``torch._grouped_mm`` can take these widths (16-byte aligned strides)."""
    if not hasattr(torch, "_grouped_mm"):
        return False
    size = torch.finfo(dtype).bits // 8
    return (dim * size) % 16 == 0 and (ff_dim * size) % 16 == 0


class MoEFeedForward(nn.Module):
    """Dropless top-k MoE of SwiGLU experts with stacked weights."""

    def __init__(self, dim: int, ff_dim: int, num_experts: int, top_k: int):
        super().__init__()
        self.dim, self.ff_dim = dim, ff_dim
        self.num_experts, self.top_k = num_experts, top_k
        self.router = nn.Linear(dim, num_experts, bias=False)
        self.w_gate_EDF = nn.Parameter(torch.empty(num_experts, dim, ff_dim))
        self.w_up_EDF = nn.Parameter(torch.empty(num_experts, dim, ff_dim))
        self.w_down_EDF = nn.Parameter(torch.empty(num_experts, dim, ff_dim))
        self.impl: MoeImpl = "auto"
        self.force_bf16 = False  # grouped path in bf16 off CUDA too (tests of the CUDA arithmetic)
        self._bf16_copies: tuple[Tensor, Tensor, Tensor] | None = None
        self._bf16_versions: tuple[int, int, int] | None = None
        self._use_bf16_copies = False

    def enable_bf16_copies(self, enabled: bool = True) -> None:
        """Read persistent bf16 copies of the expert weights in training (module docstring)."""
        self._use_bf16_copies = enabled
        if not enabled:
            self._bf16_copies = self._bf16_versions = None

    def refresh_bf16_copies(self) -> bool:
        """Bring the bf16 copies up to date (eager code only); False where they do not apply.

        They apply in training mode to plain fp32 weights on CUDA (or with ``force_bf16``); not to
        FSDP-sharded (DTensor) weights, whose full values exist only inside FSDP's forward.
        """
        weights = (self.w_gate_EDF, self.w_up_EDF, self.w_down_EDF)
        first = weights[0]
        if not (self._use_bf16_copies and self.training and first.dtype == torch.float32
                and (first.is_cuda or self.force_bf16) and type(first) is nn.Parameter):
            return False
        versions = tuple(w._version for w in weights)
        if self._bf16_copies is None or self._bf16_copies[0].device != first.device:
            with torch.no_grad():
                self._bf16_copies = tuple(w.detach().to(torch.bfloat16) for w in weights)  # type: ignore[assignment]
        elif versions != self._bf16_versions:
            with torch.no_grad():
                for copy, w in zip(self._bf16_copies, weights, strict=True):
                    copy.copy_(w.detach())
        self._bf16_versions = versions  # type: ignore[assignment]
        return True

    def router_logits(self, x_ND: Tensor) -> Tensor:
        """Router logits [N, E], computed in fp32 even inside an autocast region."""
        with torch.autocast(device_type=x_ND.device.type, enabled=False):
            return F.linear(x_ND.float(), self.router.weight.float())

    def route(self, x_ND: Tensor, valid_N: Tensor) -> tuple[Tensor, Tensor, RouterStats]:
        """Top-k experts [N, K] and renormalised gates [N, K] (fp32), plus the router statistics."""
        logits_NE = self.router_logits(x_ND)
        probs_NE = logits_NE.softmax(dim=-1)
        gates_NK, experts_NK = probs_NE.topk(self.top_k, dim=-1)
        gates_NK = gates_NK / gates_NK.sum(dim=-1, keepdim=True)

        valid = valid_N.to(torch.float32)
        n_valid = valid.sum().clamp(min=1.0)
        assigned_NE = torch.zeros_like(probs_NE).scatter_(1, experts_NK, 1.0) * valid[:, None]
        tokens_per_expert = assigned_NE.sum(dim=0)
        share_E = tokens_per_expert / (n_valid * self.top_k)
        mean_prob_E = (probs_NE * valid[:, None]).sum(dim=0) / n_valid
        aux = self.num_experts * (share_E * mean_prob_E).sum()
        z = (torch.logsumexp(logits_NE, dim=-1).pow(2) * valid).sum() / n_valid
        stats = RouterStats(aux_loss=aux, z_loss=z, tokens_per_expert=tokens_per_expert.detach().long())
        return experts_NK, gates_NK, stats

    def forward(self, x_BTD: Tensor, valid_BT: Tensor) -> tuple[Tensor, RouterStats]:
        shape = x_BTD.shape
        x_ND = x_BTD.reshape(-1, self.dim)
        experts_NK, gates_NK, stats = self.route(x_ND, valid_BT.reshape(-1))
        impl = self.resolve_impl(x_ND)
        if impl == "grouped":
            out_ND = self._grouped(x_ND, experts_NK, gates_NK)
        else:
            out_ND = self._loop(x_ND, experts_NK, gates_NK)
        return out_ND.view(shape), stats

    def resolve_impl(self, x_ND: Tensor) -> Literal["grouped", "loop"]:
        if self.impl != "auto":
            return self.impl
        dtype = torch.bfloat16 if (x_ND.is_cuda or self.force_bf16) else x_ND.dtype
        return "grouped" if grouped_mm_supported(self.dim, self.ff_dim, dtype) else "loop"

    def _grouped(self, x_ND: Tensor, experts_NK: Tensor, gates_NK: Tensor) -> Tensor:
        n_tokens = x_ND.shape[0]
        flat_expert = experts_NK.reshape(-1)
        order = flat_expert.argsort(stable=True)  # assignments grouped by expert
        token_of = order // self.top_k
        # A fixed-size count (bincount's output size depends on the data, which breaks graphs).
        counts_E = torch.zeros(self.num_experts, dtype=torch.int64, device=x_ND.device)
        counts_E = counts_E.index_add(0, flat_expert, torch.ones_like(flat_expert))
        offsets_E = counts_E.cumsum(0).to(torch.int32)
        # bf16 on CUDA (the SM90 fast path) and under torch.compile (its shape checks want bf16);
        # eager CPU keeps the input dtype so fp32 tests are exact.
        compute = (torch.bfloat16 if (x_ND.is_cuda or self.force_bf16 or torch.compiler.is_compiling())
                   else x_ND.dtype)
        # Each assignment's row (inverse: the sorted position of each token's k-th assignment).
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        x_sorted = _GatherRows.apply(x_ND, token_of, inverse, self.top_k).to(compute)
        weights = (self.w_gate_EDF, self.w_up_EDF, self.w_down_EDF)
        if not torch.compiler.is_compiling():  # eager: check here too (compiled: the model refreshed them)
            self.refresh_bf16_copies()
        copies = self._bf16_copies
        if copies is not None and self._use_bf16_copies and self.training and compute == torch.bfloat16:
            w_gate, w_up, w_down = (_FromBf16Copy.apply(w, c) for w, c in zip(weights, copies, strict=True))
        else:
            w_gate, w_up, w_down = (w.to(compute) for w in weights)
        gate = torch._grouped_mm(x_sorted, w_gate, offs=offsets_E)
        up = torch._grouped_mm(x_sorted, w_up, offs=offsets_E)
        hidden = F.silu(gate) * up
        y_sorted = torch._grouped_mm(hidden, w_down.transpose(-2, -1), offs=offsets_E)
        # Combine by gathering each token's K rows back (inverse permutation) rather than a
        # scatter-add: no atomics, deterministic.
        y_NKD = _GatherRows.apply(y_sorted, inverse, order, 1).view(n_tokens, self.top_k, self.dim)
        return (y_NKD.float() * gates_NK[..., None]).sum(dim=1).to(x_ND.dtype)

    def _loop(self, x_ND: Tensor, experts_NK: Tensor, gates_NK: Tensor) -> Tensor:
        out = torch.zeros_like(x_ND)
        for e in range(self.num_experts):
            token_idx, slot = torch.where(experts_NK == e)
            if token_idx.numel() == 0:
                continue
            x_e = x_ND[token_idx]
            w_down = self.w_down_EDF[e].to(x_e.dtype)
            hidden = F.silu(x_e @ self.w_gate_EDF[e].to(x_e.dtype)) * (x_e @ self.w_up_EDF[e].to(x_e.dtype))
            y = (hidden @ w_down.T) * gates_NK[token_idx, slot, None].to(x_e.dtype)
            out = out.index_add(0, token_idx, y)
        return out
