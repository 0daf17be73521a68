"""Windows: how a chromosome segment is cut into the windows that become samples.

Window size. Each species uses its taxon's ``window_size`` from the taxa table
(:mod:`genoforge.baking.taxa`); a species without a taxon uses the bake's ``--window_size``.

Tiling (:func:`tile`). Windows are laid inside one segment ``[a, b)`` of a chromosome (a training
or validation segment, :mod:`genoforge.genes.split`), never across a segment boundary:

- overlap = ``floor(window_size * overlap_fraction)`` (default a quarter of the window), so the
  stride is ``window_size - overlap``; with ``overlap_fraction <= 0.5`` any gene no longer than
  the overlap lies whole in at least one window of its segment, and longer genes appear cut
  (marked partial) in consecutive windows;
- window starts are ``a, a + stride, a + 2*stride, ...`` while the window ends before ``b``; one
  last window is then aligned to end exactly at ``b`` (it overlaps its neighbour by more than the
  usual overlap), so every base of the segment is covered and no window runs past it;
- a segment shorter than the window gives one window of the segment's length, unless it is
  shorter than ``window_size // 10`` (``min_window_length``): such scraps give no window and are
  counted as ``short``.

Starts depend only on the segment and the window size: no randomness, no dependence on workers.

Filters, applied per window in this order:

1. ``mostly_n``: more than ``max_n_ratio`` of the window's bases are ``N``/``n`` -> dropped.
2. ``intergenic``: a window with no annotation record (its target is just ``<bos> <eos>``) is kept
   only with probability ``intergenic_rate``, decided by :func:`keep_intergenic` from a hash of
   ``(seed, species, seqid, window_start)``; the model must learn to say "no gene", but a genome
   full of deserts should not drown the genes.
"""

from __future__ import annotations

from genoforge.genes.split import unit_hash

MIN_WINDOW_DIVISOR = 10  # segments shorter than window_size // 10 are scraps, not samples


def overlap_of(window_size: int, overlap_fraction: float) -> int:
    """Bases shared by neighbouring windows."""
    if not 0.0 <= overlap_fraction < 1.0:
        raise ValueError(f"overlap_fraction must be in [0, 1), got {overlap_fraction}")
    return int(window_size * overlap_fraction)


def min_window_length(window_size: int) -> int:
    return max(1, window_size // MIN_WINDOW_DIVISOR)


def tile(segment_start: int, segment_end: int, window_size: int, overlap: int) -> list[tuple[int, int]]:
    """Window ``(start, end)`` pairs covering ``[segment_start, segment_end)`` (rules above).

    Returns an empty list for a segment shorter than :func:`min_window_length`.
    """
    if window_size <= 0 or not 0 <= overlap < window_size:
        raise ValueError(f"bad window_size {window_size} / overlap {overlap}")
    length = segment_end - segment_start
    if length < min_window_length(window_size):
        return []
    if length <= window_size:
        return [(segment_start, segment_end)]
    stride = window_size - overlap
    windows = []
    start = segment_start
    while start + window_size < segment_end:
        windows.append((start, start + window_size))
        start += stride
    windows.append((segment_end - window_size, segment_end))
    return windows


def n_count(sequence: str) -> int:
    """Number of unknown bases (``N`` or soft-masked ``n``)."""
    return sequence.count("N") + sequence.count("n")


def is_mostly_n(sequence: str, max_n_ratio: float) -> bool:
    """Whether more than ``max_n_ratio`` of ``sequence`` is N (an empty sequence is)."""
    return not sequence or n_count(sequence) > max_n_ratio * len(sequence)


def keep_intergenic(seed: int, species: str, seqid: str, window_start: int, intergenic_rate: float) -> bool:
    """Whether an intergenic window is kept (deterministic in its arguments)."""
    if intergenic_rate >= 1.0:
        return True
    return unit_hash("intergenic", seed, species, seqid, window_start) < intergenic_rate
