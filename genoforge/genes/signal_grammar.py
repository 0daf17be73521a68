"""The target grammar that also reads the window's DNA: canonical splice sites, complete ORFs.

:class:`SignalGrammar` is :class:`~genoforge.genes.grammar.TargetGrammar` for one window whose
sequence is known. It accepts a subset of what that grammar accepts: on top of the format's
checks, every ``protein_coding`` transcript it lets a decoder write has

* **canonical introns**: between consecutive exons ``(.., e)`` and ``(s, ..)`` the intron
  ``dna[e:s]`` is at least 4 bp and reads one of the intron classes (``GT-AG``, ``GC-AG``,
  ``AT-AC``: donor dinucleotide, acceptor dinucleotide) on the transcript's strand. On ``-`` the
  intron is read reverse-complemented: ``dna[e:e+2]`` is the complement of the acceptor (``CT``
  for ``AG``) and ``dna[s-2:s]`` that of the donor (``AC`` for ``GT``). So a next ``exon`` head is
  allowed only after an exon end that opens an intron with some matching acceptor in range, and
  the next exon's start values are exactly those acceptors;
* **a complete ORF** as its cds line, read on the spliced exons (a codon may span a junction):
  ATG first with phase 0, ending with the first in-frame stop codon (TAA TAG TGA; the CDS span
  includes it). On ``-`` the 5' end is the span's high end. The window edge may clip either end
  when the transcript's partial mark says it leaves the window there and its outer exon reaches
  the edge (or, with ``clip_in_introns``, where a canonical intron may open or close at the outer
  exon's end and run past the edge): a clipped 5' end starts at the outer exon's end with any phase (the reading frame
  begins that many bases in; the first in-frame stop then ends the CDS), a clipped 3' end ends
  there when no in-frame stop comes before it. The ``cds`` head is allowed only if some such CDS exists (a
  transcript without a cds line stays allowed), a start value only if some end completes it, a
  phase only if it fits the chosen start and end.

Other biotypes and features follow the plain grammar. The allowed CDS spans of an exon chain are
computed once (:func:`coding_spans`, when the gap after an exon is reached) and memoised; the
allowed values stay sorted, merged inclusive intervals, so the plain grammar's digit logic, mask
cache and :meth:`~genoforge.genes.grammar.TargetGrammar.allowed_key` semantics apply unchanged.
:func:`genoforge.genes.signal_check.signal_violations` checks a written annotation against the
same rules, independently of this automaton.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from genoforge.errors import ConfigError
from genoforge.genes import inventory as inv
from genoforge.genes.classes import encode_bases
from genoforge.genes.grammar import _CDS, _EXON, GrammarState, Intervals, TargetGrammar
from genoforge.genes.signals import INTRON_CLASSES, STOP_CODONS

_COMPLEMENT = str.maketrans("ACGT", "TGCA")
_CODE_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)  # A C G T N -> T G C A N
# Base-5 codon ids (a * 25 + b * 5 + c over base codes) that are stop codons.
_IS_STOP = np.zeros(125, dtype=bool)
for _a, _b, _c in (encode_bases(codon) for codon in STOP_CODONS):
    _IS_STOP[int(_a) * 25 + int(_b) * 5 + int(_c)] = True
_ATG_ID = 0 * 25 + 3 * 5 + 2  # A T G in base-5 codes
# Memo sizes (entries); when full a memo is emptied and refilled, which only costs recomputation.
_SPLICE_MEMO_SIZE = 1 << 12
_CDS_MEMO_SIZE = 1 << 10


class CdsChoices(NamedTuple):
    """The cds lines allowed after an exon chain: start values, ends per start, phases per span."""

    starts: Intervals
    ends: dict[int, Intervals]
    phases: dict[tuple[int, int], Intervals]
    spans: tuple[tuple[int, int, int], ...] = ()  # every (start, end, phase) of coding_spans


_NO_CDS = CdsChoices((), {}, {})


def _reverse_complement(sequence: str) -> str:
    return sequence.translate(_COMPLEMENT)[::-1]


def intron_sides(intron_classes: Sequence[str], strand: str) -> dict[str, tuple[str, ...]]:
    """For each dinucleotide that may open an intron at its low end (``dna[e:e+2]``), the
    dinucleotides that may close it at its high end (``dna[s-2:s]``), on ``strand``.

    Raises:
        ConfigError: a class is not written ``XX-YY`` over A, C, G, T.
    """
    sides: dict[str, tuple[str, ...]] = {}
    for cls in intron_classes:
        donor, _, acceptor = cls.upper().partition("-")
        if len(donor) != 2 or len(acceptor) != 2 or set(donor + acceptor) - set("ACGT"):
            raise ConfigError(f"intron class {cls!r} is not written like GT-AG")
        low, high = ((donor, acceptor) if strand == inv.PLUS
                     else (_reverse_complement(acceptor), _reverse_complement(donor)))
        if high not in sides.get(low, ()):
            sides[low] = (*sides.get(low, ()), high)
    return sides


def coding_spans(
    codes: np.ndarray,
    exons: Sequence[tuple[int, int]],
    strand: str,
    clip_low: bool = False,
    clip_high: bool = False,
) -> list[tuple[int, int, int]]:
    """Every ``(cds_start, cds_end, phase)`` that is a complete ORF of the spliced ``exons``.

    Args:
        codes: the window's base codes (:func:`~genoforge.genes.classes.encode_bases`).
        exons: increasing, non-overlapping ``[s, e)`` exons in window coordinates.
        strand: ``+`` or ``-``; on ``-`` the spliced sequence is read reverse-complemented.
        clip_low, clip_high: the window edge clips the transcript at its low / high end, so the
            CDS may begin at the outer exon's end there with any phase (its 5' end) or run into it
            without a stop (its 3' end).

    Returns:
        Spans in window coordinates (stop codon included), in no particular order.
    """
    if not exons:
        return []
    positions = np.concatenate([np.arange(s, e, dtype=np.int64) for s, e in exons])
    bases = np.asarray(codes)[positions].astype(np.int64)
    clip5, clip3 = clip_low, clip_high
    if strand == inv.MINUS:
        positions, bases = positions[::-1], _CODE_COMPLEMENT[bases[::-1]].astype(np.int64)
        clip5, clip3 = clip_high, clip_low
    length = int(bases.size)
    if length >= 3:
        codon_ids = bases[:-2] * 25 + bases[1:-1] * 5 + bases[2:]
        stops = np.flatnonzero(_IS_STOP[codon_ids])
        atgs = np.flatnonzero(codon_ids == _ATG_ID)
    else:
        stops = atgs = np.zeros(0, dtype=np.int64)
    stops_in_frame = [stops[stops % 3 == frame] for frame in range(3)]
    firsts = [(int(a), int(a), 0) for a in atgs]  # (first CDS base, first codon, phase)
    if clip5:
        firsts += [(0, phase, phase) for phase in range(3)]
    spans: list[tuple[int, int, int]] = []
    for first, codon, phase in firsts:
        frame_stops = stops_in_frame[codon % 3]
        k = int(np.searchsorted(frame_stops, codon))
        if k < frame_stops.size:
            last = int(frame_stops[k]) + 3  # one past the stop codon, transcript coordinates
        elif clip3:
            last = length
        else:
            continue
        if last <= first:
            continue
        if strand == inv.MINUS:
            spans.append((int(positions[last - 1]), int(positions[first]) + 1, phase))
        else:
            spans.append((int(positions[first]), int(positions[last - 1]) + 1, phase))
    return spans


def _points(values: Sequence[int]) -> Intervals:
    """Sorted distinct integers as merged inclusive intervals."""
    merged: list[list[int]] = []
    for value in sorted(set(values)):
        if merged and value == merged[-1][1] + 1:
            merged[-1][1] = value
        else:
            merged.append([value, value])
    return tuple((low, high) for low, high in merged)


class SignalGrammar(TargetGrammar):
    """:class:`TargetGrammar` of one window that only lets protein-coding transcripts have
    canonical introns and complete (or window-clipped) ORFs (module docstring).

    Args:
        vocab: as for :class:`TargetGrammar`.
        dna: the window's sequence (any case; window-relative, so ``window_size = len(dna)``).
        max_records, max_exons: as for :class:`TargetGrammar`.
        intron_classes: the accepted (donor-acceptor) dinucleotide pairs, e.g. ``"GT-AG"``.
        clip_in_introns: also let the CDS be clipped at an outer exon that stops short of the
            window edge where a canonical intron may run from it past the edge (the edge falls
            in an intron of a transcript marked partial there, as ``window_annotation`` writes
            it). Off by default: a clipped end must reach the edge.

    Raises:
        ConfigError: an empty or too long ``dna``, a malformed intron class, or a bad limit.
        TokenizerError: a grammar token is missing from the vocabulary.
    """

    def __init__(
        self,
        vocab: Mapping[str, int] | Any,
        dna: str,
        max_records: int = 512,
        max_exons: int = 1000,
        intron_classes: Sequence[str] = INTRON_CLASSES,
        clip_in_introns: bool = False,
    ):
        super().__init__(vocab, window_size=len(dna), max_records=max_records,
                         max_exons=max_exons)
        self.dna = dna.upper()
        self.codes = encode_bases(self.dna)
        self.intron_classes = tuple(intron_classes)
        self.clip_in_introns = clip_in_introns
        # strand -> low-end dinucleotide -> sorted intron ends q (dna[q-2:q] closes the intron)
        pairs = self.codes[:-1].astype(np.int64) * 5 + self.codes[1:]
        self._intron_ends: dict[str, dict[str, list[int]]] = {}
        for strand in inv.STRANDS:
            ends: dict[str, list[int]] = {}
            for low, highs in intron_sides(self.intron_classes, strand).items():
                closes = np.zeros(25, dtype=bool)
                for a, b in (encode_bases(high) for high in highs):
                    closes[int(a) * 5 + int(b)] = True
                ends[low] = (np.flatnonzero(closes[pairs]) + 2).tolist()
            self._intron_ends[strand] = ends
        self._intron_highs = {strand: {high for highs in intron_sides(self.intron_classes, strand).values()
                                       for high in highs} for strand in inv.STRANDS}
        self._splice_memo: dict[tuple[str, int], Intervals] = {}
        self._cds_memo: dict[tuple[str, str, tuple[tuple[int, int], ...]], CdsChoices] = {}

    # -- the signal tables --------------------------------------------------------------------

    def next_exon_starts(self, strand: str, exon_end: int) -> Intervals:
        """The start values of an exon after one ending at ``exon_end`` (an intron of >= 4 bp
        with canonical ends on ``strand``, inside the window); empty if none."""
        key = (strand, exon_end)
        values = self._splice_memo.get(key)
        if values is None:
            ends = self._intron_ends[strand].get(self.dna[exon_end:exon_end + 2])
            if ends is None:
                values = ()
            else:
                low = bisect.bisect_left(ends, exon_end + 4)
                high = bisect.bisect_right(ends, self.max_end - 1)
                values = _points(ends[low:high])
            if len(self._splice_memo) >= _SPLICE_MEMO_SIZE:
                self._splice_memo.clear()
            self._splice_memo[key] = values
        return values

    def intron_opens_at(self, strand: str, exon_end: int) -> bool:
        """With ``clip_in_introns``: an intron that runs past the window's high edge may open
        at ``exon_end`` (its low-end dinucleotide is canonical on ``strand``)."""
        seen = self.dna[exon_end:exon_end + 2]  # the edge may cut the dinucleotide itself
        return self.clip_in_introns and any(low.startswith(seen) for low in self._intron_ends[strand])

    def intron_closes_at(self, strand: str, exon_start: int) -> bool:
        """With ``clip_in_introns``: an intron from beyond the window's low edge may close at
        ``exon_start`` (its high-end dinucleotide is canonical on ``strand``)."""
        seen = self.dna[max(exon_start - 2, 0):exon_start]
        return self.clip_in_introns and any(high.endswith(seen) for high in self._intron_highs[strand])

    def cds_choices(
        self, strand: str, partial: str, exons: tuple[tuple[int, int], ...]
    ) -> CdsChoices:
        """The cds lines allowed after ``exons`` of a protein-coding transcript (memoised)."""
        key = (strand, partial, exons)
        choices = self._cds_memo.get(key)
        if choices is None:
            clip_low = "<" in partial and (exons[0][0] == 0 or self.intron_closes_at(strand, exons[0][0]))
            clip_high = ">" in partial and (exons[-1][1] == self.max_end or self.intron_opens_at(strand, exons[-1][1]))
            spans = coding_spans(self.codes, exons, strand, clip_low, clip_high)
            if not spans:
                choices = _NO_CDS
            else:
                ends: dict[int, list[int]] = {}
                phases: dict[tuple[int, int], list[int]] = {}
                for start, end, phase in spans:
                    ends.setdefault(start, []).append(end)
                    phases.setdefault((start, end), []).append(phase)
                choices = CdsChoices(
                    _points(list(ends)),
                    {start: _points(values) for start, values in ends.items()},
                    {span: _points(values) for span, values in phases.items()},
                    tuple(spans),
                )
            if len(self._cds_memo) >= _CDS_MEMO_SIZE:
                self._cds_memo.clear()
            self._cds_memo[key] = choices
        return choices

    # -- the automaton hooks ------------------------------------------------------------------

    def _heads(self, state: GrammarState) -> tuple[str, ...]:
        heads = super()._heads(state)
        if state.coding and state.prev == _EXON:
            drop = set()
            if inv.LINE_EXON in heads and not self.next_exon_starts(state.strand,
                                                                    state.exons[-1][1]):
                drop.add(inv.LINE_EXON)
            if not self.cds_choices(state.strand, state.partial, state.exons).starts:
                drop.add(inv.LINE_CDS)
            if drop:
                heads = tuple(head for head in heads if head not in drop)
        return heads

    def _values(self, state: GrammarState, which: str) -> Intervals:
        if state.coding:
            if state.line == _EXON:
                if which == "s" and state.exons:
                    return self.next_exon_starts(state.strand, state.exons[-1][1])
            elif state.line == _CDS:
                choices = self.cds_choices(state.strand, state.partial, state.exons)
                return choices.starts if which == "s" else choices.ends[state.start]
        return super()._values(state, which)

    def _phases(self, state: GrammarState) -> Intervals:
        if state.coding:
            choices = self.cds_choices(state.strand, state.partial, state.exons)
            return choices.phases[(state.start, state.end)]
        return super()._phases(state)
