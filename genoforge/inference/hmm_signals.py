"""Per-position signal columns of the gene-structure decoder: where each signal edge may be taken
and its score (PWM log-odds of donors, acceptors, start and stop codons; codon checks across
introns). See :mod:`genoforge.inference.hmm` for what each column means to the state machine.

Where the track carries the per-base head's signal log-odds (donor, acceptor, start, stop per
strand, :mod:`genoforge.genes.classes`), :func:`block_columns` adds ``head_weight`` times the
signal's log-odds at the same boundary to every column of that signal (an acceptor that is also
a stop codon takes both). This is the hybrid HMM's exact term for a binary per-base output: a
path that puts a site at ``t`` gains ``log p_t - log(1 - p_t)`` over one that does not.
"""

from __future__ import annotations

import math

import numpy as np

from genoforge.genes.classes import N_CODE, N_SIGNALS
from genoforge.genes.structure import (
    ACCEPTOR_FIXED,
    ACCEPTOR_FLANK,
    DONOR_FIXED,
    DONOR_FLANK,
    START_FIXED,
    START_FLANK,
    STOP_FIXED,
    STOP_FLANK,
    GeneStructureParams,
)
from genoforge.inference.hmm_graph import (
    COLUMN_ROW,
    STRAND_COLUMNS,
    A,
    C,
    G,
    T,
    log_or_inf,
)

SIGNAL_CONTEXT = 32  # bases of context each side of a block for the signal windows (>= 20 + 3)


def _head_signal_rows() -> np.ndarray:
    """float64 [2 * len(STRAND_COLUMNS), N_SIGNALS]: 1 where a column takes a head signal."""
    rows = np.zeros((2 * len(STRAND_COLUMNS), N_SIGNALS))
    for strand in (0, 1):
        base, first = strand * len(STRAND_COLUMNS), strand * 4  # donor, acceptor, start, stop
        for name, r in COLUMN_ROW.items():
            signals = []
            if name == "start":
                signals = [2]
            elif name == "stop":
                signals = [3]
            elif name.startswith("donor"):
                signals = [0]
            elif name.startswith("acceptor"):
                signals = [1, 3] if name.endswith("_stop") else [1]
            for k in signals:
                rows[base + r, first + k] = 1.0
    return rows


HEAD_SIGNAL_ROWS = _head_signal_rows()

class Signals:
    """Per-position signal columns of one strand orientation: the value at boundary ``t`` is the
    score of entering, at ``t``, the state the edge leads to (-inf where it is forbidden).

    ``start``/``stop``: ``seq[t:t+3]`` is ATG / a stop (PWM score); ``codon``: ``seq[t-2:t+1]``
    is no stop; ``codon_T``: ``T + seq[t-1:t+1]`` is no stop; ``donor_F_M``: a family-F donor
    at ``t`` (PWM score + log fraction of its dinucleotide) whose preceding exon bases fit
    memory M; ``acceptor_F[_TA|_TG]``: a family-F acceptor ending at ``t`` (PWM score), with
    ``seq[t]`` not completing a stop after a remembered TA / TG.
    """

    def __init__(self, params: GeneStructureParams, signal_weight: float):
        def scored(pwm: list[list[float]], fixed: tuple[int, ...], before: int) -> list[tuple[int, np.ndarray]]:
            rows = []
            for k, row in enumerate(pwm):
                if k not in fixed:
                    table = np.zeros(5)  # a fifth entry: N scores 0
                    table[:4] = np.asarray(row) * signal_weight
                    rows.append((k - before, table))
            return rows

        self.pwms = {
            "donor": scored(params.donor_pwm, DONOR_FIXED, DONOR_FLANK[0]),
            "acceptor": scored(params.acceptor_pwm, ACCEPTOR_FIXED, ACCEPTOR_FLANK[0]),
            "start": scored(params.start_pwm, START_FIXED, START_FLANK[0]),
            "stop": scored(params.stop_pwm, STOP_FIXED, STOP_FLANK[0]),
        }
        gtag = max(1.0 - params.gcag_fraction - params.atac_fraction, 1e-12)
        self.penalty = {"GT": math.log(gtag), "GC": log_or_inf(params.gcag_fraction), "AT": log_or_inf(params.atac_fraction)}

    def columns(self, codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """``STRAND_COLUMNS`` at boundaries ``lo..hi-1`` of ``codes``: float64 [len, hi - lo].

        ``codes`` must hold 20 bases of context before ``lo`` and 9 after ``hi``.
        """
        n = hi - lo
        b_2, b_1, b0, b1, b2 = (codes[lo + o : hi + o] for o in (-2, -1, 0, 1, 2))
        out = np.full((len(STRAND_COLUMNS), n), -np.inf)

        def pwm(name: str, at: np.ndarray) -> np.ndarray:
            score = np.zeros(at.size)
            where = at + lo
            for offset, table in self.pwms[name]:
                score += table[codes[where + offset]]
            return score

        at = np.flatnonzero((b0 == A) & (b1 == T) & (b2 == G))
        out[COLUMN_ROW["start"], at] = pwm("start", at)
        stop = (b0 == T) & (((b1 == A) & ((b2 == A) | (b2 == G))) | ((b1 == G) & (b2 == A)))
        at = np.flatnonzero(stop)
        out[COLUMN_ROW["stop"], at] = pwm("stop", at)
        # x then y completes a stop after a T: TAA, TAG, TGA
        stop_pair_10 = ((b_1 == A) & ((b0 == A) | (b0 == G))) | ((b_1 == G) & (b0 == A))
        out[COLUMN_ROW["codon"]][~((b_2 == T) & stop_pair_10)] = 0.0
        out[COLUMN_ROW["codon_T"]][~stop_pair_10] = 0.0

        donor = {"GT": np.flatnonzero((b0 == G) & ((b1 == T) | (b1 == C))),
                 "AT": np.flatnonzero((b0 == A) & (b1 == T))}
        for family, at in donor.items():
            score = pwm("donor", at)
            if family == "GT":
                score += np.where(b1[at] == T, self.penalty["GT"], self.penalty["GC"])
            else:
                score += self.penalty["AT"]
            p1, p2 = b_1[at], b_2[at]
            t2 = p2 == T
            memory_ok = {"0": slice(None), "1T": p1 == T, "1o": p1 != T,
                         "2TA": t2 & (p1 == A), "2TG": t2 & (p1 == G),
                         "2o": ~(t2 & ((p1 == A) | (p1 == G)))}
            for memory, ok in memory_ok.items():
                out[COLUMN_ROW[f"donor_{family}_{memory}"], at[ok]] = score[ok]
            # after E1_T the codon's first base is the T remembered across the previous intron
            is_ag = (p1 == A) | (p1 == G)
            for memory, ok in (("2TA", p1 == A), ("2TG", p1 == G), ("2o", ~is_ag)):
                out[COLUMN_ROW[f"donorT_{family}_{memory}"], at[ok]] = score[ok]
        for family, last in (("GT", G), ("AT", C)):
            at = np.flatnonzero((b_2 == A) & (b_1 == last))
            score = pwm("acceptor", at)
            following = b0[at]
            out[COLUMN_ROW[f"acceptor_{family}"], at] = score
            ok = (following != A) & (following != G)
            out[COLUMN_ROW[f"acceptor_{family}_TA"], at[ok]] = score[ok]
            ok = following != A
            out[COLUMN_ROW[f"acceptor_{family}_TG"], at[ok]] = score[ok]
            ok = stop[at]
            out[COLUMN_ROW[f"acceptor_{family}_stop"], at[ok]] = score[ok] + pwm("stop", at[ok])
        return out


_COMPLEMENT = np.array([T, G, C, A, N_CODE], dtype=np.uint8)


def block_columns(signals: Signals, codes_L: np.ndarray, start: int, end: int,
                  head_LS: np.ndarray | None = None, head_weight: float = 0.0) -> np.ndarray:
    """The graph's signal columns (+ rows, then - rows) at contig boundaries ``start..end-1``:
    float64 [2 * len(STRAND_COLUMNS), end - start]; plus ``head_weight`` times the head's
    signal log-odds ``head_LS[start:end]`` (contig-wide [L, N_SIGNALS]) where given."""
    n = end - start
    lo, hi = start - SIGNAL_CONTEXT, end + SIGNAL_CONTEXT
    padded = np.full(hi - lo, N_CODE, dtype=np.uint8)
    a, b = max(lo, 0), min(hi, codes_L.size)
    padded[a - lo : b - lo] = codes_L[a:b]
    plus = signals.columns(padded, SIGNAL_CONTEXT, SIGNAL_CONTEXT + n)
    # Boundary g on - is boundary (hi - g) of the reverse complement of ``padded``.
    minus = signals.columns(_COMPLEMENT[padded[::-1]], SIGNAL_CONTEXT + 1, SIGNAL_CONTEXT + n + 1)[:, ::-1]
    out = np.concatenate([plus, minus])
    if head_LS is not None and head_weight:
        out += HEAD_SIGNAL_ROWS @ (head_weight * head_LS[start:end].astype(np.float64)).T
    return out
