"""A module-global cache of CUDA graphs that build block lists (:func:`build_block_lists`).

:data:`GRAPH_BLOCK_MASKS` (module state: benchmarks/model.py --eager_masks turns it off) and the
cache below live here alone; :mod:`genoforge.model.masks` calls :func:`build_block_lists`.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict

import torch
from torch import Tensor

from genoforge.model.block_lists import block_lists

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
