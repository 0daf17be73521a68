"""Attention masks and kernels: FlexAttention block masks on CUDA, explicit masks elsewhere.

Shape legend: B batch rows, H query heads, G key/value heads (GQA groups), Q query tokens,
K key tokens, d head dim, D model dim.

One mask predicate per attention kind is written once (:class:`MaskSpec`) and used by both
backends: FlexAttention applies it inside the blocks it classifies from the document ranges, the
reference path materialises it as a boolean [B, Q, K] tensor and runs
``scaled_dot_product_attention`` with an additive float mask. Both therefore compute the same
function; tests compare them.

Masks (``doc`` = document index within the packed row, -1 = padding):

* encoder self-attention: same document, ``|i - j| <= radius`` (radius = (W - 1) // 2), plus the
  symmetric ALiBi bias ``-slope_h * |i - j|`` (a score_mod on the Flex path);
* decoder self-attention: same document, causal, ``i - W < j <= i``;
* cross-attention (latents -> encoder, decoder -> memory): same document.

A query that may see no key (padding) gets an all-zero output on both paths.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Backend = Literal["flex", "reference"]

# FlexAttention's fused CUDA kernels tile queries/keys by up to 128; coarser mask blocks are fine,
# finer ones are not supported by the kernel, so they are rounded up on CUDA.
FLEX_MIN_CUDA_BLOCK = 128
# Compiled FlexAttention variants allowed before dynamo gives up on compiling (see _flex_fn).
FLEX_RECOMPILE_LIMIT = 64


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
        return self.mask_fn(_pad_to_blocks(self.q_doc, block), _pad_to_blocks(self.kv_doc, block))

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


# Building a batch's five block masks eagerly is ~400 small kernels and 5-9 ms of host time on an
# H100 host (benchmarks/RESULTS.md, "Model"), during which the GPU waits at the start of each
# micro-batch. On CUDA each mask kind and shape is therefore captured once as a CUDA graph
# (:class:`_GraphedBlockLists`) and replayed: a copy in, one replay, one copy out. Compiling
# block_lists instead (torch.compile, fullgraph) did not finish a first model step within 140 s
# on torch 2.11. False: always eager.
GRAPH_BLOCK_MASKS = True
_GRAPHED_LISTS_KEPT = 32  # captured graphs kept (mask kinds x row shapes); the oldest go first
# None: seen once; False: capture failed, stays eager.
_graphed_lists: OrderedDict[tuple, _GraphedBlockLists | bool | None] = OrderedDict()


class _GraphedBlockLists:
    """:func:`block_lists` for one mask kind, shape and device, captured as a CUDA graph.

    The graph reads its own copies of the document ids and writes the eight lists into one flat
    int32 buffer; each call copies the ids in, replays, and returns views of a fresh copy of that
    buffer, so a mask kept from an earlier batch is never overwritten by a later one.
    """

    def __init__(self, q_doc: Tensor, kv_doc: Tensor, params: tuple):
        self.device = q_doc.device
        with torch.cuda.device(self.device):  # the ids' GPU, whichever is current
            self.q_doc, self.kv_doc = q_doc.clone(), kv_doc.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up (workspace allocations) outside the capture
                block_lists(self.q_doc, self.kv_doc, *params)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):  # other threads may run
                lists = block_lists(self.q_doc, self.kv_doc, *params)
                self.flat = torch.cat([t.reshape(-1) for t in lists])
        self.shapes = [t.shape for t in lists]
        self.sizes = [t.numel() for t in lists]

    def __call__(self, q_doc: Tensor, kv_doc: Tensor) -> tuple[Tensor, ...]:
        with torch.cuda.device(self.device):
            self.q_doc.copy_(q_doc)
            self.kv_doc.copy_(kv_doc)
            self.graph.replay()
            parts = self.flat.clone().split(self.sizes)
        return tuple(part.view(shape) for part, shape in zip(parts, self.shapes, strict=True))


def build_block_lists(q_doc: Tensor, kv_doc: Tensor, block: int, causal: bool, lookback: int,
                      radius: int | None) -> tuple[Tensor, ...]:
    """:func:`block_lists`, replayed from a CUDA graph on CUDA (:data:`GRAPH_BLOCK_MASKS`).

    Eager off CUDA, inside torch.compile, while another graph is being captured, and the first
    time a key (device, shapes, dtypes, mask parameters) is seen: the second time captures.
    """
    params = (block, causal, lookback, radius)
    if (q_doc.device.type != "cuda" or not GRAPH_BLOCK_MASKS or torch.compiler.is_compiling()
            or torch.cuda.is_current_stream_capturing()):
        return block_lists(q_doc, kv_doc, *params)
    key = (q_doc.device, q_doc.shape, q_doc.dtype, kv_doc.shape, kv_doc.dtype, *params)
    if key not in _graphed_lists:  # first sight: eager (one-off shapes are never captured)
        _graphed_lists[key] = None
        while len(_graphed_lists) > _GRAPHED_LISTS_KEPT:
            _graphed_lists.popitem(last=False)
        return block_lists(q_doc, kv_doc, *params)
    _graphed_lists.move_to_end(key)
    graphed = _graphed_lists[key]
    if graphed is None:  # second sight: capture
        try:
            graphed = _graphed_lists[key] = _GraphedBlockLists(q_doc, kv_doc, params)
        except RuntimeError as exc:  # this kind stays eager; the masks are the same
            graphed = _graphed_lists[key] = False
            warnings.warn(f"block masks stay eager: CUDA graph capture failed ({str(exc).splitlines()[0]})",
                          stacklevel=2)
    if graphed is False:
        return block_lists(q_doc, kv_doc, *params)
    return graphed(q_doc, kv_doc)


def _block_doc_ranges(doc_BL: Tensor, block: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per ``block``-token block: lowest and highest real document id, and whether all are real.

    Shapes [B, L / block] (the last block padded). A block of only padding gets lo > hi.
    """
    doc_BNb = _pad_to_blocks(doc_BL, block).reshape(doc_BL.shape[0], -1, block)
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


def _pad_to_blocks(doc_BL: Tensor, block: int) -> Tensor:
    """``doc_BL`` extended with -1 to a whole number of ``block``-token blocks (itself if whole)."""
    length = doc_BL.shape[1]
    padded = -(-length // block) * block
    if padded == length:
        return doc_BL
    return F.pad(doc_BL, (0, padded - length), value=-1)


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


_compiled_flex = None


def _flex_fn(device: torch.device):
    """flex_attention, compiled (fused kernel) on CUDA, eager elsewhere (CPU: forward only)."""
    from torch.nn.attention.flex_attention import flex_attention

    global _compiled_flex
    if device.type != "cuda" or torch.compiler.is_compiling():
        return flex_attention  # eager on CPU; inside a compiled region the caller's compile fuses it
    if _compiled_flex is None:
        # One compiled graph per attention kind, shape and grad mode: a training run with the
        # compressor needs 5 kinds x (training, evaluation) = 10, over dynamo's default limit of 8
        # per function, past which it silently falls back to the unfused kernel (94x slower,
        # and it materialises the scores: seen on an H100 in tune's first evaluation).
        config = torch._dynamo.config
        config.recompile_limit = max(config.recompile_limit, FLEX_RECOMPILE_LIMIT)
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


# FlexAttention ``kernel_options`` of the encoder's self-attention (the only ALiBi attention) on
# CUDA. benchmarks/flex_options.py found these backward tiles 8% faster than torch's choice on
# the seed micro-batch's encoder alone (H100); in the whole seed model they took fwd+bwd from
# 181.9-184.2 ms to 175.8-178.6 ms on one H100 (benchmarks/RESULTS.md, "Model"). Without a
# prefix, num_warps and num_stages also apply to the forward kernel: that is the measured set.
# Measured on Hopper only, so other GPUs keep torch's choice (smaller shared memories may not fit).
ENCODER_TILES_SM90: dict = {"BLOCK_M1": 64, "BLOCK_N1": 128, "BLOCK_M2": 128, "BLOCK_N2": 64,
                            "num_warps": 8, "num_stages": 3}
# "auto": ENCODER_TILES_SM90 on compute capability 9.x GPUs, torch's choice elsewhere; None:
# torch's choice everywhere; a dict: these options on every CUDA GPU (benchmarks/model.py
# --encoder_kernel_options sets it).
ENCODER_KERNEL_OPTIONS: dict | str | None = "auto"


def encoder_kernel_options(device: torch.device) -> dict | None:
    """The FlexAttention kernel options of the encoder's self-attention on ``device``."""
    if device.type != "cuda":
        return None
    if ENCODER_KERNEL_OPTIONS != "auto":
        return ENCODER_KERNEL_OPTIONS  # type: ignore[return-value]
    # torch keeps each GPU's properties once read: no cache needed here.
    return dict(ENCODER_TILES_SM90) if torch.cuda.get_device_capability(device)[0] == 9 else None


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
        flex = _flex_fn(q_BHQd.device)
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

    def project_kv(self, kv_BKD: Tensor) -> tuple[Tensor, Tensor]:
        """Key and value heads [B, G, K, d] (cached once per window for cross-attention)."""
        return self.split(self.k_proj(kv_BKD), self.n_kv_heads), self.split(self.v_proj(kv_BKD), self.n_kv_heads)

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
        q = self.split(self.q_proj(x_BQD), self.n_heads)
        k, v = self.project_kv(kv_BKD)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return self.merge(attend(q, k, v, spec, backend))


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale (computed in fp32)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed * self.weight.float()).to(x.dtype)


class SwiGLU(nn.Module):
    """Dense gated FFN: ``w_down(silu(w_gate x) * w_up x)`` (compressor and non-MoE decoder)."""

    def __init__(self, dim: int, ff_dim: int):
        super().__init__()
        self.w_gate = nn.Linear(dim, ff_dim, bias=False)
        self.w_up = nn.Linear(dim, ff_dim, bias=False)
        self.w_down = nn.Linear(ff_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))


def document_positions(doc_BT: Tensor) -> Tensor:
    """Position of each token within its document (documents are contiguous runs of ``doc``)."""
    length = doc_BT.shape[1]
    index = torch.arange(length, device=doc_BT.device).expand_as(doc_BT)
    starts = torch.ones_like(doc_BT, dtype=torch.bool)
    starts[:, 1:] = doc_BT[:, 1:] != doc_BT[:, :-1]
    start_index = torch.where(starts, index, torch.zeros_like(index)).cummax(dim=1).values
    return index - start_index
