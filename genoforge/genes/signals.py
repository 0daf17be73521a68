"""Splice and start/stop signals: where each window is read, the ORF and intron checks, PWMs.

:class:`genoforge.genes.structure.StructureCounts` counts the bases of four signal windows read
on the transcript's strand (0-based coordinates):

==========  ====================================================  =======================
signal      window (``before`` + ``after`` the boundary ``b``)      fixed bases (indices)
==========  ====================================================  =======================
donor       3 exon + 6 intron bases, ``b`` = first intron base     GT at 3, 4
acceptor    20 intron + 3 exon bases, ``b`` = first exon base      AG at 18, 19
start       10 bases before + ATG + 3 bases, ``b`` = the A         ATG at 10-12
stop        6 bases before + stop + 6 bases, ``b`` = the stop's    the stop at 6-8
            first base
==========  ====================================================  =======================

Window bases outside the sequence, or not A/C/G/T, are not counted (:func:`count_window`).

The position weight matrices are log-odds against the strand-symmetric base composition of the
counted sequences: ``log((c[k, b] + a * bg[b]) / (n[k] + a)) - log(bg[b])`` with ``a`` =
``PWM_PSEUDOCOUNT``, so a column without data scores 0. The decoder scores only the non-fixed
columns (the fixed bases are hard constraints there; their variants are priced by the
dinucleotide fractions instead).
"""

from __future__ import annotations

import numpy as np

from genoforge.genes.classes import encode_bases

# (bases before the boundary, bases from it on) of each signal window; see the module table.
DONOR_FLANK = (3, 6)
ACCEPTOR_FLANK = (20, 3)
START_FLANK = (10, 6)
STOP_FLANK = (6, 9)
# Window indices holding the signal's fixed bases (never scored by the decoder).
DONOR_FIXED = (3, 4)
ACCEPTOR_FIXED = (18, 19)
START_FIXED = (10, 11, 12)
STOP_FIXED = (6, 7, 8)

STOP_CODONS = ("TAA", "TAG", "TGA")
INTRON_CLASSES = ("GT-AG", "GC-AG", "AT-AC")  # (donor, acceptor) dinucleotide pairs accepted
# Pseudocount of the PWM log-odds (module docstring).
PWM_PSEUDOCOUNT = 2.0

_STOP_CODES = {tuple(int(c) for c in encode_bases(codon)) for codon in STOP_CODONS}
_ATG = tuple(int(c) for c in encode_bases("ATG"))
_DINUCLEOTIDES = {cls: (tuple(int(c) for c in encode_bases(cls[:2])), tuple(int(c) for c in encode_bases(cls[3:])))
                  for cls in INTRON_CLASSES}


def is_complete_orf(orf: np.ndarray) -> bool:
    """ATG first, a stop codon last, length a multiple of 3 (base codes, read 5'->3')."""
    return (orf.size >= 6 and orf.size % 3 == 0 and tuple(int(c) for c in orf[:3]) == _ATG
            and tuple(int(c) for c in orf[-3:]) in _STOP_CODES)


def intron_class(codes: np.ndarray, start: int, end: int) -> str | None:
    """``"GT-AG"``, ``"GC-AG"``, ``"AT-AC"`` or None for the intron ``[start, end)`` (+ strand)."""
    if end - start < 4:
        return None
    donor = tuple(int(c) for c in codes[start:start + 2])
    acceptor = tuple(int(c) for c in codes[end - 2:end])
    for cls, pair in _DINUCLEOTIDES.items():
        if (donor, acceptor) == pair:
            return cls
    return None


def count_window(table: list[list[int]], codes: np.ndarray, boundary: int, flank: tuple[int, int]) -> None:
    """Add the bases of the ``flank`` window at ``boundary`` of ``codes`` to ``table`` (in place)."""
    before, after = flank
    for k in range(before + after):
        at = boundary - before + k
        if 0 <= at < codes.size and codes[at] < 4:
            table[k][int(codes[at])] += 1


def pwm_log_odds(table: list[list[int]], background: np.ndarray) -> list[list[float]]:
    """The PWM of a window's base counts ``table`` against ``background`` (module docstring)."""
    counts = np.asarray(table, dtype=np.float64)
    freq = (counts + PWM_PSEUDOCOUNT * background) / (counts.sum(axis=1, keepdims=True) + PWM_PSEUDOCOUNT)
    return [[float(x) for x in row] for row in np.log(freq) - np.log(background)]

