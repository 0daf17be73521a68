"""Attention: the FlexAttention and explicit-mask reference backends, ALiBi, RoPE and GQA.

Shape legend: B batch rows, H query heads, G key/value heads (GQA groups), Q query tokens,
K key tokens, d head dim, D model dim.

One mask predicate per attention kind is written once (:class:`~genoforge.model.masks.MaskSpec`)
and used by both backends: FlexAttention applies it inside the blocks it classifies from the
document ranges, the reference path materialises it as a boolean [B, Q, K] tensor and runs
``scaled_dot_product_attention`` with an additive float mask. Both therefore compute the same
function; tests compare them.

A query that may see no key (padding) gets an all-zero output on both paths.

Elsewhere: the masks (:mod:`genoforge.model.masks`, their block lists
:mod:`~genoforge.model.block_lists` and CUDA-graph cache :mod:`~genoforge.model.mask_graphs`),
the compiled FlexAttention and its tiles (:mod:`genoforge.model.flex`), RMSNorm and SwiGLU
(:mod:`genoforge.model.norms`). MaskSpec, the mask builders, RMSNorm and SwiGLU are re-exported
here, their import path before the split.
"""

from __future__ import annotations

import math
import warnings
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genoforge.model.flex import flex_attention_fn

# Re-exported: model.py, base_head.py, inference and tests import these from here.
from genoforge.model.masks import MaskSpec, cross_mask, decoder_self_mask, encoder_self_mask  # noqa: F401
from genoforge.model.norms import RMSNorm, SwiGLU  # noqa: F401

Backend = Literal["flex", "reference"]


def alibi_slopes(n_heads: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """ALiBi slopes in head order (Press et al. 2022; DNABERT-2 SPEC section c).

    For a power of two n: ``2^(-8 (h + 1) / n)``. Otherwise take the slopes of the largest power of
    two p < n, then every other slope of the 2p rule, starting with its first. For 12 heads that
    gives 1/2 .. 1/256 for heads 0..7 and 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5 for heads 8..11.
    """

    def power_of_two(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (h + 1) / n) for h in range(n)]

    if n_heads & (n_heads - 1) == 0:
        slopes = power_of_two(n_heads)
    else:
        p = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(p) + power_of_two(2 * p)[0::2][: n_heads - p]
    return torch.tensor(slopes, dtype=dtype)


class AlibiScore:
    """Symmetric ALiBi: ``score - slope[h] * |i - j|`` (a FlexAttention score_mod, or a bias)."""

    def __init__(self, slopes_H: Tensor):
        self.slopes_H = slopes_H

    def score_fn(self):
        slopes_H = self.slopes_H

        def score_mod(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return score - slopes_H[h] * (q_idx - kv_idx).abs()

        return score_mod

    def bias(self, n_q: int, n_kv: int, device: torch.device) -> Tensor:
        """[H, Q, K] bias for the reference path (same formula, in the slopes' dtype)."""
        q = torch.arange(n_q, device=device)[:, None]
        k = torch.arange(n_kv, device=device)[None, :]
        return -self.slopes_H.to(device)[:, None, None] * (q - k).abs()[None]


def attend(
    q_BHQd: Tensor,
    k_BGKd: Tensor,
    v_BGKd: Tensor,
    spec: MaskSpec,
    backend: Backend,
    alibi: AlibiScore | None = None,
) -> Tensor:
    """Scaled dot-product attention (scale 1/sqrt(d)) under ``spec``; returns [B, H, Q, d].

    GQA: H must be a multiple of G; query head h reads key/value head h // (H / G).
    """
    gqa = q_BHQd.shape[1] != k_BGKd.shape[1]
    if backend == "flex":
        flex = flex_attention_fn(q_BHQd.device)
        if q_BHQd.device.type == "cuda":  # no warnings context here: it would break compiled graphs
            return flex(
                q_BHQd, k_BGKd, v_BGKd,
                score_mod=alibi.score_fn() if alibi is not None else None,
                block_mask=spec.block_mask(), enable_gqa=gqa,
                kernel_options=spec.kernel_options,
            )
        with warnings.catch_warnings():
            # Eager (CPU) flex warns that it is unfused; that is the point of the CPU check.
            warnings.simplefilter("ignore", UserWarning)
            return flex(
                q_BHQd, k_BGKd, v_BGKd,
                score_mod=alibi.score_fn() if alibi is not None else None,
                block_mask=spec.block_mask(), enable_gqa=gqa
            )
    allowed_BQK = spec.bool_mask()
    has_key_BQ = allowed_BQK.any(dim=-1)
    # Rows with no visible key would be all -inf (NaN after softmax): let them see everything and
    # zero their output afterwards, which is what FlexAttention returns for such rows.
    allowed_BQK = allowed_BQK | ~has_key_BQ[..., None]
    bias = torch.zeros((), device=q_BHQd.device, dtype=torch.float32)  # additive, cast below
    if alibi is not None:
        bias = alibi.bias(allowed_BQK.shape[1], allowed_BQK.shape[2], q_BHQd.device)[None]
    additive = torch.where(allowed_BQK[:, None], bias, float("-inf")).to(q_BHQd.dtype)
    out = F.scaled_dot_product_attention(q_BHQd, k_BGKd, v_BGKd, attn_mask=additive, enable_gqa=gqa)
    return out * has_key_BQ[:, None, :, None].to(out.dtype)


def attend_cached(q_BHQd: Tensor, k_BGKd: Tensor, v_BGKd: Tensor, allowed_BQK: Tensor) -> Tensor:
    """Scaled dot-product attention over cached keys under a boolean mask; returns [B, H, Q, d].

    The decode step's attention (:meth:`genoforge.model.decoder.DecoderLayer.step`): ``allowed``
    (broadcastable to [B, H, Q, K], True = may attend) is built on the device every step, so no
    block mask or host work is needed; every query must see at least one key. GQA as in
    :func:`attend`.
    """
    return F.scaled_dot_product_attention(q_BHQd, k_BGKd, v_BGKd, attn_mask=allowed_BQK, enable_gqa=True)


def rope_cos_sin(positions_BT: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos/sin tables [B, 1, T, d/2] for rotary embeddings at integer ``positions``."""
    half = head_dim // 2
    inv_freq = 1.0 / (theta ** (torch.arange(half, device=positions_BT.device, dtype=torch.float32) / half))
    angles = positions_BT.to(torch.float32)[..., None] * inv_freq
    return angles.cos()[:, None], angles.sin()[:, None]


def apply_rope(x_BHTd: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs (x[i], x[i + d/2]) by the position angle (the GPT-NeoX / Llama layout)."""
    half = x_BHTd.shape[-1] // 2
    x1, x2 = x_BHTd[..., :half].float(), x_BHTd[..., half:].float()
    out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return out.to(x_BHTd.dtype)


class GQAttention(nn.Module):
    """Multi-head attention with grouped key/value heads, no biases (decoder and compressor).

    Used for self-attention (``kv`` is the query stream) and cross-attention (``kv`` is memory).
    """

    def __init__(self, dim: int, kv_dim: int, n_heads: int, n_kv_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_dim = dim // n_heads
        self.q_proj = nn.Linear(dim, n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(kv_dim, n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(kv_dim, n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(n_heads * self.head_dim, dim, bias=False)

    def split(self, x_BTX: Tensor, n_heads: int) -> Tensor:
        batch, length, _ = x_BTX.shape
        return x_BTX.view(batch, length, n_heads, self.head_dim).transpose(1, 2)

    def project_q(self, x_BQD: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Query heads [B, H, Q, d], rotated when ``rope`` (cos, sin) is given."""
        q = self.split(self.q_proj(x_BQD), self.n_heads)
        return q if rope is None else apply_rope(q, *rope)

    def project_kv(self, kv_BKD: Tensor, rope: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """Key and value heads [B, G, K, d], keys rotated when ``rope`` is given (what a decode
        cache stores: cross-attention's once per window, self-attention's one token per step)."""
        k = self.split(self.k_proj(kv_BKD), self.n_kv_heads)
        v = self.split(self.v_proj(kv_BKD), self.n_kv_heads)
        return (k if rope is None else apply_rope(k, *rope)), v

    def merge(self, out_BHQd: Tensor) -> Tensor:
        batch, _, length, _ = out_BHQd.shape
        return self.o_proj(out_BHQd.transpose(1, 2).reshape(batch, length, -1))

    def forward(
        self,
        x_BQD: Tensor,
        kv_BKD: Tensor,
        spec: MaskSpec,
        backend: Backend,
        rope: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        q = self.project_q(x_BQD, rope)
        k, v = self.project_kv(kv_BKD, rope)
        return self.merge(attend(q, k, v, spec, backend))


def document_positions(doc_BT: Tensor) -> Tensor:
    """Position of each token within its document (documents are contiguous runs of ``doc``)."""
    length = doc_BT.shape[1]
    index = torch.arange(length, device=doc_BT.device).expand_as(doc_BT)
    starts = torch.ones_like(doc_BT, dtype=torch.bool)
    starts[:, 1:] = doc_BT[:, 1:] != doc_BT[:, :-1]
    start_index = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - start_index
