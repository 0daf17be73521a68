"""Continuous batching: decode a stream of windows, refilling each batch row as its window ends.

Shape legend: B batch rows, G key/value heads, W decoder look-back (ring slots), M memory tokens
per window, d head dim, D decoder width, V vocabulary.

Why: target lengths vary a lot (10 kb windows of the shared genomes: mean ~230 tokens, but the
fly's 99th percentile is ~2,100). In lockstep decoding (:func:`genoforge.inference.decode.
greedy_decode`) a batch runs as long as its longest window, so most rows idle; here a row that
finishes takes the next window at once, and the cost follows the mean length instead of the
maximum.

The model's own decode step (:meth:`GenoforgeModel.decode_step`) keeps one position for the whole
batch; rows that start at different times need one position per row. :class:`RowCache` holds
that state and :func:`row_step` is the model's decoder step computed per row: the same modules
(embeddings, norms, projections, RoPE, MoE FFN, output head), the same ring buffer of the
``decoder_window_size`` look-back (slot = position mod W) and each row's cross-attention keys and
values computed once when its window is loaded. Tests check that it writes the same tokens as
the model's lockstep step and as the uncached full forward.

Grammar, token cap and truncation are exactly those of :mod:`genoforge.inference.decode`.

On CUDA the step is replayed from a captured graph (:mod:`genoforge.inference.cuda_graphs`);
:func:`row_step` is written for it: device work only, the cache updated in place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genoforge.baking.target import parse_target_tokens
from genoforge.inference.decode import (
    GrammarCache,
    GrammarRows,
    WindowPrediction,
    cut_unfinished_record,
    encoder_batch,
    record_start_ids,
)

@dataclass
class RowCache:
    """Per-row decoding state of B rows (see the module docstring).

    ``position_B`` is each row's next position (0 = the ``<bos>`` input); ``slot_pos_BW`` the
    position held in each ring slot (-1 = empty); ``memory_ok_BM`` which memory tokens a row may
    attend (its window's, not padding).
    """

    position_B: Tensor
    slot_pos_BW: Tensor
    self_k: list[Tensor]  # per layer [B, G, W, d]
    self_v: list[Tensor]
    cross_k: list[Tensor]  # per layer [B, G, M, d]
    cross_v: list[Tensor]
    memory_ok_BM: Tensor

    @classmethod
    def empty(cls, model, rows: int, memory_width: int, device, dtype, max_positions: int) -> RowCache:
        """Zeroed state; without a decoder look-back window the ring holds ``max_positions``."""
        config = model.config
        window = config.decoder_window_size or max_positions
        layers = config.decoder_layers
        g, d = config.decoder_kv_heads, config.decoder_head_dim

        def zeros(width: int) -> list[Tensor]:
            return [torch.zeros(rows, g, width, d, device=device, dtype=dtype) for _ in range(layers)]

        return cls(
            position_B=torch.zeros(rows, dtype=torch.long, device=device),
            slot_pos_BW=torch.full((rows, window), -1, dtype=torch.long, device=device),
            self_k=zeros(window), self_v=zeros(window), cross_k=zeros(memory_width),
            cross_v=zeros(memory_width),
            memory_ok_BM=torch.zeros(rows, memory_width, dtype=torch.bool, device=device),
        )

    @property
    def memory_width(self) -> int:
        return self.memory_ok_BM.shape[1]

    def widen_memory(self, width: int) -> None:
        """Pad every row's memory to ``width`` tokens (models without a compressor: M = S varies)."""
        extra = width - self.memory_width
        if extra <= 0:
            return
        self.cross_k = [F.pad(t, (0, 0, 0, extra)) for t in self.cross_k]
        self.cross_v = [F.pad(t, (0, 0, 0, extra)) for t in self.cross_v]
        self.memory_ok_BM = F.pad(self.memory_ok_BM, (0, extra), value=False)

    def load(self, row: int, window: _EncodedWindow) -> None:
        """Start decoding ``window`` in ``row``: its cross K/V, an empty ring, position 0."""
        width = window.memory_ok_M.shape[0]
        self.widen_memory(width)
        for layer, (k, v) in enumerate(zip(window.cross_k, window.cross_v, strict=True)):
            self.cross_k[layer][row].zero_()
            self.cross_v[layer][row].zero_()
            self.cross_k[layer][row, :, :width] = k
            self.cross_v[layer][row, :, :width] = v
        self.memory_ok_BM[row] = False
        self.memory_ok_BM[row, :width] = window.memory_ok_M
        self.slot_pos_BW[row] = -1
        self.position_B[row] = 0


@torch.no_grad()
def row_step(model, token_ids_B: Tensor, cache: RowCache, active_B: Tensor) -> Tensor:
    """Logits [B, V] of the next token of every row, each at its own position.

    Rows where ``active_B`` is False are computed on padding and must be ignored.
    """
    from genoforge.model.attention import apply_rope

    decoder = model.decoder
    rows = torch.arange(token_ids_B.shape[0], device=token_ids_B.device)
    window = cache.slot_pos_BW.shape[1]
    x_B1D = decoder.embed_tokens(token_ids_B)[:, None]
    rope = decoder.rope(cache.position_B[:, None])
    slot_B = cache.position_B % window
    cache.slot_pos_BW[rows, slot_B] = cache.position_B
    visible_BW = (cache.slot_pos_BW >= 0) & (cache.slot_pos_BW > cache.position_B[:, None] - window)
    self_mask = visible_BW[:, None, None, :]
    # An idle row may see no memory at all; let it see everything rather than produce NaN.
    cross_mask = (cache.memory_ok_BM | ~active_B[:, None])[:, None, None, :]
    valid = torch.ones(x_B1D.shape[:2], dtype=torch.bool, device=x_B1D.device)
    for index, layer in enumerate(decoder.layers):
        attn = layer.self_attn
        h = layer.self_norm(x_B1D)
        q = apply_rope(attn.split(attn.q_proj(h), attn.n_heads), *rope)
        k, v = attn.project_kv(h)
        cache.self_k[index][rows, :, slot_B] = apply_rope(k, *rope)[:, :, 0]
        cache.self_v[index][rows, :, slot_B] = v[:, :, 0]
        out = F.scaled_dot_product_attention(q, cache.self_k[index], cache.self_v[index],
                                             attn_mask=self_mask, enable_gqa=True)
        x_B1D = x_B1D + attn.merge(out)
        cross = layer.cross_attn
        h = layer.cross_norm(x_B1D)
        q = cross.split(cross.q_proj(h), cross.n_heads)
        out = F.scaled_dot_product_attention(q, cache.cross_k[index], cache.cross_v[index],
                                             attn_mask=cross_mask, enable_gqa=True)
        x_B1D = x_B1D + cross.merge(out)
        x_B1D = layer.feed_forward(x_B1D, valid)[0]
    cache.position_B += 1
    return decoder.logits(decoder.norm(x_B1D))[:, 0]


@dataclass
class _EncodedWindow:
    key: Any
    length: int
    cross_k: list[Tensor]  # per layer [G, M, d]
    cross_v: list[Tensor]
    memory_ok_M: Tensor


@dataclass
class _Row:
    key: Any
    length: int
    tokens: list[int]


@torch.no_grad()
def decode_stream(
    model,
    tokenizer,
    windows: Iterable[tuple[Any, list[int], int]],
    *,
    batch_size: int,
    max_new_tokens: int,
    grammars: GrammarCache | None = None,
    length_multiple: int = 1,
    pad_encoder_rows: bool = False,
    step: Callable | None = None,
) -> Iterator[tuple[Any, WindowPrediction]]:
    """Decode windows with continuous batching; yields ``(key, prediction)`` as windows finish.

    Args:
        model: a GenoforgeModel in eval mode (its device and dtype are used).
        tokenizer: its GenoTokenizer.
        windows: ``(key, encoder ids, window length in bp)`` per window, consumed lazily
            (``batch_size`` windows are encoded together when rows free up).
        batch_size: decoder rows (windows decoded at once) and encoder batch.
        max_new_tokens: decoder steps per window at most (module docstring of ``decode``).
        length_multiple, pad_encoder_rows: fixed encoder shapes (for compiled kernels on CUDA).
        step: replaces :func:`row_step` (tests).

    Results come in completion order, not input order; every prediction parses.
    """
    if max_new_tokens < 1:
        from genoforge.errors import ConfigError

        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    grammars = grammars or GrammarCache(tokenizer)
    record_starts = record_start_ids(grammars(None))
    step = step or row_step
    parameter = next(model.parameters())
    device = parameter.device
    bos, eos, pad = tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id
    bp_lengths = tokenizer.bp_lengths()
    source = iter(windows)
    queue: deque[_EncodedWindow] = deque()
    exhausted = False
    cache: RowCache | None = None
    rows: list[_Row | None] = [None] * batch_size
    grammar_rows = GrammarRows(batch_size, device)  # each row's grammar state and mask
    current_B = torch.full((batch_size,), pad, dtype=torch.long, device=device)

    def refill_queue() -> None:
        nonlocal exhausted, cache
        chunk = []
        while len(chunk) < batch_size and not exhausted:
            item = next(source, None)
            if item is None:
                exhausted = True
            else:
                chunk.append(item)
        if not chunk:
            return
        batch = encoder_batch([ids for _, ids, _ in chunk], bp_lengths, pad, device,
                              length_multiple=length_multiple,
                              rows=batch_size if pad_encoder_rows else None)
        memory = model.encode(batch)
        states = model.decoder.memory_norm(memory.states_BMD)
        kv = [layer.cross_attn.project_kv(states) for layer in model.decoder.layers]
        if cache is None:
            cache = RowCache.empty(model, batch_size, states.shape[1], device, kv[0][0].dtype,
                                   max_positions=max_new_tokens + 1)
        ok = memory.doc_BM >= 0
        for i, (key, _, length) in enumerate(chunk):
            queue.append(_EncodedWindow(key, length, [k[i] for k, _ in kv], [v[i] for _, v in kv], ok[i]))

    def finish(b: int, truncated: bool) -> tuple[Any, WindowPrediction]:
        row = rows[b]
        assert row is not None
        tokens = row.tokens if not truncated else cut_unfinished_record(row.tokens, record_starts, eos)
        strings = [tokenizer.id_to_token(i) for i in tokens]
        annotation = parse_target_tokens(strings, window_size=row.length, max_records=grammars.max_records,
                                         max_exons=grammars.max_exons)
        rows[b] = None
        grammar_rows.stop(b)
        return row.key, WindowPrediction(tokens, annotation, truncated)

    while True:
        for b in range(batch_size):
            if rows[b] is not None:
                continue
            if not queue:
                refill_queue()
            if not queue:
                break
            window = queue.popleft()
            assert cache is not None
            cache.load(b, window)
            grammar_rows.start(b, grammars(window.length), bos)
            rows[b] = _Row(window.key, window.length, [bos])
            current_B[b] = bos
        active = [row is not None for row in rows]
        if not any(active):
            return
        assert cache is not None
        active_B = torch.tensor(active, device=device)
        logits_BV = step(model, current_B, cache, active_B)
        picked = grammar_rows.pick(logits_BV)
        for b, row in enumerate(rows):
            if row is None:
                picked[b] = pad
                continue
            row.tokens.append(picked[b])
            if grammar_rows.advance(b, picked[b]):
                yield finish(b, truncated=False)
                picked[b] = pad
                continue
            if len(row.tokens) > max_new_tokens:
                yield finish(b, truncated=True)
                picked[b] = pad
        current_B = torch.tensor(picked, dtype=torch.long, device=device)
