"""Grammar-constrained greedy decoding of window targets: the contract, and the grammar side.

Shape legend: B decoder rows (one window each), S encoder tokens, V vocabulary.

The contract: every window's output parses. Each row keeps a state of the target grammar
(:class:`genoforge.genes.grammar.TargetGrammar`, built for that window's length); at every step
the logits of the ids the grammar does not allow next are set to -inf before the argmax, so only
allowed tokens are ever chosen, whatever the weights (random ones included). The grammar caps the
records per window and exons per transcript, so decoding ends; ``max_new_tokens`` caps it
further: a row that reaches the cap is cut back to the start of its last record and closed with
``<eos>``, and is reported as truncated. The last record is dropped even when its lines so far
parse, because a transcript block is only known to be complete when the next record starts: an
exon list cut by the cap would otherwise read as a whole, shorter transcript.

The grammar side of a batch is :class:`GrammarRows`: every row's automaton state and the masked
argmax. It runs on the host for every row at every step, so it is kept cheap: the allowed-token
mask of each distinct allowed set (:meth:`TargetGrammar.allowed_key`; few distinct sets recur:
fixed keywords, separators, digit ranges) is built once and kept as a row of a table on the
model's device; a step sends B row indices and gathers the masks with one ``index_select``
instead of building and copying a [B, V] array. The picks are exactly those of masking each
row's :meth:`TargetGrammar.allowed_mask` (a test checks it over many random states).

The decoding loop that drives these pieces is :func:`genoforge.inference.stream.decode_stream`,
the one decode engine (predict, generative validation, tests and benchmarks all run it).

Encoder input (:func:`encoder_batch`) is built exactly as training's collate builds it
(``genoforge.training.collate``): one document per row, ``input_bp`` the window-relative offset
of each token's first base.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from genoforge.errors import ConfigError
from genoforge.genes.grammar import (
    ROLE_FIRST_START,
    ROLE_INTRON_START,
    SLOT_HI,
    SLOT_LO,
    AllowedKey,
    GrammarState,
    TargetGrammar,
)
from genoforge.genes.inventory import MAX_NUMBER, NUMBERS, PARTIAL_BOTH, PARTIAL_LEFT
from genoforge.genes.window_models import WindowAnnotation
from genoforge.inference.head_guide import guide_track
from genoforge.inference.predict_config import DEFAULT_MAX_EXONS, DEFAULT_MAX_RECORDS

# Target tokens of real 10 kb windows (shared genomes): mean ~230, fly 99th percentile ~2,100.
DEFAULT_MAX_NEW_TOKENS = 4096
_FLOOR = -1e30  # the lowest logit an allowed token is picked with


class GrammarCache:
    """One :class:`TargetGrammar` per window length (most windows share one length), or with
    ``signals`` one :class:`~genoforge.genes.signal_grammar.SignalGrammar` per window.

    Building a grammar maps ~1,100 inventory tokens to ids; keep the last ``capacity`` ones
    (a genome of many short scaffolds has many distinct lengths). A signal grammar reads its
    window's bases (canonical splice sites; complete ORFs, a CDS cut only where its exon runs
    into the window's edge), so it is built for every window (~0.6 ms). Its ``clip_in_introns``
    (a CDS clipped at an outer exon where a canonical intron may run past the edge) is off unless
    the windows are guided by their contig's HMM parse (:mod:`genoforge.inference.hmm_anchor`):
    on its own a decoder could escape the ORF rule by a partial mark at such an exon.
    """

    def __init__(self, tokenizer, max_records: int = DEFAULT_MAX_RECORDS,
                 max_exons: int = DEFAULT_MAX_EXONS, capacity: int = 64, signals: bool = False,
                 clip_in_introns: bool = False):
        self.tokenizer = tokenizer
        self.clip_in_introns = clip_in_introns
        self.max_records = max_records
        self.max_exons = max_exons
        self.capacity = capacity
        self.signals = signals
        self._grammars: OrderedDict[int, TargetGrammar] = OrderedDict()

    def for_window(self, window_length: int, bases: str | None) -> TargetGrammar:
        """The grammar of one window: its signal grammar (``signals`` on and ``bases`` given),
        else the plain grammar of its length."""
        if not self.signals or bases is None:
            return self(window_length)
        from genoforge.genes.signal_grammar import SignalGrammar

        return SignalGrammar(self.tokenizer, bases[:window_length], max_records=self.max_records,
                             max_exons=self.max_exons, clip_in_introns=self.clip_in_introns)

    def __call__(self, window_length: int) -> TargetGrammar:
        grammar = self._grammars.get(window_length)
        if grammar is None:
            grammar = TargetGrammar(self.tokenizer, window_size=window_length,
                                    max_records=self.max_records, max_exons=self.max_exons)
            self._grammars[window_length] = grammar
            if len(self._grammars) > self.capacity:
                self._grammars.popitem(last=False)
        else:
            self._grammars.move_to_end(window_length)
        return grammar


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def encoder_batch(
    input_ids: Sequence[Sequence[int]],
    bp_lengths: np.ndarray,
    pad_id: int,
    device: torch.device | str = "cpu",
    length_multiple: int = 1,
    rows: int | None = None,
) -> dict:
    """The encoder fields of the model batch, one window (document 0) per row.

    Args:
        input_ids: encoder ids per window (DNA tokens, as ``GenoTokenizer.encode_dna`` gives).
        bp_lengths: bases per token id (``GenoTokenizer.bp_lengths()``).
        length_multiple: pad S up to a multiple of this (fixed shapes for compiled kernels).
        rows: pad the batch to this many rows (rows without a window are all padding).

    Returns:
        ``input_ids`` long [B, S], ``input_doc`` int32 [B, S] (0, or -1 on padding), ``input_bp``
        int32 [B, S], and ``docs_per_row`` = 1.
    """
    batch = max(rows or 0, len(input_ids))
    length = round_up(max((len(ids) for ids in input_ids), default=1) or 1, length_multiple)
    ids_BS = np.full((batch, length), pad_id, dtype=np.int64)
    doc_BS = np.full((batch, length), -1, dtype=np.int32)
    bp_BS = np.zeros((batch, length), dtype=np.int32)
    for b, ids in enumerate(input_ids):
        row = np.asarray(ids, dtype=np.int64)
        n = row.size
        ids_BS[b, :n] = row
        doc_BS[b, :n] = 0
        if n > 1:
            bp_BS[b, 1:n] = np.cumsum(bp_lengths[row[:-1]])
    return {
        "input_ids": torch.from_numpy(ids_BS).to(device),
        "input_doc": torch.from_numpy(doc_BS).to(device),
        "input_bp": torch.from_numpy(bp_BS).to(device),
        "docs_per_row": 1,
    }



def window_dna(tokenizer, ids: Sequence[int], length: int) -> str:
    """The bases of a window read back from its encoder ids (tokens that cover bases, in order;
    ``N`` where they fall short of ``length``), for callers that hold only the ids."""
    bp_lengths = tokenizer.bp_lengths()
    dna = "".join(tokenizer.id_to_token(int(i)) for i in ids if bp_lengths[int(i)] > 0)
    return (dna + "N" * max(0, length - len(dna)))[:length]


def record_start_ids(grammar: TargetGrammar) -> frozenset[int]:
    """Ids of the tokens that begin a record: ``transcript`` and the stand-alone feature types."""
    from genoforge.genes.inventory import FEATURE_TYPES, LINE_TRANSCRIPT

    return frozenset(grammar.id_of[token] for token in (LINE_TRANSCRIPT, *FEATURE_TYPES))


def cut_unfinished_record(tokens: list[int], starts: frozenset[int], eos_id: int) -> list[int]:
    """``<bos>`` + the records before the last one + ``<eos>`` (see the module docstring)."""
    for i in range(len(tokens) - 1, 0, -1):
        if tokens[i] in starts:  # these tokens only ever open a line
            return tokens[:i] + [eos_id]
    return tokens[:1] + [eos_id]

class GrammarRows:
    """The grammar side of ``rows`` decoder rows: each row's state, and the masked argmax.

    A row is active from :meth:`start` (its window's grammar, after ``<bos>``) until its target is
    complete or :meth:`stop` is called; an idle row allows every token (its pick is ignored).
    Masks are rows of one device table (module docstring): row 0 allows everything, the others
    one allowed set each, added as sets first occur. Past ``capacity`` sets (a genome's many
    coordinate ranges) the table is emptied and refilled with the sets the active rows need.
    All grammars must share one vocabulary (those of one :class:`GrammarCache` do).

    Args:
        rows: decoder rows (B).
        device: where the logits are (the table lives there).
        capacity: mask rows kept (each is V bools: ~5 KB at 5,000 tokens).
    """

    def __init__(self, rows: int, device: torch.device | str, capacity: int = 4096):
        if capacity <= rows:
            raise ConfigError(f"mask table capacity {capacity} must exceed the {rows} batch rows")
        self.device = torch.device(device)
        self.capacity = capacity
        self.grammars: list[TargetGrammar | None] = [None] * rows
        self.states: list[GrammarState | None] = [None] * rows
        self._keys: list[AllowedKey | None] = [None] * rows
        self._number_value: dict[int, int] = {}  # id -> value of "0".."999"
        # Each row's coordinate slot and hi digit (TargetGrammar.coordinate_slot), for a pointer.
        self.coordinate_slots = [0] * rows
        self.coordinate_his = [0] * rows
        self.last_coordinates = [0] * rows  # the coordinate each row wrote last (0 at first)
        self.furthest_coordinates = [0] * rows  # ... and the highest it wrote
        # Head guidance (genoforge.inference.head_guide): each row's guide track for its next
        # coordinate.
        self.guide_tracks = [0] * rows
        # the span of the values the coordinate being written may take ((0, -1) elsewhere)
        self.coordinate_lows = [0] * rows
        self.coordinate_highs = [-1] * rows
        self._mask_row = [0] * rows  # each row's row of the table
        self._vocab: dict[str, int] | None = None
        self._last_grammar: TargetGrammar | None = None
        self._row_of_key: dict[AllowedKey, int] = {}
        self._pending: list[tuple[AllowedKey, TargetGrammar]] = []  # added since the last upload
        self._table: Tensor | None = None  # [>= len(_row_of_key) + 1, V] bool
        self._width = 0  # V of the table (the logits' width)

    def start(self, b: int, grammar: TargetGrammar, bos_id: int) -> None:
        """Row ``b`` begins a target in ``grammar``: ``<bos>`` is accepted already.

        Raises:
            ConfigError: ``grammar`` maps tokens to other ids than the grammars before it.
        """
        if self._vocab is None:
            self._vocab = grammar.id_of
        elif grammar is not self._last_grammar and grammar.id_of != self._vocab:
            raise ConfigError("the grammars of one decoding batch must share one vocabulary")
        self._last_grammar = grammar  # most windows share one grammar: compare vocabularies once
        if not self._number_value:
            self._number_value = {grammar.id_of[n]: v for v, n in enumerate(NUMBERS)}
        self.grammars[b] = grammar
        self.last_coordinates[b] = self.furthest_coordinates[b] = 0
        state = grammar.advance(grammar.start_state(), bos_id)
        self._enter(b, grammar, state, grammar.allowed_key(state))

    def stop(self, b: int) -> None:
        """Row ``b`` becomes idle (its window was finished or cut)."""
        self.grammars[b] = self.states[b] = self._keys[b] = None
        self._mask_row[b] = 0
        self.coordinate_slots[b] = self.coordinate_his[b] = self.last_coordinates[b] = 0
        self.furthest_coordinates[b] = 0
        self.guide_tracks[b] = 0
        self.coordinate_lows[b], self.coordinate_highs[b] = 0, -1

    def advance(self, b: int, token_id: int) -> bool:
        """Feed ``token_id`` to active row ``b``; True once its target is complete (row idle).

        Raises:
            ValueError: the token is not allowed in the row's state.
        """
        grammar = self.grammars[b]
        assert grammar is not None, f"row {b} is idle"
        was_lo, hi = self.coordinate_slots[b] == SLOT_LO, self.coordinate_his[b]
        state, key = grammar.advance_keyed(self.states[b], self._keys[b], token_id)
        if was_lo:  # a coordinate is complete: hi : lo
            self.last_coordinates[b] = hi * (MAX_NUMBER + 1) + self._number_value[token_id]
            self.furthest_coordinates[b] = max(self.furthest_coordinates[b], self.last_coordinates[b])
        if grammar.is_final(state):
            self.stop(b)
            return True
        self._enter(b, grammar, state, key)
        return False

    _PER_ROW = ("grammars", "states", "_keys", "coordinate_slots", "coordinate_his", "last_coordinates",
                "furthest_coordinates", "guide_tracks", "coordinate_lows", "coordinate_highs", "_mask_row")

    def reorder(self, parents: Sequence[int]) -> None:
        """Row b takes over row ``parents[b]``'s state (beam search: each hypothesis continues
        one of the step before)."""
        for name in self._PER_ROW:
            values = getattr(self, name)
            setattr(self, name, [values[p] for p in parents])

    def pick(self, logits_BV: Tensor) -> list[int]:
        """The highest-scoring allowed token of every row (idle rows: of all tokens).

        Identical to masking each active row's ``allowed_mask`` (cut or padded with False to the
        logits' width) with -inf and taking the argmax (an allowed token a pointer scored -inf
        still beats every forbidden one). The one host sync of a decoding step.
        """
        return self.masked_logits(logits_BV).argmax(dim=-1).tolist()

    def masked_logits(self, logits_BV: Tensor) -> Tensor:
        """float32 ``logits_BV`` with every row's forbidden tokens at -inf and its allowed ones
        at least ``_FLOOR`` (an allowed token a pointer scored -inf still beats them)."""
        mask_BV = self.masks(logits_BV.shape[-1])
        return torch.where(mask_BV, logits_BV.float().clamp(min=_FLOOR), float("-inf"))

    def masks(self, width: int) -> Tensor:
        """[B, width] bool on the device: every row's allowed tokens (idle rows: all)."""
        if width != self._width or len(self._row_of_key) >= self.capacity:
            self._reset(width)
        if self._pending or self._table is None:
            self._upload()
        table = self._table
        assert table is not None
        rows_B = torch.tensor(self._mask_row, dtype=torch.long).to(self.device, non_blocking=True)
        return table.index_select(0, rows_B)

    # -- the mask table -----------------------------------------------------------------------

    def _enter(self, b: int, grammar: TargetGrammar, state: GrammarState, key: AllowedKey) -> None:
        self.states[b] = state
        self._keys[b] = key
        self.coordinate_slots[b], self.coordinate_his[b] = grammar.coordinate_slot(state)
        role = grammar.coordinate_role(state)
        if role == ROLE_FIRST_START and state.partial in (PARTIAL_LEFT, PARTIAL_BOTH):
            role = ROLE_INTRON_START  # cut by the window's left edge: an intron may come first
        self.guide_tracks[b] = guide_track(role, state.strand)
        if self.coordinate_slots[b] == SLOT_HI:  # a coordinate's lo digit keeps its hi digit's span
            self.coordinate_lows[b], self.coordinate_highs[b] = grammar.coordinate_range(state)
        row = self._row_of_key.get(key)
        self._mask_row[b] = row if row is not None else self._add(key, grammar)

    def _add(self, key: AllowedKey, grammar: TargetGrammar) -> int:
        row = len(self._row_of_key) + 1
        self._row_of_key[key] = row
        self._pending.append((key, grammar))
        return row

    def _reset(self, width: int) -> None:
        """An empty table at ``width``, holding only the sets the active rows need."""
        self._width = width
        self._table = None
        self._row_of_key.clear()
        self._pending.clear()
        for b, grammar in enumerate(self.grammars):
            if grammar is not None:
                key = self._keys[b]
                row = self._row_of_key.get(key)
                self._mask_row[b] = row if row is not None else self._add(key, grammar)

    def _upload(self) -> None:
        """Copy the masks of the sets added since the last step into the device table."""
        width = self._width
        used = len(self._row_of_key) + 1
        first = used - len(self._pending)
        if self._table is None or self._table.shape[0] < used:
            old = self._table
            table = torch.zeros(max(used, 64, 2 * (0 if old is None else old.shape[0])), width,
                                dtype=torch.bool, device=self.device)
            table[0] = True  # idle rows: anything (their pick is ignored)
            if old is not None:
                table[:first] = old[:first]
            self._table = table
        block = np.zeros((len(self._pending), width), dtype=bool)
        for i, (key, grammar) in enumerate(self._pending):
            mask = grammar.mask_of_key(key)
            block[i, : min(width, mask.size)] = mask[:width]
        self._table[first:used] = torch.from_numpy(block).to(self.device, non_blocking=True)
        self._pending.clear()


@dataclass
class WindowPrediction:
    """One decoded window: its target ids, the parsed annotation, and whether it was cut short."""

    token_ids: list[int]
    annotation: WindowAnnotation
    truncated: bool
