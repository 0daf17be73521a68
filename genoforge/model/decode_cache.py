"""The decode cache: per-row state of incremental decoding, one token per row and step.

Shape legend: B decoder rows, G key/value heads, W ring slots (the decoder look-back), M memory
tokens per row, d head dim.

Every row decodes its own window at its own position (continuous batching: a row that finishes
takes the next window at once, :mod:`genoforge.inference.stream`). Per layer the cache holds a
ring buffer of the last W self-attention keys and values (keys already rotated; the token at
position p sits in slot p mod W) and the cross-attention keys and values of the row's memory,
computed once when the window is loaded (:meth:`GenoforgeDecoder.cross_kv`).
:meth:`GenoforgeDecoder.step` reads and updates it.

CUDA graphs: a step only reads these tensors and updates them in place (index writes, ``+=``),
so they keep their addresses from step to step and a captured step can be replayed on them;
:meth:`RowCache.widen_memory` allocates new cross-attention tensors (a changed layout, which a
graph must be captured again for). Nothing here reads a tensor's value on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from genoforge.model.config import ModelConfig


class LayerKV(NamedTuple):
    """One decoder layer's tensors of a :class:`RowCache` (views of its lists, not copies)."""

    self_k_BGWd: Tensor
    self_v_BGWd: Tensor
    cross_k_BGMd: Tensor
    cross_v_BGMd: Tensor


@dataclass
class StepMasks:
    """Where one step writes and what it may read, shared by every layer of the step.

    ``rows_B``/``slot_B`` index each row's ring slot for this step's key and value;
    ``self_visible_B11W`` the slots a row's query may attend (its own last W positions);
    ``cross_visible_B11M`` its window's memory tokens; ``valid_B1`` the tokens the FFN counts.
    """

    rows_B: Tensor
    slot_B: Tensor
    self_visible_B11W: Tensor
    cross_visible_B11M: Tensor
    valid_B1: Tensor


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
    # The coordinate pointer (genoforge.model.pointer), None without one: each row's boundary
    # keys [B, L, P] (L a multiple of 1000) and which are its window's [B, L]; what the grammar
    # says the next token is (coord_slot_B: SLOT_NONE / SLOT_HI / SLOT_LO; coord_hi_B: the hi
    # digit written at a lo slot), set by the decoding loop before every step.
    pointer_keys_BLP: Tensor | None = None
    pointer_valid_BL: Tensor | None = None
    coord_slot_B: Tensor | None = None
    coord_hi_B: Tensor | None = None
    coord_previous_B: Tensor | None = None  # the coordinate each row wrote last (0 at first)
    coord_range_B2: Tensor | None = None  # the lowest and highest value the grammar allows now
    # Head guidance (genoforge.inference.head_guide), None without: each row's scaled guide
    # tracks [B, R, L] (L as the keys') and the track its next coordinate reads [B].
    guide_BRL: Tensor | None = None
    guide_track_B: Tensor | None = None

    @classmethod
    def empty(cls, config: ModelConfig, rows: int, memory_width: int, device, dtype,
              max_positions: int) -> RowCache:
        """Zeroed state; without a decoder look-back window the ring holds ``max_positions``."""
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

    def tensors(self) -> list[Tensor]:
        """Every tensor of the state (what a captured step has baked in)."""
        pointer = [t for t in (self.pointer_keys_BLP, self.pointer_valid_BL, self.coord_slot_B,
                               self.coord_hi_B, self.coord_previous_B, self.coord_range_B2, self.guide_BRL,
                               self.guide_track_B)
                   if t is not None]
        return [self.position_B, self.slot_pos_BW, self.memory_ok_BM,
                *self.self_k, *self.self_v, *self.cross_k, *self.cross_v, *pointer]

    def load_pointer(self, row: int, keys_LP: Tensor, valid_L: Tensor, guide_RL: Tensor | None = None) -> None:
        """Row ``row``'s boundary keys (allocated, or widened to a multiple of 1000, as needed)
        and, for head guidance, its guide tracks."""
        from genoforge.model.pointer import COORD_BLOCK

        rows = self.position_B.shape[0]
        need = -(-keys_LP.shape[0] // COORD_BLOCK) * COORD_BLOCK
        if guide_RL is not None:
            self._load_guide(row, guide_RL, max(need, self.pointer_keys_BLP.shape[1]
                                                if self.pointer_keys_BLP is not None else 0))
        if self.pointer_keys_BLP is None or self.pointer_keys_BLP.shape[1] < need:
            keys = torch.zeros(rows, need, keys_LP.shape[1], device=keys_LP.device, dtype=keys_LP.dtype)
            valid = torch.zeros(rows, need, dtype=torch.bool, device=keys_LP.device)
            if self.pointer_keys_BLP is not None:  # widened: the other rows keep their windows
                old = self.pointer_keys_BLP.shape[1]
                keys[:, :old] = self.pointer_keys_BLP
                valid[:, :old] = self.pointer_valid_BL
            self.pointer_keys_BLP, self.pointer_valid_BL = keys, valid
        if self.coord_slot_B is None:
            self.coord_slot_B = torch.zeros(rows, dtype=torch.long, device=keys_LP.device)
            self.coord_hi_B = torch.zeros(rows, dtype=torch.long, device=keys_LP.device)
            self.coord_previous_B = torch.zeros(rows, dtype=torch.long, device=keys_LP.device)
            self.coord_range_B2 = torch.zeros(rows, 2, dtype=torch.long, device=keys_LP.device)
            self.coord_range_B2[:, 1] = -1
        n = keys_LP.shape[0]
        self.pointer_keys_BLP[row].zero_()
        self.pointer_keys_BLP[row, :n] = keys_LP
        self.pointer_valid_BL[row] = False
        self.pointer_valid_BL[row, :n] = valid_L

    def _load_guide(self, row: int, guide_RL: Tensor, width: int) -> None:
        rows = self.position_B.shape[0]
        if self.guide_BRL is None or self.guide_BRL.shape[2] < width:
            guide = torch.zeros(rows, guide_RL.shape[0], width, device=guide_RL.device, dtype=torch.float32)
            if self.guide_BRL is not None:
                guide[:, :, : self.guide_BRL.shape[2]] = self.guide_BRL
            self.guide_BRL = guide
        if self.guide_track_B is None:
            self.guide_track_B = torch.zeros(rows, dtype=torch.long, device=guide_RL.device)
        self.guide_BRL[row].zero_()
        self.guide_BRL[row, :, : guide_RL.shape[1]] = guide_RL

    def set_row_track(self, row: int, track: int, values: Tensor) -> None:
        """Overwrite guide track ``track`` of row ``row`` with ``values`` [<= L] (the rest 0)."""
        assert self.guide_BRL is not None
        self.guide_BRL[row, track].zero_()
        self.guide_BRL[row, track, : values.shape[0]] = values.to(self.guide_BRL.device)

    def guide_bias(self) -> Tensor | None:
        """[B, L] each row's guide track for its next coordinate (None without guidance)."""
        if self.guide_BRL is None or self.guide_track_B is None:
            return None
        rows, _, width = self.guide_BRL.shape
        pick = self.guide_track_B[:, None, None].expand(rows, 1, width)
        return self.guide_BRL.gather(1, pick).squeeze(1)

    def set_coordinate_slots(self, slots: list[int], his: list[int], previous: list[int],
                             lows: list[int] | None = None, highs: list[int] | None = None,
                             tracks: list[int] | None = None) -> None:
        """Every row's coordinate slot, hi digit, last written coordinate, the span of values
        the grammar allows (``lows`` .. ``highs``; none given: any) and (with guidance) guide
        track for the next step (in place: a captured step reads these tensors)."""
        if (self.coord_slot_B is None or self.coord_hi_B is None or self.coord_previous_B is None
                or self.coord_range_B2 is None):
            return
        rows = len(slots)
        lows = lows if lows is not None else [0] * rows
        highs = highs if highs is not None else [-1] * rows
        guided = tracks is not None and self.guide_track_B is not None
        columns = [slots, his, previous, lows, highs] + ([tracks] if guided else [])
        values = torch.tensor(columns, dtype=torch.long)
        self.coord_slot_B.copy_(values[0], non_blocking=True)
        self.coord_hi_B.copy_(values[1], non_blocking=True)
        self.coord_previous_B.copy_(values[2], non_blocking=True)
        self.coord_range_B2.copy_(values[3:5].T, non_blocking=True)
        if guided:
            self.guide_track_B.copy_(values[5], non_blocking=True)

    def reorder(self, parents_B: Tensor) -> None:
        """Row b takes over row ``parents_B[b]``'s state, in place (a captured step keeps its
        buffers): beam search's hypotheses continuing those of the step before."""
        for tensor in self.tensors():
            tensor.copy_(tensor.index_select(0, parents_B))

    def layer(self, index: int) -> LayerKV:
        return LayerKV(self.self_k[index], self.self_v[index], self.cross_k[index], self.cross_v[index])

    def widen_memory(self, width: int) -> None:
        """Pad every row's memory to ``width`` tokens (models without a compressor: M = S varies)."""
        extra = width - self.memory_width
        if extra <= 0:
            return
        self.cross_k = [F.pad(t, (0, 0, 0, extra)) for t in self.cross_k]
        self.cross_v = [F.pad(t, (0, 0, 0, extra)) for t in self.cross_v]
        self.memory_ok_BM = F.pad(self.memory_ok_BM, (0, extra), value=False)

    def load(self, row: int, cross_k: list[Tensor], cross_v: list[Tensor], memory_ok_M: Tensor) -> None:
        """Start a window in ``row``: its cross K/V (per layer [G, M, d]), an empty ring, position 0."""
        width = memory_ok_M.shape[0]
        self.widen_memory(width)
        for layer, (k, v) in enumerate(zip(cross_k, cross_v, strict=True)):
            self.cross_k[layer][row].zero_()
            self.cross_v[layer][row].zero_()
            self.cross_k[layer][row, :, :width] = k
            self.cross_v[layer][row, :, :width] = v
        self.memory_ok_BM[row] = False
        self.memory_ok_BM[row, :width] = memory_ok_M
        self.slot_pos_BW[row] = -1
        self.position_B[row] = 0

    def begin_step(self, active_B: Tensor) -> StepMasks:
        """Claim each row's ring slot for the position it is fed now, and build the step's masks.

        Rows where ``active_B`` is False hold no window; they are computed on padding and may
        see no memory at all, so they see all of it rather than produce NaN.
        """
        window = self.slot_pos_BW.shape[1]
        rows_B = torch.arange(self.position_B.shape[0], device=self.position_B.device)
        slot_B = self.position_B % window
        self.slot_pos_BW[rows_B, slot_B] = self.position_B
        visible_BW = (self.slot_pos_BW >= 0) & (self.slot_pos_BW > self.position_B[:, None] - window)
        cross_BM = self.memory_ok_BM | ~active_B[:, None]
        valid_B1 = torch.ones(rows_B.shape[0], 1, dtype=torch.bool, device=rows_B.device)
        return StepMasks(rows_B, slot_B, visible_BW[:, None, None, :], cross_BM[:, None, None, :], valid_B1)
