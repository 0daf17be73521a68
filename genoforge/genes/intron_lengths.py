"""Coding intron lengths: the histogram bake counts, the shortest intron, the two-geometric fit.

:class:`genoforge.genes.structure.StructureCounts` keeps a histogram of coding intron lengths
(:data:`INTRON_HISTOGRAM_BINS` bins); from it come the shortest intron the decoder may write
(:func:`min_intron_length`) and the decoder's intron-length mixture (:func:`fit_intron_lengths`).
"""

from __future__ import annotations

import numpy as np

INTRON_HISTOGRAM_BINS = 1000  # exact lengths 0..998, and one bin for >= 999
MIN_INTRON_FLOOR = 20
MIN_INTRON_PERCENTILE = 1.0
MIN_INTRONS_FOR_MIX = 50  # fewer coding introns than this: one geometric (the mean is all we trust)
_MIX_ITERATIONS = 100


def length_percentile(histogram: list[int], percentile: float, min_count: int = 1) -> int | None:
    """The ``percentile`` percentile of a length histogram (bin i = length i; the last bin holds
    the longer ones), or None with fewer than ``min_count`` lengths counted."""
    histogram = np.asarray(histogram)
    total = int(histogram.sum())
    if total < max(1, min_count):
        return None
    return int(np.searchsorted(np.cumsum(histogram), total * percentile / 100.0))


def min_intron_length(histogram: list[int]) -> int:
    """The ``MIN_INTRON_PERCENTILE`` percentile of coding intron lengths, at least the floor."""
    at = length_percentile(histogram, MIN_INTRON_PERCENTILE)
    return MIN_INTRON_FLOOR if at is None else max(MIN_INTRON_FLOOR, at)


def fit_intron_lengths(histogram: list[int], intron_bases: int, min_intron: int) -> list[list[float]]:
    """Two geometric components of the intron lengths past ``min_intron - 1`` (EM), or [].

    Each intron of length L counts as ``k = L - min_intron + 1 >= 1`` positions of the looping
    intron state (the decoder's ENTRY base and chain cover the rest); a component of mean ``mu``
    gives ``k`` the probability ``(1 - 1/mu) ** (k - 1) / mu``. Lengths in the histogram's
    overflow bin count at the mean overflow length (from ``intron_bases``). Returns [[weight,
    mu], [weight, mu]], short component first; [] with fewer than ``MIN_INTRONS_FOR_MIX``
    introns or when the two components do not separate (means within a factor of 2).
    """
    counts = np.asarray(histogram, dtype=np.float64)
    total = counts.sum()
    if total < MIN_INTRONS_FOR_MIX:
        return []
    lengths = np.arange(counts.size, dtype=np.float64)
    overflow = counts[-1]
    if overflow:
        exact = float((counts[:-1] * lengths[:-1]).sum())
        lengths[-1] = max(float(counts.size - 1), (intron_bases - exact) / overflow)
    k = np.maximum(lengths - (min_intron - 1), 1.0)
    keep = counts > 0
    k, counts = k[keep], counts[keep]
    order = np.argsort(k)
    cumulative = np.cumsum(counts[order])
    median = k[order][np.searchsorted(cumulative, total / 2)]
    weight = np.array([0.5, 0.5])
    mean = np.array([max(1.5, median / 2), max(3.0, float((counts * k).sum() / total) * 2)])
    for _ in range(_MIX_ITERATIONS):
        log_p = np.log(weight)[:, None] + (k[None, :] - 1) * np.log1p(-1 / mean)[:, None] - np.log(mean)[:, None]
        resp = np.exp(log_p - np.logaddexp.reduce(log_p, axis=0))
        mass = (resp * counts).sum(axis=1)
        if np.any(mass <= 0):
            return []
        weight = mass / total
        mean = np.maximum((resp * counts * k).sum(axis=1) / mass, 1.0 + 1e-6)
    order = np.argsort(mean)
    weight, mean = weight[order], mean[order]
    if mean[1] < 2 * mean[0] or weight.min() < 0.02:
        return []
    return [[float(w), float(m)] for w, m in zip(weight, mean)]
