"""FlexAttention's block lists of a document mask, decided per block from document-id ranges.

Shape legend: B batch rows, Q query tokens, K key tokens, L tokens of either side, Qb / Kb / Nb
their blocks. Used by :meth:`genoforge.model.masks.MaskSpec.block_mask` (through the CUDA-graph
cache of :mod:`genoforge.model.mask_graphs`); tests compare the classes with
``create_block_mask``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def classify_blocks(q_doc: Tensor, kv_doc: Tensor, block: int, causal: bool, lookback: int,
                    radius: int | None) -> tuple[Tensor, Tensor]:
    """``(partial, full)`` [B, Qb, Kb] block classes of a mask (:meth:`MaskSpec.block_classes`)."""
    q_lo, q_hi, q_whole = _block_doc_ranges(q_doc, block)
    k_lo, k_hi, k_whole = _block_doc_ranges(kv_doc, block)
    q_lo, q_hi, q_whole = q_lo[:, :, None], q_hi[:, :, None], q_whole[:, :, None]
    k_lo, k_hi, k_whole = k_lo[:, None, :], k_hi[:, None, :], k_whole[:, None, :]
    # Empty blocks (only padding) have lo > hi, so they overlap nothing.
    doc_any = (q_lo <= k_hi) & (k_lo <= q_hi) & (q_lo <= q_hi) & (k_lo <= k_hi)
    doc_all = q_whole & k_whole & (q_lo == q_hi) & (k_lo == k_hi) & (q_lo == k_lo)

    device = q_doc.device
    q_first = (torch.arange(q_lo.shape[1], device=device) * block)[None, :, None]
    k_first = (torch.arange(k_lo.shape[2], device=device) * block)[None, None, :]
    q_last, k_last = q_first + block - 1, k_first + block - 1
    pos_any = torch.ones_like(doc_any)
    pos_all = torch.ones_like(doc_all)
    if causal:  # j <= i
        pos_any = pos_any & (k_first <= q_last)
        pos_all = pos_all & (k_last <= q_first)
        if lookback > 0:  # i - j < lookback
            pos_any = pos_any & (q_first - k_last < lookback)
            pos_all = pos_all & (q_last - k_first < lookback)
    if radius is not None:  # |i - j| <= radius
        nearest = torch.clamp(torch.maximum(k_first - q_last, q_first - k_last), min=0)
        farthest = torch.maximum(q_last - k_first, k_last - q_first)
        pos_any = pos_any & (nearest <= radius)
        pos_all = pos_all & (farthest <= radius)
    full = doc_all & pos_all
    return doc_any & pos_any & ~full, full


def block_lists(q_doc: Tensor, kv_doc: Tensor, block: int, causal: bool, lookback: int,
                radius: int | None) -> tuple[Tensor, ...]:
    """FlexAttention's eight block lists of a mask, from :func:`classify_blocks`.

    ``(kv_num, kv_idx, full_kv_num, full_kv_idx, q_num, q_idx, full_q_num, full_q_idx)``; the
    key-side lists (for the backward pass) come straight from the transposed classes:
    BlockMask.from_kv_blocks would rebuild them through a vmapped dense scatter.
    """
    partial_BQK, full_BQK = classify_blocks(q_doc, kv_doc, block, causal, lookback, radius)
    return (*_blocks_to_indices(partial_BQK), *_blocks_to_indices(full_BQK),
            *_blocks_to_indices(partial_BQK.transpose(1, 2)), *_blocks_to_indices(full_BQK.transpose(1, 2)))


def _block_doc_ranges(doc_BL: Tensor, block: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per ``block``-token block: lowest and highest real document id, and whether all are real.

    Shapes [B, L / block] (the last block padded). A block of only padding gets lo > hi.
    """
    doc_BNb = pad_to_blocks(doc_BL, block).reshape(doc_BL.shape[0], -1, block)
    real = doc_BNb >= 0
    big = torch.iinfo(doc_BNb.dtype).max
    lo = torch.where(real, doc_BNb, big).amin(dim=-1)
    hi = torch.where(real, doc_BNb, -1).amax(dim=-1)
    return lo, hi, real.all(dim=-1)


def _blocks_to_indices(selected_BQK: Tensor) -> tuple[Tensor, Tensor]:
    """FlexAttention's (num_blocks [B, 1, Qb], indices [B, 1, Qb, Kb]) from a block selection.

    Each query block lists its selected key blocks first, in increasing order.
    """
    num = selected_BQK.sum(dim=-1, dtype=torch.int32)
    order = torch.argsort((~selected_BQK).to(torch.int8), dim=-1, stable=True).to(torch.int32)
    return num[:, None].contiguous(), order[:, None].contiguous()


def pad_to_blocks(doc_BL: Tensor, block: int) -> Tensor:
    """``doc_BL`` extended with -1 to a whole number of ``block``-token blocks (itself if whole)."""
    length = doc_BL.shape[1]
    padded = -(-length // block) * block
    if padded == length:
        return doc_BL
    return F.pad(doc_BL, (0, padded - length), value=-1)
