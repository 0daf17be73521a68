"""Head guidance: the per-base head's view of a window added to the generative decoder's choices.

Shape legend: W windows, L bases (padded), K the head's outputs (classes, then signals), R guide
tracks (``N_GUIDE_TRACKS``), B decoder rows.

Why: trained on a few thousand windows the decoder's own coordinate scores do not carry over to
new DNA (its validation cross-entropy rises from the first evaluation while the per-base head
trained beside it reaches a held-out CDS base F1 of ~0.95). The head's class probabilities and
site log-odds are what the HMM decoder builds gene models from; here they score the boundaries
the decoder's pointer chooses between, so the decoder keeps writing the structure (strand, which
lines, how many exons, isoforms) while each coordinate lands where the head puts the edge.

**Segment terms.** Writing coordinate b after the previous coordinate p closes a segment [p, b)
whose kind the grammar knows: an exon end closes an exon, an exon start after an intron closes
the intron, a first exon's start the stretch outside the transcript. Its score is the sum over
the segment's bases of the head's log-odds that the base is of that kind against any other,
``D[b] - D[p]`` with ``D`` a cumulative sum; only ``D[b]`` varies among a row's choices, and it
is largest where the kind stops being the likelier one: the edge. The CDS line's start and end
use the coding-against-UTR log-odds of exonic bases (weighted by the head's exon probability):
its start is largest where coding begins, its end where it stops.

**Site terms.** The head's calibrated signal log-odds (:mod:`genoforge.model.base_signals`) at
the same boundary: an acceptor (``+``) or donor (``-``) where an exon starts after an intron; a
start or stop codon at the CDS's ends.

**Structure terms** (:class:`StructureGuide`, on the host). Where the decoder chooses what to
write next, the head's evidence is added to the token it bears on:

* right after an exon line, ``exon`` (another exon follows) gains the log-odds of a splice site
  at that exon's end (a donor on ``+``, an acceptor on ``-``), and ``cds`` (a protein-coding
  transcript's coding span) the evidence of coding bases in the exons written;
* between records, ``transcript`` and, in its line, ``protein_coding`` gain the evidence of
  coding bases beyond the last coordinate written (another gene is there);
* a transcript's strand: ``+`` gains (``-`` loses) in proportion to how much nearer the next
  stretch of ``+`` coding bases is than the next stretch of ``-`` ones.

Evidence of coding bases is ``(m - CODING_MIN) / CODING_SCALE``, clipped to +-30, with ``m`` the
head's expected count of CDS bases (the sum of its CDS probabilities) in the stretch.

Tracks are scaled by the guide weight once per window; the decoder's step gathers each row's
track by the role of the coordinate it writes (no host sync: CUDA-graph safe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genoforge.genes import inventory as inv
from genoforge.genes.classes import (
    CDS_MINUS,
    CDS_PLUS,
    INTRON_MINUS,
    INTRON_PLUS,
    N_CLASSES,
    UTR3_MINUS,
    UTR3_PLUS,
    UTR5_MINUS,
    UTR5_PLUS,
)
from genoforge.genes.grammar import (
    ROLE_CDS_END,
    ROLE_CDS_START,
    ROLE_FIRST_START,
    ROLE_INTRON_START,
    ROLE_NONE,
    GrammarState,
    Intervals,
    TargetGrammar,
)
from genoforge.model.base_signals import calibrated_log_odds

N_ROLES = 5  # ROLE_FIRST_START .. ROLE_CDS_END
N_GUIDE_TRACKS = 1 + 2 * N_ROLES  # track 0: no guidance (zeros), then the roles on +, on -
ROW_TRACK = N_GUIDE_TRACKS  # one more track per decoder row, written while it chooses a CDS start
UNSCORED = -1e9  # a row track's value at boundaries it does not score
_EPS = 1e-6
# signal columns (genoforge.genes.classes.SIGNAL_NAMES): donor, acceptor, start, stop per strand
_DONOR, _ACCEPTOR, _START, _STOP = range(4)


def guide_track(role: int, strand: str) -> int:
    """The track index of a coordinate of ``role`` on ``strand`` (0 for none or no strand)."""
    if role == ROLE_NONE or strand not in ("+", "-"):
        return 0
    return role + (N_ROLES if strand == "-" else 0)


def _log_odds(p: Tensor) -> Tensor:
    p = p.clamp(_EPS, 1 - _EPS)
    return torch.log(p) - torch.log1p(-p)


def _cumulative(per_base_WL: Tensor) -> Tensor:
    """[W, L + 1]: entry b is the sum over bases 0 .. b - 1."""
    return F.pad(torch.cumsum(per_base_WL, dim=1), (1, 0))


def _boundary(per_base_WL: Tensor, shift: int = 0) -> Tensor:
    """[W, L + 1]: entry b is ``per_base[b + shift]`` (0 outside the window)."""
    padded = F.pad(per_base_WL, (0, 1))  # boundary L has no base of its own
    if shift > 0:
        return F.pad(padded[:, shift:], (0, shift))
    if shift < 0:
        return F.pad(padded[:, :shift], (-shift, 0))
    return padded


CODING_MIN = 60.0  # expected CDS bases that make a stretch worth a gene (20 codons)
CODING_SCALE = 10.0  # ... and the bases per unit of evidence
STRAND_SCALE = 50.0  # bp per unit of evidence between the strands' next coding stretches
BARRIER_RUN = 24  # bases in a row of the other kind that a segment may not cross
EVIDENCE_CLIP = 30.0
PARTIAL_EVIDENCE = 10.0  # for the partial mark the head's genic run implies, against each other


class GuideTracks(NamedTuple):
    """What :func:`guide_tracks` derives from the head (float32, unscaled).

    ``tracks`` [W, R, L + 1]: the segment and site terms by role and strand; ``splice`` [W, 2,
    L + 1]: the log-odds of a splice site after an exon ending at boundary b on strand s (0
    ``+``, 1 ``-``); ``coding`` [W, 2, L + 1]: the expected CDS bases of strand s before boundary
    b; ``exon`` [W, 2, L]: each base's exon probability on each strand; ``frame`` [W, 2, 3, L]:
    the log-odds that a base is coding at codon position 0, 1, 2 (read 5'->3'), against not
    coding on that strand; ``cds_low`` [W, 2, L + 1]: the site log-odds of a CDS's low end at
    each boundary (a start codon on ``+``, a stop codon on ``-``); ``genic`` [W, 2, L]: each
    base's probability of lying inside a transcript (exon or intron) on each strand.
    """

    tracks: Tensor
    splice: Tensor
    coding: Tensor
    exon: Tensor
    frame: Tensor
    cds_low: Tensor
    genic: Tensor


def guide_tracks(head_logits_WLK: Tensor, mask_WL: Tensor) -> GuideTracks:
    """The guide terms of a batch of windows (module docstring, :class:`GuideTracks`). Without
    signal outputs (K = classes only) the site terms are 0. Padding bases add nothing.

    Site terms where a coordinate has several possible sites (an exon's end: a donor, or the
    stop codon of a transcript without a 3' UTR; a first exon's start: the start codon of one
    without a 5' UTR) add only confidence: the largest positive log-odds among them, else 0.
    """
    logits = head_logits_WLK.float()
    probs = torch.softmax(logits[..., :N_CLASSES], dim=-1)
    has_signals = logits.shape[-1] > N_CLASSES
    sites = calibrated_log_odds(logits[..., N_CLASSES:]) if has_signals else None
    return structure_tracks(probs, sites, mask_WL)


def structure_tracks(probs_WLC: Tensor, sites_WLS: Tensor | None, mask_WL: Tensor) -> GuideTracks:
    """The guide terms of per-base class probabilities [W, L, N_CLASSES] and site log-odds
    [W, L, N_SIGNALS] (None: no site terms): the head's (:func:`guide_tracks`) or any other
    per-base view in the head's form, such as the HMM's parse (:mod:`genoforge.inference.hmm_anchor`)."""
    probs = probs_WLC.float()
    keep = mask_WL.to(probs.dtype)
    sites = None if sites_WLS is None else sites_WLS.float() * keep.unsqueeze(-1)
    W, L = mask_WL.shape
    tracks = probs.new_zeros(W, N_GUIDE_TRACKS, L + 1)
    splice = probs.new_zeros(W, 2, L + 1)
    coding_mass = probs.new_zeros(W, 2, L + 1)
    exon = probs.new_zeros(W, 2, L)
    genic = probs.new_zeros(W, 2, L)
    frame = probs.new_zeros(W, 2, 3, L)
    cds_low = probs.new_zeros(W, 2, L + 1)
    strands = ((CDS_PLUS, INTRON_PLUS, (UTR5_PLUS, UTR3_PLUS)), (CDS_MINUS, INTRON_MINUS, (UTR5_MINUS, UTR3_MINUS)))
    for s, (cds, intron, utr) in enumerate(strands):
        p_cds = probs[..., list(cds)].sum(-1)
        p_utr = probs[..., list(utr)].sum(-1)
        p_exon = p_cds + p_utr
        p_intron = probs[..., list(intron)].sum(-1)
        p_out = 1 - p_exon - p_intron
        coding = p_exon * (torch.log(p_cds.clamp(min=_EPS)) - torch.log(p_utr.clamp(min=_EPS)))
        first = 1 + s * N_ROLES  # ROLE_FIRST_START's track on this strand
        tracks[:, first] = _cumulative(_log_odds(p_out) * keep)
        tracks[:, first + 1] = _cumulative(_log_odds(p_intron) * keep)
        tracks[:, first + 2] = _cumulative(_log_odds(p_exon) * keep)
        tracks[:, first + 3] = -_cumulative(coding * keep)
        tracks[:, first + 4] = _cumulative(coding * keep)
        coding_mass[:, s] = _cumulative(p_cds * keep)
        exon[:, s] = p_exon * keep
        genic[:, s] = (p_exon + p_intron) * keep
        not_coding = torch.log((1 - p_cds).clamp(min=_EPS))
        for position in range(3):
            frame[:, s, position] = (torch.log(probs[..., cds[position]].clamp(min=_EPS)) - not_coding) * keep
        if sites is None:
            continue
        site = sites[..., 4 * s: 4 * s + 4]
        if s == 0:  # + : acceptor at the exon start, start at the CDS start, stop codon ends the CDS
            donor, acceptor = _boundary(site[..., _DONOR]), _boundary(site[..., _ACCEPTOR])
            start, stop = _boundary(site[..., _START]), _boundary(site[..., _STOP], -3)
        else:  # - : a donor at the exon's low end, the stop codon is the CDS's first 3 bases
            donor, acceptor = _boundary(site[..., _ACCEPTOR]), _boundary(site[..., _DONOR])
            start, stop = _boundary(site[..., _STOP], 3), _boundary(site[..., _START])
        # in coordinate order: "donor" ends an exon before an intron, "acceptor" starts one after
        # it, "start" is the CDS's low end, "stop" its high end (mirrored names on -)
        tracks[:, first] += start.clamp(min=0)
        tracks[:, first + 1] += acceptor
        tracks[:, first + 2] += torch.maximum(donor, stop).clamp(min=0)
        tracks[:, first + 3] += start
        tracks[:, first + 4] += stop
        splice[:, s] = donor
        cds_low[:, s] = start
    return GuideTracks(tracks, splice, coding_mass, exon, frame, cds_low, genic)


def orf_scores(frame_3L: np.ndarray, exons: tuple[tuple[int, int], ...], strand: str,
               spans: list[tuple[int, int, int]]) -> dict[int, float]:
    """The best frame-aware coding score of the ORFs starting (low coordinate) at each CDS start
    of ``spans`` (``coding_spans``' (start, end, phase) triples of the spliced ``exons``): the
    sum over the ORF's bases of the head's log-odds that the base is coding at the codon
    position the ORF gives it (``frame_3L``: this strand's :class:`GuideTracks` ``frame``)."""
    if not spans:
        return {}
    positions = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in exons])
    if strand == inv.MINUS:
        positions = positions[::-1]
    n = positions.size
    index = np.full(int(positions.max()) + 2, -1, dtype=np.int64)
    index[positions] = np.arange(n)
    # S[r][k]: sum over spliced k' < k of the log-odds at codon position (k' + r) mod 3
    k = np.arange(n)
    sums = np.zeros((3, n + 1))
    for r in range(3):
        sums[r, 1:] = np.cumsum(frame_3L[(k + r) % 3, positions])
    best: dict[int, float] = {}
    for start, end, phase in spans:
        first, last = (start, end - 1) if strand == inv.PLUS else (end - 1, start)
        k0, k1 = int(index[first]), int(index[last]) + 1
        r = (-k0 - phase) % 3  # GFF phase: the first whole codon begins ``phase`` bases in
        score = float(sums[r, k1] - sums[r, k0])
        if score > best.get(start, -np.inf):
            best[start] = score
    return best


def _first_allowed(values: Intervals, at_least: int) -> int | None:
    """The lowest allowed value >= ``at_least`` (None when there is none)."""
    best = None
    for low, high in values:
        if high >= at_least:
            candidate = max(low, at_least)
            best = candidate if best is None else min(best, candidate)
    return best


def next_run_starts(flags_L: np.ndarray, run: int) -> np.ndarray:
    """[L + 1] int: for each b, the first i >= b where ``flags[i : i + run]`` are all True (L
    when there is none)."""
    n = flags_L.shape[0]
    out = np.full(n + 1, n, dtype=np.int64)
    if n >= run:
        counts = np.concatenate(([0], np.cumsum(flags_L.astype(np.int64))))
        full = (counts[run:] - counts[:-run]) == run  # [n - run + 1]: a run starts at i
        starts = np.where(full, np.arange(n - run + 1), n)
        out[: n - run + 1] = np.minimum.accumulate(starts[::-1])[::-1]
    return out


@dataclass
class StructureGuide:
    """One window's structure terms and segment barriers (module docstring), on the host.

    Args:
        splice_2L: the splice-site log-odds at exon ends per strand (:class:`GuideTracks`).
        coding_2L: the expected CDS bases before each boundary per strand.
        exon_2L: each base's exon probability per strand.
        weight: the guide weight every term is multiplied by.
        frame_23L: the coding log-odds per strand and codon position (:class:`GuideTracks`).
        cds_low_2L: the site log-odds of a CDS's low end per strand.
        genic_2L: each base's probability of lying inside a transcript per strand (for the
            transcript's partial marks; None: no say).
        coding_min, coding_scale: evidence of coding bases is ``(m - coding_min) /
            coding_scale`` for ``m`` expected CDS bases (:data:`CODING_MIN`, :data:`CODING_SCALE`
            for the head; a parse's view is sharper).
    """

    splice_2L: np.ndarray
    coding_2L: np.ndarray
    exon_2L: np.ndarray
    weight: float
    frame_23L: np.ndarray | None = None
    cds_low_2L: np.ndarray | None = None
    genic_2L: np.ndarray | None = None
    coding_min: float = CODING_MIN
    coding_scale: float = CODING_SCALE
    barrier_run: int = BARRIER_RUN

    def __post_init__(self) -> None:
        exonic = self.exon_2L >= 0.5
        run = self.barrier_run
        # per strand: where the next ``barrier_run`` exonic / non-exonic bases in a row begin
        self._exonic_run = [next_run_starts(exonic[s], run) for s in (0, 1)]
        self._outside_run = [next_run_starts(~exonic[s], run) for s in (0, 1)]
        # ... the genic ones (a first exon's start stops at the next transcript's bases), and
        # where each base's genic run ends
        genic = exonic if self.genic_2L is None else self.genic_2L >= 0.5
        self._genic = genic
        self._genic_run = [next_run_starts(genic[s], run) for s in (0, 1)]
        self._genic_end = [next_run_starts(~genic[s], 1) for s in (0, 1)]
        self._next_exonic = [next_run_starts(exonic[s], 1) for s in (0, 1)]

    def coordinate_span(self, role: int, strand: str, low: int, high: int, last: int,
                        furthest: int | None = None) -> tuple[int, int]:
        """The part of the grammar's span ``low .. high`` that the segment a coordinate of
        ``role`` closes may reach from ``last``, the coordinate before it: an exon does not run
        through ``BARRIER_RUN`` non-exonic bases in a row, an intron or the stretch before a
        first exon not through as many exonic ones; a new transcript starts after ``furthest``,
        the highest coordinate written (default ``last``: guided decoding writes no overlapping
        transcripts). Other roles: the span as given. The caller keeps at least one allowed
        value in it."""
        if strand not in ("+", "-") or role in (ROLE_NONE, ROLE_CDS_START, ROLE_CDS_END):
            return low, high
        s = 0 if strand == "+" else 1
        run = self.barrier_run
        if role == ROLE_FIRST_START:
            low = max(low, min(last if furthest is None else furthest, high))
            # the first exonic bases at or after the next transcript's first bases (a window may
            # begin inside an intron)
            genic_start = self._genic_run[s][low]
            barrier = self._exonic_run[s][min(genic_start, len(self._exonic_run[s]) - 1)] + run
        elif role == ROLE_INTRON_START:
            barrier = self._exonic_run[s][min(last, len(self._exonic_run[s]) - 1)] + run
        else:  # ROLE_EXON_END: the exon runs from ``last``, its start
            barrier = self._outside_run[s][min(last, len(self._outside_run[s]) - 1)] + run
        return int(low), int(max(low, min(high, barrier)))

    def cds_start_track(self, grammar: TargetGrammar, state: GrammarState) -> np.ndarray | None:
        """[L + 1] scaled scores of the CDS starts a signal grammar allows in ``state`` (a
        protein-coding transcript's cds line, its start being written): each start's best ORF
        (:func:`orf_scores`) plus its site log-odds, ``UNSCORED`` elsewhere. None where the
        grammar does not enumerate ORFs (the plain grammar, a non-coding transcript)."""
        cds_choices = getattr(grammar, "cds_choices", None)
        if cds_choices is None or self.frame_23L is None or self.cds_low_2L is None or not state.coding:
            return None
        choices = cds_choices(state.strand, state.partial, state.exons)
        if not choices.spans:
            return None
        s = 0 if state.strand == inv.PLUS else 1
        values = np.full(self.cds_low_2L.shape[1], UNSCORED, dtype=np.float32)
        for start, score in orf_scores(self.frame_23L[s], state.exons, state.strand, list(choices.spans)).items():
            values[start] = self.weight * (score + float(self.cds_low_2L[s, start]))
        return values

    def guided_span(self, grammar: TargetGrammar, state: GrammarState, last: int,
                    furthest: int | None = None) -> tuple[int, int]:
        """The span of the coordinate written in ``state`` under guidance: the grammar's, cut by
        :meth:`coordinate_span`, and widened again to the first allowed value if the cut left
        none."""
        values = grammar.coordinate_values(state)
        if not values:
            return 0, -1
        low, high = min(a for a, _ in values), max(b for _, b in values)
        cut_low, cut_high = self.coordinate_span(grammar.coordinate_role(state), state.strand, low, high, last,
                                                 furthest)
        first = _first_allowed(values, cut_low)
        if first is None:
            return low, high
        return cut_low, max(cut_high, first)

    def evidence(self, mass: float) -> float:
        """Evidence of ``mass`` expected CDS bases (clipped to +-``EVIDENCE_CLIP``)."""
        return float(np.clip((mass - self.coding_min) / self.coding_scale, -EVIDENCE_CLIP, EVIDENCE_CLIP))

    def partial_marks(self, strand: int, position: int) -> str:
        """The partial mark of the transcript the next coding stretch of ``strand`` beyond
        boundary ``position`` belongs to: its run of genic bases (exon or intron, probability
        >= 0.5) cut by the window's left edge, right edge, both or neither."""
        genic = self.genic_2L[strand] >= 0.5
        n = genic.shape[0]
        inside = min(self.next_coding(strand, position), n) - 1
        if inside < 0 or not genic[inside]:
            return inv.PARTIAL_NONE
        outside = np.flatnonzero(~genic)  # sorted; ``inside`` is not among them
        at = int(np.searchsorted(outside, inside))
        cut_left, cut_right = at == 0, at == outside.size  # no non-genic base before / after it
        return {(False, False): inv.PARTIAL_NONE, (True, False): inv.PARTIAL_LEFT,
                (False, True): inv.PARTIAL_RIGHT, (True, True): inv.PARTIAL_BOTH}[(cut_left, cut_right)]

    def coding_after(self, position: int) -> float:
        """Expected CDS bases (both strands) from boundary ``position`` to the window's end,
        on each strand counted from the end of the genic run that the base before ``position``
        is in (the rest of a transcript already begun is not another gene). At boundary 0 no
        base has been written: a genic run there is a transcript cut by the window's left edge,
        still to be written, and counts in full."""
        total = 0.0
        for s in (0, 1):
            ends = self._genic_end[s]
            after = position
            if 0 < position <= self._genic[s].shape[0] and self._genic[s][position - 1]:
                after = int(ends[min(position, ends.shape[0] - 1)])
            total += float(self.coding_2L[s, -1] - self.coding_2L[s, after])
        return total

    def next_coding(self, strand: int, position: int) -> int:
        """The first boundary after which ``coding_min`` CDS bases of ``strand`` lie beyond
        ``position`` (the window's length + 1 when there are not that many)."""
        mass = self.coding_2L[strand]
        return int(np.searchsorted(mass, mass[position] + self.coding_min))

    def token_terms(self, grammar: TargetGrammar, state: GrammarState, last: int,
                    furthest: int | None = None) -> list[tuple[str, float]]:
        """The (token, term) pairs of the decoder's next choice in ``state`` (``last``: the
        coordinate written last, ``furthest`` the highest, default ``last``); empty where the
        head has no say. Evidence of another gene counts from ``furthest``."""
        field = grammar.field_of(state)
        beyond = last if furthest is None else furthest
        w = self.weight
        if field == "gap":
            if state.prev == "start":
                return []
            after = self.evidence(self.coding_after(beyond))
            if not grammar.after_exon(state):
                return [(inv.LINE_TRANSCRIPT, w * after)]
            strand = 0 if state.strand == inv.PLUS else 1
            splice = float(self.splice_2L[strand, last])
            if self._next_exonic[strand][min(last, self._next_exonic[strand].shape[0] - 1)] >= self.exon_2L.shape[1]:
                # no exonic base of this strand lies ahead: an intron opening here runs past the
                # window's edge (the transcript is cut inside it), so no exon follows in this
                # window; the site's evidence now counts for ending the exons here
                splice = -abs(splice)
            terms = [(inv.LINE_EXON, w * splice)]
            if state.coding:
                # the exons end where no splice site follows; too few coding bases count against
                # the cds line, and a transcript with coding bases is not left without one: not
                # by another transcript, nor by a feature line or <eos>, which also close it (at
                # the window's right edge the splice term is 0, no base beyond it, so the cds
                # line has no lead of its own there)
                inside = self.evidence(sum(float(self.coding_2L[strand, e] - self.coding_2L[strand, s])
                                           for s, e in state.exons))
                terms.append((inv.LINE_CDS, w * (min(inside, 0.0) - splice)))
                if inside > 0:
                    closing = [(head, -w * EVIDENCE_CLIP) for head in (*inv.FEATURE_TYPES, inv.EOS)]
                    return [(inv.LINE_TRANSCRIPT, -w * EVIDENCE_CLIP), *closing, *terms]
            return [(inv.LINE_TRANSCRIPT, w * after), *terms]
        if field == "biotype":
            return [(inv.PROTEIN_CODING, w * self.evidence(self.coding_after(beyond)))]
        if field == "gene":  # guided transcripts never overlap: each is a gene of its own
            return [(inv.NUMBERS[min(state.n_genes, inv.MAX_NUMBER)], w * PARTIAL_EVIDENCE)]
        if field == "partial" and state.line == inv.LINE_TRANSCRIPT and self.genic_2L is not None \
                and state.strand in (inv.PLUS, inv.MINUS):
            mark = self.partial_marks(0 if state.strand == inv.PLUS else 1, beyond)
            return [(m, w * (PARTIAL_EVIDENCE if m == mark else -PARTIAL_EVIDENCE)) for m in inv.PARTIAL_MARKS]
        if field == "strand":
            nearer = (self.next_coding(1, beyond) - self.next_coding(0, beyond)) / STRAND_SCALE
            return [(inv.PLUS, w * float(np.clip(nearer, -EVIDENCE_CLIP, EVIDENCE_CLIP)))]
        return []
