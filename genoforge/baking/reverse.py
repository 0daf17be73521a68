"""Reverse-complement copies of training windows (``bake --reverse_complement``).

A gene finder must read both strands alike, and the minus strand of every training window is a
second, equally real training example: the same genes, read 5'->3' the other way. The copy is
made from the baked window itself, so all its parts agree by construction:

* the DNA: reversed and complemented (IUPAC codes keep their meaning; anything else stays N);
* the per-base classes: reversed, each strand-specific class swapped with its other-strand twin
  (``cds+1`` <-> ``cds-1``, ...; intergenic and unlabelled stay), which is exact because the
  classes count codon positions and intron phases 5'->3' on their own strand
  (:mod:`genoforge.genes.classes`);
* the annotation: every record mirrored in the window (``[s, e)`` -> ``[W - e, W - s)``), its
  strand flipped and its partial marks swapped (``<`` <-> ``>``); a CDS keeps its GFF3 phase,
  which is taken at its 5' end, and that end is the same base on either strand. The records are
  then put back in canonical order (:func:`genoforge.genes.target.canonicalize`).

Validation windows are never copied: they are scored as the genome reads.
"""

from __future__ import annotations

import numpy as np

from genoforge.genes.classes import N_CLASSES, N_CODE, STRAND_OFFSET
from genoforge.genes.window_models import (
    WindowAnnotation,
    WindowFeature,
    WindowTranscript,
    canonicalize,
)

_DNA_COMPLEMENT = str.maketrans("ACGTURYSWKMBDHVNacgturyswkmbdhvn", "TGCAAYRSWMKVHDBNtgcaayrswmkvhdbn")
_CODE_COMPLEMENT = np.array([3, 2, 1, 0, N_CODE], dtype=np.uint8)  # A C G T N -> T G C A N
_CLASS_TWIN = np.arange(256, dtype=np.uint8)  # 255 (unlabelled) and intergenic map to themselves
_CLASS_TWIN[1 : STRAND_OFFSET + 1] = np.arange(1, STRAND_OFFSET + 1) + STRAND_OFFSET
_CLASS_TWIN[STRAND_OFFSET + 1 : N_CLASSES] = np.arange(1, STRAND_OFFSET + 1)
_STRAND = {"+": "-", "-": "+"}
_PARTIAL = {".": ".", "<": ">", ">": "<", "<>": "<>"}


def reverse_complement_dna(sequence: str) -> str:
    """The reverse complement of ``sequence`` (case and IUPAC codes kept)."""
    return sequence.translate(_DNA_COMPLEMENT)[::-1]


def reverse_complement_codes(codes: np.ndarray) -> np.ndarray:
    """Base codes (A0 C1 G2 T3, other 4) of the reverse complement."""
    return _CODE_COMPLEMENT[np.asarray(codes)[::-1]]


def reverse_complement_labels(labels: np.ndarray) -> np.ndarray:
    """Per-base classes of the reverse complement: reversed, strand twins swapped."""
    return _CLASS_TWIN[np.asarray(labels)[::-1]]


def reverse_complement_annotation(annotation: WindowAnnotation, window_length: int) -> WindowAnnotation:
    """Every record mirrored in a window of ``window_length`` bases (module docstring)."""

    def mirror(start: int, end: int) -> tuple[int, int]:
        return window_length - end, window_length - start

    records: list[WindowTranscript | WindowFeature] = []
    for record in annotation.records:
        if isinstance(record, WindowTranscript):
            records.append(WindowTranscript(
                exons=tuple(mirror(s, e) for s, e in reversed(record.exons)),
                cds=None if record.cds is None else mirror(*record.cds),
                strand=_STRAND.get(record.strand, record.strand),
                biotype=record.biotype,
                gene=record.gene,
                partial=_PARTIAL[record.partial],
                cds_phase=record.cds_phase,
            ))
        else:
            start, end = mirror(record.start, record.end)
            records.append(WindowFeature(type=record.type, strand=_STRAND.get(record.strand, record.strand),
                                         start=start, end=end, partial=_PARTIAL[record.partial]))
    return canonicalize(WindowAnnotation(tuple(records)))
