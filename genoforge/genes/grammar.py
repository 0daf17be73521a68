"""The target grammar as an automaton over token ids, for constrained decoding.

The automaton accepts exactly the token sequences that
:func:`genoforge.genes.target.parse_target_tokens` accepts with the same ``window_size``,
``max_records`` and ``max_exons`` (a property test walks it at random and parses every walk, and
mutates real targets to check that both reject the same ones). So a decoder that only ever picks
an allowed token writes a target that parses, and always ends: the record count is capped and
coordinates within a transcript strictly increase.

Beyond the line shapes (docs/target-format.md) the state carries a few registers so that the
value constraints are enforced token by token: coordinates stay inside the window, every end is
after its start, exons increase with at least one intron base between them, the CDS starts and
ends inside exons, and gene indices are numbered in order of first appearance. A coordinate is
two tokens (``hi : lo``): the allowed ``hi`` are those for which some ``lo`` completes a valid
value, so no allowed prefix is a dead end.

Usage::

    grammar = TargetGrammar(tokenizer, window_size=10000)   # or a token -> id mapping
    state = grammar.start_state()
    while not grammar.is_final(state):
        mask = grammar.allowed_mask(state)                  # numpy bool [vocab_size]
        token_id = pick(logits, mask)
        state = grammar.advance(state, token_id)

States are small immutable values: keep one per beam or batch row.

Decoding calls the automaton for every row at every step, so the per-token path is kept cheap:
what may come next is memoised (:meth:`TargetGrammar.allowed_key` names it with a hashable key,
equal for every grammar over the same vocabulary, so a decoder can keep one mask per key on its
device), and transitions build the next state directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from genoforge.errors import ConfigError, TokenizerError
from genoforge.genes import inventory as inv

COORD_BASE = inv.MAX_NUMBER + 1
MAX_COORD = COORD_BASE * COORD_BASE - 1

# Line kinds and the slots of each line after its head token.
_GAP, _DONE = "gap", "done"
_TX, _EXON, _CDS, _FEAT = "transcript", "exon", "cds", "feature"
_TEMPLATES = {
    _TX: ("head", "tab", "strand", "tab", "biotype", "tab", "gene", "tab", "partial", "nl"),
    _EXON: ("head", "tab", "s_hi", "sep", "s_lo", "tab", "e_hi", "sep", "e_lo", "nl"),
    _CDS: ("head", "tab", "s_hi", "sep", "s_lo", "tab", "e_hi", "sep", "e_lo", "tab", "phase",
           "nl"),
    _FEAT: ("head", "tab", "fstrand", "tab", "s_hi", "sep", "s_lo", "tab", "e_hi", "sep", "e_lo",
            "tab", "partial", "nl"),
}
_HEADS = {inv.LINE_TRANSCRIPT: _TX, inv.LINE_EXON: _EXON, inv.LINE_CDS: _CDS}
_HEADS.update({feature_type: _FEAT for feature_type in inv.FEATURE_TYPES})
_FIXED_SLOTS = {
    "tab": (inv.TAB,),
    "nl": (inv.NEWLINE,),
    "sep": (inv.COORD_SEP,),
    "strand": inv.STRANDS,
    "fstrand": (inv.PLUS, inv.MINUS, inv.DOT),
    "biotype": inv.TRANSCRIPT_BIOTYPES,
    "partial": inv.PARTIAL_MARKS,
}
_NUMBER_VALUE = {token: value for value, token in enumerate(inv.NUMBERS)}
Intervals = tuple[tuple[int, int], ...]  # inclusive (low, high) value ranges
# What may come next: fixed tokens, or (when the second item is set) number values. Hashable, and
# the allowed ids follow from it and the vocabulary alone: the key of every mask cache.
AllowedKey = tuple[tuple[str, ...], Intervals | None]
# A coordinate's allowed digits depend on the line's registers (new ones with every transcript of
# a genome), so that memo is bounded: when full it is emptied and refilled, which only costs
# recomputation (~16k small tuples, a few MB, per grammar).
_DIGITS_MEMO_SIZE = 1 << 14
_ALL_PHASES: Intervals = ((0, 2),)


# What the next token of a state is, for a decoder that writes coordinates differently from other
# numbers (genoforge.model.pointer): not a coordinate digit, a coordinate's hi or its lo digit.
SLOT_NONE, SLOT_HI, SLOT_LO = 0, 1, 2
_COORDINATE_SLOTS = {"s_hi": SLOT_HI, "e_hi": SLOT_HI, "s_lo": SLOT_LO, "e_lo": SLOT_LO}
# What a transcript's coordinate is (for head guidance, genoforge.inference.head_guide): none (not
# a coordinate, or a feature's), a first exon's start, the start of an exon after an intron, an
# exon's end, the CDS start, the CDS end.
ROLE_NONE, ROLE_FIRST_START, ROLE_INTRON_START, ROLE_EXON_END, ROLE_CDS_START, ROLE_CDS_END = range(6)


class GrammarState(NamedTuple):
    """Where the automaton is: the line being written and the registers the checks need.

    ``line`` is ``gap`` between lines (``prev`` names the last complete line: ``start`` before
    ``<bos>``, ``bos`` right after it) or a line kind with ``slot`` the index of the next slot.
    ``exons`` are the current transcript's exons so far; ``hi`` the thousands digit of the
    coordinate being written; ``start`` and ``end`` the start and end values of the current line
    once written. ``strand``, ``coding`` (biotype ``protein_coding``) and ``partial`` describe the
    current transcript (empty / False outside one); this grammar does not read them, the
    signal-aware :class:`genoforge.genes.signal_grammar.SignalGrammar` does.

    A named tuple, not a frozen dataclass: decoding builds one per row per step, and a frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost ~1.9 us against ~0.3.
    """

    line: str = _GAP
    slot: int = 0
    prev: str = "start"
    n_records: int = 0
    n_genes: int = 0
    exons: tuple[tuple[int, int], ...] = ()
    hi: int = -1
    start: int = -1
    strand: str = ""
    coding: bool = False
    partial: str = ""
    end: int = -1


class TargetGrammar:
    """Automaton accepting exactly the token sequences ``parse_target_tokens`` accepts.

    Args:
        vocab: a token -> id mapping, or a tokenizer with ``token_to_id(token)`` and
            ``vocab_size`` (a GenoTokenizer). Every inventory token the grammar uses must be in it.
        window_size: W; starts < W, ends <= W (None: the format's limit, 999,999).
        max_records: records (transcripts + features) per target, so decoding always ends.
        max_exons: exons per transcript.

    Raises:
        TokenizerError: a grammar token is missing from the vocabulary.
        ConfigError: a limit is out of range.
    """

    def __init__(
        self,
        vocab: Mapping[str, int] | Any,
        window_size: int | None = None,
        max_records: int = 512,
        max_exons: int = 1000,
    ):
        if window_size is not None and not 1 <= window_size <= MAX_COORD:
            raise ConfigError(f"window size {window_size} outside 1..{MAX_COORD}")
        if max_records < 0 or max_exons < 1:
            raise ConfigError("max_records must be >= 0 and max_exons >= 1")
        self.window_size = window_size
        self.max_end = window_size if window_size is not None else MAX_COORD
        self.max_records = max_records
        self.max_exons = max_exons
        tokens = (
            inv.BOS, inv.EOS, inv.TAB, inv.NEWLINE, inv.COORD_SEP, *_HEADS,
            *inv.STRANDS, inv.DOT, *inv.TRANSCRIPT_BIOTYPES, *inv.PARTIAL_MARKS, *inv.NUMBERS,
        )
        if hasattr(vocab, "token_to_id"):
            lookup = vocab.token_to_id
            self.vocab_size = int(vocab.vocab_size)
        else:
            mapping = dict(vocab)

            def lookup(token: str) -> int:
                if token not in mapping:
                    raise TokenizerError(
                        f"target token {token!r} is not in the vocabulary; run "
                        "`genoforge tokens append` on this tokenizer"
                    )
                return mapping[token]

            self.vocab_size = max(mapping.values()) + 1
        self.id_of: dict[str, int] = {token: int(lookup(token)) for token in dict.fromkeys(tokens)}
        self.token_of: dict[int, str] = {i: token for token, i in self.id_of.items()}
        self._number_ids = np.array([self.id_of[t] for t in inv.NUMBERS], dtype=np.int64)
        self._mask_cache: dict[tuple[str, ...], np.ndarray] = {}
        self._digits_memo: dict[tuple[bool, Intervals, int], AllowedKey] = {}

    # -- public API ---------------------------------------------------------------------------

    def start_state(self) -> GrammarState:
        return GrammarState()

    def is_final(self, state: GrammarState) -> bool:
        """True once ``<eos>`` has been accepted (nothing more is allowed)."""
        return state.line == _DONE

    def allowed_tokens(self, state: GrammarState) -> list[str]:
        """The token strings allowed next."""
        fixed, numbers = self._expect(state)
        if numbers is None:
            return list(fixed)
        return [inv.NUMBERS[v] for low, high in numbers for v in range(low, high + 1)]

    def allowed_mask(self, state: GrammarState) -> np.ndarray:
        """Boolean mask over the vocabulary (``vocab_size``) of the ids allowed next (a fresh copy)."""
        return self.mask_of_key(self._expect(state)).copy()

    def allowed_ids(self, state: GrammarState) -> np.ndarray:
        """The ids allowed next, sorted (int64)."""
        return np.flatnonzero(self.mask_of_key(self._expect(state)))

    def allowed_key(self, state: GrammarState) -> AllowedKey:
        """A hashable name of the set of tokens allowed next.

        States with equal keys allow the same tokens, in this grammar and in every other one over
        the same vocabulary (whatever its window size and limits), so callers may cache anything
        derived from the allowed set under this key; :meth:`mask_of_key` gives the mask.
        """
        return self._expect(state)

    def mask_of_key(self, key: AllowedKey) -> np.ndarray:
        """The read-only boolean mask (``vocab_size``) of an :meth:`allowed_key`.

        Masks of fixed-token sets (a few dozen) are cached; digit-range masks are built on each
        call (their keys are many: a decoder keeps those it meets, see ``GrammarRows``).
        """
        fixed, numbers = key
        if numbers is None:
            mask = self._mask_cache.get(fixed)
            if mask is None:
                mask = np.zeros(self.vocab_size, dtype=bool)
                mask[[self.id_of[t] for t in fixed]] = True
                mask.flags.writeable = False
                self._mask_cache[fixed] = mask
            return mask
        mask = np.zeros(self.vocab_size, dtype=bool)
        for low, high in numbers:
            mask[self._number_ids[low : high + 1]] = True
        mask.flags.writeable = False
        return mask

    def advance(self, state: GrammarState, token_id: int) -> GrammarState:
        """The state after ``token_id``. Raises ValueError for a token that is not allowed."""
        token = self.token_of.get(int(token_id))
        if token is None:
            raise ValueError(f"token id {token_id} is not a target-grammar token")
        return self.advance_token(state, token)

    def advance_token(self, state: GrammarState, token: str) -> GrammarState:
        """:meth:`advance` by token string."""
        self._check(state, self._expect(state), token)
        return self._step(state, token)

    def advance_keyed(
        self, state: GrammarState, key: AllowedKey, token_id: int
    ) -> tuple[GrammarState, AllowedKey]:
        """:meth:`advance` for a caller that holds ``key == allowed_key(state)`` (a decoder's
        row): returns the next state and its key, computing each once. Raises ValueError as
        :meth:`advance` does."""
        token = self.token_of.get(token_id)
        if token is None:
            raise ValueError(f"token id {token_id} is not a target-grammar token")
        self._check(state, key, token)
        state = self._step(state, token)
        return state, self._expect(state)

    @staticmethod
    def coordinate_slot(state: GrammarState) -> tuple[int, int]:
        """(SLOT_NONE / SLOT_HI / SLOT_LO, the hi digit written at a lo slot, else 0) of the token
        allowed next."""
        if state.line in (_GAP, _DONE):
            return SLOT_NONE, 0
        slot = _COORDINATE_SLOTS.get(_TEMPLATES[state.line][state.slot], SLOT_NONE)
        return slot, (state.hi if slot == SLOT_LO else 0)

    @staticmethod
    def coordinate_role(state: GrammarState) -> int:
        """The ``ROLE_*`` of the coordinate being written in ``state`` (ROLE_NONE elsewhere)."""
        line = state.line
        if line == _EXON:
            field = _TEMPLATES[_EXON][state.slot]
            if field in ("s_hi", "s_lo"):
                return ROLE_INTRON_START if state.exons else ROLE_FIRST_START
            return ROLE_EXON_END if field in ("e_hi", "e_lo") else ROLE_NONE
        if line == _CDS:
            field = _TEMPLATES[_CDS][state.slot]
            if field in ("s_hi", "s_lo"):
                return ROLE_CDS_START
            return ROLE_CDS_END if field in ("e_hi", "e_lo") else ROLE_NONE
        return ROLE_NONE

    def coordinate_values(self, state: GrammarState) -> Intervals:
        """The allowed values of the coordinate being written in ``state`` (inclusive ranges;
        empty outside a coordinate)."""
        if state.line in (_GAP, _DONE):
            return ()
        field = _TEMPLATES[state.line][state.slot]
        if field not in _COORDINATE_SLOTS:
            return ()
        return self._values(state, field[0])

    def coordinate_range(self, state: GrammarState) -> tuple[int, int]:
        """(lowest, highest) value the coordinate being written in ``state`` may take (0, -1
        outside a coordinate): the span of the allowed values, for a pointer's scores."""
        values = self.coordinate_values(state)
        if not values:
            return 0, -1
        return min(low for low, _ in values), max(high for _, high in values)

    @staticmethod
    def field_of(state: GrammarState) -> str:
        """The field written next: a template slot name (``strand``, ``biotype``, ``s_hi`` ...),
        or ``gap`` between lines, ``done`` after ``<eos>``."""
        if state.line in (_GAP, _DONE):
            return state.line
        return _TEMPLATES[state.line][state.slot]

    @staticmethod
    def after_exon(state: GrammarState) -> bool:
        """True between lines right after a transcript's exon line (another exon may follow)."""
        return state.line == _GAP and state.prev == _EXON

    def accepts(self, tokens: list[str]) -> bool:
        """True if the whole token sequence is a complete target."""
        state = self.start_state()
        try:
            for token in tokens:
                state = self.advance_token(state, token)
        except ValueError:
            return False
        return self.is_final(state)

    # -- the automaton ------------------------------------------------------------------------

    @staticmethod
    def _check(state: GrammarState, key: AllowedKey, token: str) -> None:
        fixed, numbers = key
        if numbers is None:
            if token in fixed:
                return
        else:
            value = _NUMBER_VALUE.get(token)
            if value is not None:
                for low, high in numbers:
                    if low <= value <= high:
                        return
        raise ValueError(f"token {token!r} not allowed here (state {state})")

    def _expect(self, state: GrammarState) -> AllowedKey:
        """What may come next: fixed tokens, or (when the second item is set) number values."""
        if state.line == _DONE:
            return (), None
        if state.line == _GAP:
            return self._heads(state), None
        slot = _TEMPLATES[state.line][state.slot]
        fixed = _FIXED_SLOTS.get(slot)
        if fixed is not None:
            return fixed, None
        if slot == "gene":
            return (), ((0, min(state.n_genes, inv.MAX_NUMBER)),)
        if slot == "phase":
            return (), self._phases(state)
        values = self._values(state, slot[0])
        high_digit = slot.endswith("_hi")
        memo_key = (high_digit, values, -1 if high_digit else state.hi)
        key = self._digits_memo.get(memo_key)
        if key is None:
            key = (), _digits(values, high_digit, state.hi)
            if len(self._digits_memo) >= _DIGITS_MEMO_SIZE:
                self._digits_memo.clear()
            self._digits_memo[memo_key] = key
        return key

    def _heads(self, state: GrammarState) -> tuple[str, ...]:
        if state.prev == "start":
            return (inv.BOS,)
        if state.prev == _TX:
            return (inv.LINE_EXON,)
        heads: list[str] = []
        if state.prev == _EXON:
            if len(state.exons) < self.max_exons and state.exons[-1][1] + 1 <= self.max_end - 1:
                heads.append(inv.LINE_EXON)
            heads.append(inv.LINE_CDS)
        if state.n_records < self.max_records:
            heads += [inv.LINE_TRANSCRIPT, *inv.FEATURE_TYPES]
        heads.append(inv.EOS)
        return tuple(heads)

    def _phases(self, state: GrammarState) -> Intervals:
        """Allowed phases of the current cds line (any, here)."""
        return _ALL_PHASES

    def _values(self, state: GrammarState, which: str) -> Intervals:
        """Allowed values of the current line's start (``s``) or end (``e``) coordinate."""
        w = self.max_end
        if state.line == _EXON:
            if which == "s":
                return ((state.exons[-1][1] + 1 if state.exons else 0, w - 1),)
            return ((state.start + 1, w),)
        if state.line == _CDS:
            if which == "s":
                return tuple((s, e - 1) for s, e in state.exons)
            return tuple(
                (max(s, state.start) + 1, e) for s, e in state.exons if e > state.start
            )
        if which == "s":  # feature
            return ((0, w - 1),)
        return ((state.start + 1, w),)

    def _step(self, state: GrammarState, token: str) -> GrammarState:
        # Fields in declaration order (line, slot, prev, n_records, n_genes, exons, hi, start,
        # strand, coding, partial, end): building the state directly costs a fraction of
        # dataclasses.replace, and this runs for every row at every decoding step.
        (line, slot_index, prev, n_records, n_genes, exons, hi, start, strand, coding, partial,
         end) = state
        if line == _GAP:
            if token == inv.BOS:
                return GrammarState(line, slot_index, "bos", n_records, n_genes, exons, hi, start,
                                    strand, coding, partial, end)
            if token == inv.EOS:
                return GrammarState(_DONE, slot_index, prev, n_records, n_genes, exons, hi, start,
                                    strand, coding, partial, end)
            kind = _HEADS[token]
            if kind == _TX:
                n_records, exons = n_records + 1, ()
                strand, coding, partial = "", False, ""
            elif kind == _FEAT:
                n_records += 1
                strand, coding, partial = "", False, ""
            return GrammarState(kind, 1, prev, n_records, n_genes, exons, hi, start, strand,
                                coding, partial, end)
        slot = _TEMPLATES[line][slot_index]
        if slot == "nl":
            return GrammarState(_GAP, 0, line, n_records, n_genes, exons, -1, -1, strand, coding,
                                partial, -1)
        if slot == "gene":
            n_genes = max(n_genes, _NUMBER_VALUE[token] + 1)
        elif slot.endswith("_hi"):
            hi = _NUMBER_VALUE[token]
        elif slot == "s_lo":
            start = hi * COORD_BASE + _NUMBER_VALUE[token]
        elif slot == "e_lo":
            end = hi * COORD_BASE + _NUMBER_VALUE[token]
            if line == _EXON:
                exons = exons + ((start, end),)
        elif line == _TX:
            if slot == "strand":
                strand = token
            elif slot == "biotype":
                coding = token == inv.PROTEIN_CODING
            elif slot == "partial":
                partial = token
        return GrammarState(line, slot_index + 1, prev, n_records, n_genes, exons, hi, start,
                            strand, coding, partial, end)


def _digits(values: Intervals, high_digit: bool, hi: int) -> Intervals:
    """The allowed ``hi`` digits of coordinate ``values``, or the allowed ``lo`` digits after ``hi``."""
    if high_digit:
        return _merge(tuple((low // COORD_BASE, high // COORD_BASE) for low, high in values))
    base = hi * COORD_BASE
    return tuple(
        (max(low, base) - base, min(high, base + COORD_BASE - 1) - base)
        for low, high in values
        if low <= base + COORD_BASE - 1 and high >= base
    )


def _merge(intervals: Intervals) -> Intervals:
    """Merge overlapping or adjacent integer intervals (input in increasing order of low)."""
    merged: list[list[int]] = []
    for low, high in sorted(intervals):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return tuple((low, high) for low, high in merged)
