"""Coding exon lengths: the histograms bake counts and the two-stage duration the decoder uses.

A geometric exon duration (one looping state) makes the shortest exons the likeliest ones: a
decoder with it writes 2- to 20-bp exons wherever the per-base head wavers between a splice site
pair, three times as often as annotations hold them (fly validation region: 8 predicted CDS
pieces under 20 bp against 3 in the reference). The decoder instead runs an exon through two
stages in series, a *young* stage (no exit) and a *mature* one (exit to a donor or the stop), each
geometric: the length is then the sum of two geometrics, which is small at 1-2 bp, peaks near the
young stage's mean and keeps the long tail.

First exons are another population: in fly, 6% of the first coding exons of spliced genes have
fewer than 20 bases after the start codon, and none of the 1,421 internal exons has (0.5% of the
internal and last exons together). So the exons after an acceptor (internal and last) and the
first exons get a young stage each, sharing the mature one: this module fits the later exons'
two means, then the first exons' young mean with the mature one fixed. Single-exon genes are
left out of both fits (their young stage is the first exons').

Lengths are counted in the decoder's exon states: a CDS piece's bases less the start codon (first
piece) and the stop codon (last piece), which have their own states.
"""

from __future__ import annotations

import numpy as np

EXON_HISTOGRAM_BINS = 3000  # exact lengths 0..2998, and one bin for >= 2999
MIN_EXONS_FOR_STAGES = 50  # fewer counted exons than this: one geometric, as without the histogram
_MEAN_RANGE = (1.0, 5000.0)  # both means are searched in this range (bases)
_GRID = 24  # points per mean and round of the coarse-to-fine search
_ROUNDS = 4  # each round spans two steps of the previous one on each side of its best point


def exon_state_length(piece: int, first: bool, last: bool) -> int:
    """Bases of a CDS piece of ``piece`` bp that the decoder's exon states cover."""
    return max(0, piece - 3 * first - 3 * last)


def two_stage_log_pmf(young: np.ndarray, mature: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """log P(L = n) for L = Y + M, Y and M geometric on 1, 2, ... with means ``young``, ``mature``.

    ``young`` and ``mature`` broadcast against each other; the result has a trailing axis over
    ``lengths`` (each >= 2). ``P(n) = g q ((1-q)^(n-1) - (1-g)^(n-1)) / (g - q)`` with ``g =
    1/young``, ``q = 1/mature``; at ``g == q`` the limit ``(n-1) g^2 (1-g)^(n-2)``.
    """
    g = 1.0 / np.asarray(young, dtype=np.float64)[..., None]
    q = 1.0 / np.asarray(mature, dtype=np.float64)[..., None]
    n = np.asarray(lengths, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_q1 = (n - 1) * np.log1p(-np.minimum(q, 1 - 1e-12))
        log_g1 = np.where(g >= 1.0, -np.inf, (n - 1) * np.log1p(-np.minimum(g, 1 - 1e-12)))
        hi, lo = np.maximum(log_q1, log_g1), np.minimum(log_q1, log_g1)
        diff = hi + np.log1p(-np.exp(lo - hi))  # log |(1-q)^(n-1) - (1-g)^(n-1)|
        general = np.log(g) + np.log(q) + diff - np.log(np.abs(g - q))
        equal = 2 * np.log(g) + np.log(n - 1) + (n - 2) * np.log1p(-np.minimum(g, 1 - 1e-12))
    return np.where(np.isclose(g, q, rtol=1e-9, atol=0), equal, general)


def two_stage_log_survival(young: np.ndarray, mature: np.ndarray, n: int) -> np.ndarray:
    """log P(L > n) for the L of :func:`two_stage_log_pmf` (``n >= 1``).

    ``P(L > n) = (g (1-q)^n - q (1-g)^n) / (g - q)``; at ``g == q`` the limit ``(1-g)^(n-1) (1 -
    g + n g)``.
    """
    g = 1.0 / np.asarray(young, dtype=np.float64)
    q = 1.0 / np.asarray(mature, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        general = (g * (1 - q) ** n - q * (1 - g) ** n) / (g - q)
        equal = (1 - g) ** (n - 1) * (1 - g + n * g)
        survival = np.where(np.isclose(g, q, rtol=1e-9, atol=0), equal, general)
    return np.log(np.clip(survival, 1e-300, None))


def fit_exon_stages(later: list[int], first: list[int]) -> list[float]:
    """[young mean, mature mean, first exons' young mean] (maximum likelihood), or [].

    ``later``: the histogram of exon-state lengths of internal and last exons; ``first``: of the
    first exons of spliced genes. Exons of 0 or 1 state bases (a start- or stop-codon-only exon,
    a 1-bp exon) are left out: the decoder writes the former through their own edges and never
    the latter. The overflow bin counts as ``P(L >= bins - 1)``. Returns [] with fewer than
    :data:`MIN_EXONS_FOR_STAGES` later exons; with fewer first exons than that, their young mean
    is 1 (a first exon is then one geometric past its first base, as without stages).
    """
    fitted = _fit(later)
    if fitted is None:
        return []
    young, mature = sorted(fitted)  # the sum of the two stages does not depend on their order
    first_fit = _fit(first, mature=mature)
    return [young, mature, 1.0 if first_fit is None else first_fit[0]]


def _fit(histogram: list[int], mature: float | None = None) -> tuple[float, float] | None:
    """The (young, mature) means of highest likelihood, on a coarse-to-fine grid; ``mature`` fixed
    where given. None with fewer than :data:`MIN_EXONS_FOR_STAGES` exons of 2 bases or more."""
    counts = np.asarray(histogram, dtype=np.float64)
    exact = counts[2:-1]
    overflow = counts[-1]
    if exact.sum() + overflow < MIN_EXONS_FOR_STAGES:
        return None
    lengths = np.flatnonzero(exact) + 2

    def log_likelihood(young: np.ndarray, mature: np.ndarray) -> np.ndarray:
        value = (two_stage_log_pmf(young, mature, lengths) * counts[lengths]).sum(axis=-1)
        if overflow:
            value = value + overflow * two_stage_log_survival(young, mature, counts.size - 2)
        return value

    low, high = np.log(_MEAN_RANGE[0]), np.log(_MEAN_RANGE[1])
    bounds = [(low, high), (low, high) if mature is None else (np.log(mature), np.log(mature))]
    best = np.array([low, low])
    for _ in range(_ROUNDS):
        axes = [np.linspace(a, b, _GRID if a < b else 1) for a, b in bounds]
        young_grid, mature_grid = np.meshgrid(*(np.exp(axis) for axis in axes), indexing="ij")
        i, j = np.unravel_index(int(np.argmax(log_likelihood(young_grid, mature_grid))), young_grid.shape)
        best = np.array([axes[0][i], axes[1][j]])
        steps = [axis[1] - axis[0] if axis.size > 1 else 0.0 for axis in axes]
        bounds = [(max(low, b - 2 * st), min(high, b + 2 * st)) for b, st in zip(best, steps)]
    return float(np.exp(best[0])), float(np.exp(best[1]))
