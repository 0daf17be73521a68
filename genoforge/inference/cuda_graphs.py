"""The decoder step replayed from a CUDA graph: :class:`GraphedRowStep`, a ``step`` for
:func:`genoforge.inference.stream.decode_stream`.

Shape legend: B decoder rows, M memory tokens per row, W ring slots, V vocabulary.

``PredictConfig.cuda_graphs``: on by default on CUDA, ``predict --no_cuda_graphs`` turns it off.
At batch 256 the decoder step is launch-bound (benchmarks/RESULTS.md, "## Predict": the seed
model issues 1,629 kernels for 8.3 ms of GPU time in a 31.8 ms step; replayed from a graph,
predict runs 4x faster). :class:`GraphedRowStep` runs the same step function
(:func:`genoforge.inference.stream.row_step`, the model's
:meth:`~genoforge.model.decoder.GenoforgeDecoder.step`) over static buffers and replays it from
one captured graph:

* inputs: the step's token ids [B] and active mask [B] are copied into fixed buffers; the logits
  are written into a fixed [B, V] buffer by the graph and cloned out for the caller;
* state: the :class:`~genoforge.model.decode_cache.RowCache` tensors are read and updated in
  place (index writes, ``+=``), so they keep their addresses from step to step.
  :meth:`RowCache.widen_memory` (models without a compressor, where M = S grows with the
  longest window seen) allocates NEW cross K/V tensors; this path does not pre-size them (the
  widest window is not known up front) but RE-CAPTURES: every call compares the cache's layout
  (address and shape of each tensor) with the one the graph was captured on, and a change means
  warm-up and capture again. On CUDA the encoder pads S to a multiple of 512, so a genome costs
  a few captures; with a compressor M is fixed and one capture serves the whole run;
* no host synchronisation inside the step: the embedding, RoPE tables (positions from the device
  tensor), masks (device comparisons), SDPA and the grouped MoE (argsort, a fixed-size
  index_add count, cumsum offsets, ``torch._grouped_mm``) are all device work with shapes fixed
  by B, W, M. The per-expert ``loop`` MoE is not (``torch.where`` = nonzero, and a branch on
  its size, once per expert): :func:`check_capturable` refuses models whose experts resolve to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from genoforge.inference import stream
from genoforge.model.decode_cache import RowCache

# Eager steps run on a side stream before each capture (torch.cuda.graphs docs: warm up before
# capturing, so lazy initialisation such as cuBLAS handles and workspaces and the allocator's
# first blocks happens outside the graph). They are real decoding steps, not throwaway ones:
# the cache is advanced exactly as by the graph, so nothing has to be saved and restored.
GRAPH_WARMUP_STEPS = 2


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
    return (id(model), *((t.data_ptr(), tuple(t.shape)) for t in cache.tensors()))


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
        # float32 with the coordinate pointer: its lo-digit scores must not be rounded to bf16
        dtype = torch.float32 if getattr(model, "pointer", None) is not None else head.dtype
        self.logits_BV = torch.zeros(rows, head.shape[0], dtype=dtype, device=device)
        self.warmup_left = 0
        self.replay: Callable[[], None] | None = None

    @torch.no_grad()
    def run(self) -> None:
        """The step on the buffers: what is captured, and what warm-up runs eagerly."""
        self.logits_BV.copy_(self.body(self.model, self.token_ids_B, self.cache, self.active_B))


class GraphedRowStep:
    """A drop-in ``step`` for :func:`~genoforge.inference.stream.decode_stream`, replayed from
    a CUDA graph.

    Per call: the inputs are copied into the static buffers; the first ``warmup_steps`` calls
    after a (re)build run the step eagerly (on a side stream on CUDA), the next one captures it
    and every later call replays it; the returned logits are a copy (the next replay overwrites
    the buffer). A call whose cache layout differs from the captured one (a new cache, or
    :meth:`RowCache.widen_memory`) rebuilds: new buffers, warm-up, capture (module docstring).

    Args:
        warmup_steps: eager steps before each capture (:data:`GRAPH_WARMUP_STEPS`).
        emulate: run the captured body eagerly instead of capturing it, with the same buffers
            and control flow (CPU tests of everything but the graph itself).
        body: the step function to capture; default :func:`genoforge.inference.stream.row_step`
            as bound when the graph is built (benchmarks/predict.py wraps it to fix target
            lengths).
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
            return self._body()(model, token_ids_B, cache, active_B)
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
                    return self._body()(model, token_ids_B, cache, active_B)
                self.captures += 1
            static.replay()
        return static.logits_BV.clone()

    def _body(self) -> StepFn:
        return self.body or stream.row_step

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
        static = StaticRowStep(model, cache, self._body())
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
