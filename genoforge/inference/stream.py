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

CUDA graphs (``PredictConfig.cuda_graphs``; on by default on CUDA, ``predict --no_cuda_graphs``
turns them off). At batch 256 :func:`row_step` is launch-bound (benchmarks/RESULTS.md, "## Predict":
the seed model issues 1,629 kernels for 8.3 ms of GPU time in a 31.8 ms step; replayed from a
graph, predict runs 4x faster). :class:`GraphedRowStep` runs the same function over static
buffers and replays it from one captured graph:

* inputs: the step's token ids [B] and active mask [B] are copied into fixed buffers; the logits
  are written into a fixed [B, V] buffer by the graph and cloned out for the caller;
* state: the :class:`RowCache` tensors are read and updated in place (index writes, ``+=``), so
  they keep their addresses from step to step. :meth:`RowCache.widen_memory` (models without a
  compressor, where M = S grows with the longest window seen) allocates NEW cross K/V tensors;
  this path does not pre-size them (the widest window is not known up front) but RE-CAPTURES:
  every call compares the cache's layout (address and shape of each tensor) with the one the
  graph was captured on, and a change means warm-up and capture again. On CUDA the encoder
  pads S to a multiple of 512, so a genome costs a few captures; with a compressor M is fixed
  and one capture serves the whole run;
* no host synchronisation inside the step: the embedding, RoPE tables (positions from the device
  tensor), masks (device comparisons), SDPA and the grouped MoE (argsort, a fixed-size
  index_add count, cumsum offsets, ``torch._grouped_mm``) are all device work with shapes fixed
  by B, W, M. The per-expert ``loop`` MoE is not (``torch.where`` = nonzero, and a branch on
  its size, once per expert): :func:`check_capturable` refuses models whose experts resolve to it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genoforge.genes.target import parse_target_tokens
from genoforge.inference.decode import (
    GrammarCache,
    GrammarRows,
    WindowPrediction,
    cut_unfinished_record,
    encoder_batch,
    record_start_ids,
)

# Eager steps run on a side stream before each capture (torch.cuda.graphs docs: warm up before
# capturing, so lazy initialisation such as cuBLAS handles and workspaces and the allocator's
# first blocks happens outside the graph). They are real decoding steps, not throwaway ones:
# the cache is advanced exactly as by the graph, so nothing has to be saved and restored.
GRAPH_WARMUP_STEPS = 2


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


def check_capturable(model) -> None:
    """Refuse a model whose decoder step cannot be captured as a CUDA graph.

    The MoE ``loop`` path synchronises with the host (``torch.where`` and a size check per
    expert); experts fall back to it where ``torch._grouped_mm`` cannot take their widths (see
    :func:`genoforge.model.moe.grouped_mm_supported`) or where ``impl`` forces it.

    Raises:
        ConfigError: a decoder MoE layer resolves to the per-expert loop.
    """
    from genoforge.errors import ConfigError
    from genoforge.model.moe import MoEFeedForward

    parameter = next(model.parameters())
    for index, layer in enumerate(model.decoder.layers):
        ffn = layer.ffn
        if not isinstance(ffn, MoEFeedForward):
            continue
        probe = torch.empty(0, ffn.dim, device=parameter.device, dtype=parameter.dtype)
        if ffn.resolve_impl(probe) == "loop":
            raise ConfigError(
                f"--cuda_graphs: decoder layer {index}'s MoE runs the per-expert loop (decoder_dim "
                f"{ffn.dim}, decoder_ff_dim {ffn.ff_dim}, impl {ffn.impl!r}), which syncs with the host "
                "every step and cannot be captured; drop --cuda_graphs, or use widths that are "
                "multiples of 8 so the grouped GEMM path applies"
            )


def cache_layout(model, cache: RowCache) -> tuple:
    """What a captured step has baked in: the model and each cache tensor's address and shape."""
    tensors = [cache.position_B, cache.slot_pos_BW, cache.memory_ok_BM,
               *cache.self_k, *cache.self_v, *cache.cross_k, *cache.cross_v]
    return (id(model), *((t.data_ptr(), tuple(t.shape)) for t in tensors))


StepFn = Callable[[Any, Tensor, RowCache, Tensor], Tensor]


class StaticRowStep:
    """One decoder step over fixed buffers: the body a CUDA graph captures, for one cache layout.

    ``token_ids_B`` and ``active_B`` are the inputs (copy into them before :meth:`run`),
    ``logits_BV`` the output, all allocated here once; ``cache`` is updated in place by ``body``.
    """

    def __init__(self, model, cache: RowCache, body: StepFn):
        rows = cache.position_B.shape[0]
        device = cache.position_B.device
        head = model.decoder.lm_head.weight
        self.model, self.cache, self.body = model, cache, body
        self.layout = cache_layout(model, cache)
        self.token_ids_B = torch.zeros(rows, dtype=torch.long, device=device)
        self.active_B = torch.zeros(rows, dtype=torch.bool, device=device)
        self.logits_BV = torch.zeros(rows, head.shape[0], dtype=head.dtype, device=device)
        self.warmup_left = 0
        self.replay: Callable[[], None] | None = None

    @torch.no_grad()
    def run(self) -> None:
        """The step on the buffers: what is captured, and what warm-up runs eagerly."""
        self.logits_BV.copy_(self.body(self.model, self.token_ids_B, self.cache, self.active_B))


class GraphedRowStep:
    """A drop-in ``step`` for :func:`decode_stream`: :func:`row_step` replayed from a CUDA graph.

    Per call: the inputs are copied into the static buffers; the first ``warmup_steps`` calls
    after a (re)build run the step eagerly (on a side stream on CUDA), the next one captures it
    and every later call replays it; the returned logits are a copy (the next replay overwrites
    the buffer). A call whose cache layout differs from the captured one (a new cache, or
    :meth:`RowCache.widen_memory`) rebuilds: new buffers, warm-up, capture (module docstring).

    Args:
        warmup_steps: eager steps before each capture (:data:`GRAPH_WARMUP_STEPS`).
        emulate: run the captured body eagerly instead of capturing it, with the same buffers
            and control flow (CPU tests of everything but the graph itself).
        body: the step function to capture; default this module's ``row_step`` as bound when
            the graph is built (benchmarks/predict.py wraps it to fix target lengths).
        fallback: when a capture fails, warn once on stderr and run every later step eagerly
            (the default-on mode of predict) instead of raising ConfigError (``--cuda_graphs``
            asked for explicitly).

    ``captures`` counts captures (or emulated ones); :meth:`release` drops the graph and its
    buffers (call it when the stream is done: they keep the cache alive).
    """

    def __init__(self, *, warmup_steps: int = GRAPH_WARMUP_STEPS, emulate: bool = False,
                 body: StepFn | None = None, fallback: bool = False):
        self.warmup_steps = warmup_steps
        self.emulate = emulate
        self.body = body
        self.fallback = fallback
        self.failed = False  # a capture failed under ``fallback``: every step runs eagerly
        self.captures = 0
        self.static: StaticRowStep | None = None
        self._side_stream = None

    def __call__(self, model, token_ids_B: Tensor, cache: RowCache, active_B: Tensor) -> Tensor:
        if self.failed:
            return (self.body or row_step)(model, token_ids_B, cache, active_B)
        static = self.static
        if static is None or static.cache is not cache or static.layout != cache_layout(model, cache):
            static = self._rebuild(model, cache)
        static.token_ids_B.copy_(token_ids_B)
        static.active_B.copy_(active_B)
        if static.warmup_left > 0:
            static.warmup_left -= 1
            self._warm(static)
        else:
            if static.replay is None:
                static.replay = self._capture(static)
                if static.replay is None:  # failed, fallback: this step and the rest eagerly
                    self.release()
                    self.failed = True
                    return (self.body or row_step)(model, token_ids_B, cache, active_B)
                self.captures += 1
            static.replay()
        return static.logits_BV.clone()

    def release(self) -> None:
        """Drop the graph, its memory pool and the static buffers (and so the cache they hold)."""
        self.static = None

    def _rebuild(self, model, cache: RowCache) -> StaticRowStep:
        self.static = None  # free the old graph's pool before the new buffers are allocated
        if not self.emulate:
            if cache.position_B.device.type != "cuda":
                from genoforge.errors import ConfigError

                raise ConfigError(
                    f"--cuda_graphs needs a CUDA device, but the decoder runs on "
                    f"{cache.position_B.device}; drop --cuda_graphs or pass --device cuda")
            check_capturable(model)
        static = StaticRowStep(model, cache, self.body or row_step)
        static.warmup_left = self.warmup_steps
        self.static = static
        return static

    def _warm(self, static: StaticRowStep) -> None:
        if self.emulate:
            static.run()
            return
        device = static.logits_BV.device
        if self._side_stream is None:
            self._side_stream = torch.cuda.Stream(device)
        side, main = self._side_stream, torch.cuda.current_stream(device)
        side.wait_stream(main)  # the inputs and any rows loaded since the last step
        with torch.cuda.stream(side):
            static.run()
        main.wait_stream(side)

    def _capture(self, static: StaticRowStep) -> Callable[[], None] | None:
        """The replay of a fresh capture; None when it failed and ``fallback`` is on.

        A capture records kernels without running them, so a failed one leaves the cache as it
        was before the step and the step can run eagerly instead.
        """
        if self.emulate:
            return static.run
        from genoforge.errors import ConfigError

        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                static.run()
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if self.fallback:
                import sys

                print(f"warning: capturing the decoder step as a CUDA graph failed ({first}); "
                      "decoding eagerly (slower). Pass --no_cuda_graphs to skip the attempt, and "
                      "please report this", file=sys.stderr)
                return None
            raise ConfigError(f"--cuda_graphs: capturing the decoder step failed ({first}); "
                              "run with --no_cuda_graphs and report this") from exc
        return graph.replay


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
