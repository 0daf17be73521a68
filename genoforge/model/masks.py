"""Which keys each query may see: :class:`MaskSpec` and the masks of the three attention kinds.

Shape legend: B batch rows, Q query tokens, K key tokens.

Masks (``doc`` = document index within the packed row, -1 = padding):

* encoder self-attention: same document, ``|i - j| <= radius`` (radius = (W - 1) // 2), plus the
  symmetric ALiBi bias ``-slope_h * |i - j|`` (a score_mod on the Flex path);
* decoder self-attention: same document, causal, ``i - W < j <= i``;
* cross-attention (latents -> encoder, decoder -> memory): same document.

The block mask is built from block lists (:mod:`genoforge.model.block_lists`), replayed from a
CUDA graph on CUDA (:mod:`genoforge.model.mask_graphs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from genoforge.model.block_lists import classify_blocks, pad_to_blocks
from genoforge.model.flex import FLEX_MIN_CUDA_BLOCK, encoder_kernel_options
from genoforge.model.mask_graphs import build_block_lists


@dataclass(eq=False)
class MaskSpec:
    """Which keys each query may see, for one attention kind of one batch.

    Built once per batch and shared by every layer of that kind; the block mask (Flex) or the
    boolean mask (reference) is made on first use and cached.

    Attributes:
        q_doc: [B, Q] document of each query (-1: padding, sees nothing).
        kv_doc: [B, K] document of each key (-1: padding, never seen).
        causal: keys must not come after the query (j <= i).
        lookback: causal window W: ``i - W < j <= i``; 0 = whole document.
        radius: bidirectional window: ``|i - j| <= radius``; None = whole document.
        block_size: FlexAttention mask block (tokens, queries and keys alike).
        kernel_options: FlexAttention kernel options on CUDA (tile sizes; None: torch's choice).
    """

    q_doc: Tensor
    kv_doc: Tensor
    causal: bool = False
    lookback: int = 0
    radius: int | None = None
    block_size: int = 128
    kernel_options: dict | None = None
    _block_mask: object = field(default=None, repr=False)
    _bool_mask: Tensor | None = field(default=None, repr=False)

    def mask_fn(self, q_doc: Tensor | None = None, kv_doc: Tensor | None = None):
        """The predicate as a plain function (FlexAttention's mask_mod signature).

        The same function is evaluated on broadcast index grids by :meth:`bool_mask`. ``q_doc`` /
        ``kv_doc`` replace the spec's document ids (longer, -1-padded copies: see
        :meth:`block_mask_fn`); every index must lie within the tensors the predicate reads.
        """
        q_doc_all = self.q_doc if q_doc is None else q_doc
        kv_doc_all = self.kv_doc if kv_doc is None else kv_doc
        causal, lookback, radius = self.causal, self.lookback, self.radius

        def mask_mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            q_doc = q_doc_all[b, q_idx]
            allowed = (q_doc == kv_doc_all[b, kv_idx]) & (q_doc >= 0)
            if causal:
                allowed = allowed & (kv_idx <= q_idx)
                if lookback > 0:
                    allowed = allowed & (q_idx - kv_idx < lookback)
            if radius is not None:
                allowed = allowed & ((q_idx - kv_idx).abs() <= radius)
            return allowed

        return mask_mod

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.q_doc.shape[0], self.q_doc.shape[1], self.kv_doc.shape[1]

    def flex_block_size(self) -> int:
        """The block size FlexAttention uses on this device (rounded up to 128 on CUDA)."""
        block = self.block_size
        if self.q_doc.device.type == "cuda":
            block = max(FLEX_MIN_CUDA_BLOCK, -(-block // FLEX_MIN_CUDA_BLOCK) * FLEX_MIN_CUDA_BLOCK)
        return block

    def block_mask_fn(self):
        """The predicate FlexAttention gets: safe for every index of a partial last block.

        The fused kernel evaluates the mask_mod on whole blocks, so a row whose length is not a
        multiple of the block size is read past its end (an illegal memory access on CUDA: an
        encoder row of 14,208 tokens with blocks of 256). The document ids are therefore padded
        with -1 (matches nothing) up to a whole number of blocks before the predicate reads them.
        """
        block = self.flex_block_size()
        return self.mask_fn(pad_to_blocks(self.q_doc, block), pad_to_blocks(self.kv_doc, block))

    def block_mask(self):  # -> torch.nn.attention.flex_attention.BlockMask
        """The FlexAttention block mask (built on first call, then reused by every layer).

        Built at block level from the document ids (:meth:`block_classes`): the predicate is never
        evaluated on the full [B, Q, K] grid, which ``create_block_mask`` does eagerly (~30 ms a
        batch for the seed model's five masks at 32k tokens on an H200). ``create_block_mask``
        (``_compile=True``) was tried on torch 2.11 (H100): the first model step did not finish
        within 200 s. Tests check the result against ``create_block_mask``.
        """
        if self._block_mask is None:
            from torch.nn.attention.flex_attention import BlockMask

            _, n_q, n_kv = self.shape
            block = self.flex_block_size()
            kv_num, kv_idx, full_kv_num, full_kv_idx, q_num, q_idx, full_q_num, full_q_idx = build_block_lists(
                self.q_doc, self.kv_doc, block, self.causal, self.lookback, self.radius)
            self._block_mask = BlockMask(
                seq_lengths=(n_q, n_kv), kv_num_blocks=kv_num, kv_indices=kv_idx,
                full_kv_num_blocks=full_kv_num, full_kv_indices=full_kv_idx,
                q_num_blocks=q_num, q_indices=q_idx, full_q_num_blocks=full_q_num, full_q_indices=full_q_idx,
                BLOCK_SIZE=(block, block), mask_mod=self.block_mask_fn(),
            )
        return self._block_mask

    def block_classes(self) -> tuple[Tensor, Tensor]:
        """Which (query block, key block) pairs FlexAttention must visit: [B, Qb, Kb] booleans.

        Returns ``(partial, full)``: ``full`` blocks have every pair allowed (the kernel skips the
        predicate), ``partial`` blocks may hold an allowed pair (the kernel applies it), every
        other block is skipped. Decided from per-block document ranges and block positions, in a
        few small tensor ops and without a host sync. Never wrong, possibly conservative: a block
        is ``full`` only if all its queries and keys are real tokens of one and the same document
        and every position pair passes the window; it is skipped only if no document id and no
        position pair can match. (Document ids are contiguous runs in a packed row, so for real
        rows the classes equal ``create_block_mask``'s; tests compare them.)
        """
        return classify_blocks(self.q_doc, self.kv_doc, self.flex_block_size(), self.causal, self.lookback,
                               self.radius)

    def bool_mask(self) -> Tensor:
        """[B, Q, K] boolean mask, materialised (reference path)."""
        if self._bool_mask is None:
            batch, n_q, n_kv = self.shape
            device = self.q_doc.device
            b = torch.arange(batch, device=device)[:, None, None]
            q = torch.arange(n_q, device=device)[None, :, None]
            k = torch.arange(n_kv, device=device)[None, None, :]
            self._bool_mask = self.mask_fn()(b, None, q, k)  # type: ignore[arg-type]
        return self._bool_mask


def encoder_self_mask(doc: Tensor, window_size: int, block_size: int) -> MaskSpec:
    """Bidirectional, same document, at most ``window_size`` tokens seen (0 = whole document)."""
    radius = (window_size - 1) // 2 if window_size > 0 else None
    return MaskSpec(doc, doc, radius=radius, block_size=block_size, kernel_options=encoder_kernel_options(doc.device))


def decoder_self_mask(doc: Tensor, window_size: int, block_size: int) -> MaskSpec:
    """Causal, same document, look-back of ``window_size`` tokens including the query itself."""
    return MaskSpec(doc, doc, causal=True, lookback=window_size, block_size=block_size)


def cross_mask(q_doc: Tensor, kv_doc: Tensor, block_size: int) -> MaskSpec:
    """Queries see every key of their own document."""
    return MaskSpec(q_doc, kv_doc, block_size=block_size)
