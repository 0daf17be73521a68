"""Per-base gene-structure classes and the labels a transcript set gives a stretch of DNA.

Seventeen strand-specific classes (``N_CLASSES``), one per base:

=====  ==========================  =====================================================
index  name                        meaning
=====  ==========================  =====================================================
0      ``intergenic``              no protein-coding transcript here (ncRNA genes too)
1-3    ``cds+0`` .. ``cds+2``      CDS on +, the base is codon position 0/1/2
4-6    ``intron+0`` .. ``+2``      intron on +, interrupting the CDS after 0/1/2 bases of
                                   a codon (the intron's phase); UTR introns count as 0
7, 8   ``utr5+``, ``utr3+``        5' / 3' UTR exon bases on +
9-16   the same on -               codon positions and phases read 5'->3' on the - strand
=====  ==========================  =====================================================

Codon position and intron phase count along the transcript (5'->3'): on the - strand the first
coding base is the highest coordinate. Each gene contributes one transcript, its longest CDS
(ties: the first in canonical order), so isoforms never give one base two frames. Where genes
overlap, a base keeps the class of highest priority: CDS > intron > UTR > intergenic (the first
gene in canonical order wins a tie).

**Signals.** Beside the classes, the head predicts eight per-base *signals* (``SIGNAL_NAMES``), one
binary output each: on + a donor at ``t`` (``t`` is the intron's first base), an acceptor at ``t``
(``t`` is the exon's first base after the intron), a start at ``t`` (the CDS's first base) and a
stop at ``t`` (the stop codon, the CDS's last three bases, begins at ``t``). On - each is the
mirror image at contig *boundary* ``g`` (between bases ``g - 1`` and ``g``), the same boundary
the structure decoder scores that signal at: a donor at ``g`` has intron at ``g - 1`` and exon at
``g``; an acceptor exon at ``g - 1`` and intron at ``g``; a start has the CDS end at ``g``; a
stop codon occupies ``[g - 3, g)``. :func:`genoforge.model.base_signals.signal_targets` derives
them from the class labels.

Coordinates are 0-based half-open throughout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

INTERGENIC = 0
CDS_PLUS = (1, 2, 3)
INTRON_PLUS = (4, 5, 6)
UTR5_PLUS = 7
UTR3_PLUS = 8
STRAND_OFFSET = 8  # a minus-strand class is its plus-strand class + 8
CDS_MINUS = (9, 10, 11)
INTRON_MINUS = (12, 13, 14)
UTR5_MINUS = 15
UTR3_MINUS = 16
N_CLASSES = 17
N_SIGNALS = 8
SIGNAL_NAMES = ("donor+", "acceptor+", "start+", "stop+", "donor-", "acceptor-", "start-", "stop-")
IGNORE_LABEL = 255  # padding in stored label arrays (uint8); becomes -100 for the loss

CLASS_NAMES = (
    "intergenic",
    "cds+0", "cds+1", "cds+2", "intron+0", "intron+1", "intron+2", "utr5+", "utr3+",
    "cds-0", "cds-1", "cds-2", "intron-0", "intron-1", "intron-2", "utr5-", "utr3-",
)
# Coarse groups for base-level F1 reports: class index -> group name.
CLASS_GROUPS = {
    "intergenic": (INTERGENIC,),
    "cds": CDS_PLUS + CDS_MINUS,
    "intron": INTRON_PLUS + INTRON_MINUS,
    "utr": (UTR5_PLUS, UTR3_PLUS, UTR5_MINUS, UTR3_MINUS),
}

# Base codes of stored sequences (uint8): A C G T, anything else (N, IUPAC) 4.
BASE_CODES = {"A": 0, "C": 1, "G": 2, "T": 3}
N_CODE = 4
_CODE_TABLE = np.full(256, N_CODE, dtype=np.uint8)
for _letter, _code in BASE_CODES.items():
    _CODE_TABLE[ord(_letter)] = _code
    _CODE_TABLE[ord(_letter.lower())] = _code


def encode_bases(sequence: str) -> np.ndarray:
    """uint8 codes (A0 C1 G2 T3, other 4) of ``sequence``; soft-masked bases count as upper case."""
    return _CODE_TABLE[np.frombuffer(sequence.encode("ascii", "replace"), dtype=np.uint8)]


class CodingTranscript(Protocol):
    """What labelling reads of a transcript (``genes.Transcript`` and ``ContigTranscript`` fit)."""

    strand: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[int, int] | None


def representative_transcripts(transcripts: Iterable, gene_of=lambda t: t.gene_id) -> list:
    """One protein-coding transcript per gene: the longest CDS (first in order on a tie)."""
    best: dict = {}
    order: list = []
    for transcript in transcripts:
        if transcript.cds is None or transcript.strand not in ("+", "-"):
            continue
        gene = gene_of(transcript)
        length = coding_length(transcript)
        if gene not in best:
            order.append(gene)
            best[gene] = (length, transcript)
        elif length > best[gene][0]:
            best[gene] = (length, transcript)
    return [best[gene][1] for gene in order]


def coding_length(transcript: CodingTranscript) -> int:
    return sum(end - start for start, end in _cds_pieces(transcript))


def _cds_pieces(transcript: CodingTranscript) -> list[tuple[int, int]]:
    if transcript.cds is None:
        return []
    cds_start, cds_end = transcript.cds
    pieces = []
    for start, end in transcript.exons:
        lo, hi = max(start, cds_start), min(end, cds_end)
        if lo < hi:
            pieces.append((lo, hi))
    return pieces


def _priority(label: np.ndarray) -> np.ndarray:
    """CDS 3 > intron 2 > UTR 1 > intergenic 0, per class index."""
    plus = np.where(label > STRAND_OFFSET, label - STRAND_OFFSET, label)
    return np.select([plus == 0, plus <= 3, plus <= 6], [0, 3, 2], default=1)


def transcript_labels(transcript: CodingTranscript, start: int, end: int) -> tuple[int, np.ndarray] | None:
    """The classes ``transcript`` gives ``[start, end)``: (offset into the range, labels), or None.

    Labels cover the transcript's span clipped to the range; bases of the span that are neither
    exon nor intron of the transcript do not occur (exons and introns tile the span).
    """
    lo, hi = max(transcript.exons[0][0], start), min(transcript.exons[-1][1], end)
    if lo >= hi:
        return None
    span_start, span_end = transcript.exons[0][0], transcript.exons[-1][1]
    minus = transcript.strand == "-"
    shift = STRAND_OFFSET if minus else 0
    labels = np.empty(span_end - span_start, dtype=np.uint8)
    cds = transcript.cds
    # Introns first (phase filled in below for coding introns), then exons as UTR, then CDS.
    labels[:] = INTRON_PLUS[0] + shift
    for exon_start, exon_end in transcript.exons:
        labels[exon_start - span_start : exon_end - span_start] = (UTR5_PLUS if not minus else UTR3_PLUS) + shift
        if cds is not None:
            five = (exon_start, min(exon_end, cds[0])) if not minus else (max(exon_start, cds[1]), exon_end)
            three = (max(exon_start, cds[1]), exon_end) if not minus else (exon_start, min(exon_end, cds[0]))
            for (a, b), cls in ((five, UTR5_PLUS), (three, UTR3_PLUS)):
                if a < b:
                    labels[a - span_start : b - span_start] = cls + shift
    pieces = _cds_pieces(transcript)
    if minus:
        pieces = pieces[::-1]
    done = 0  # coding bases before the current piece, 5'->3'
    previous_end = None
    for piece_start, piece_end in pieces:
        length = piece_end - piece_start
        positions = (done + np.arange(length)) % 3
        if minus:
            positions = positions[::-1]  # 5'->3' runs from piece_end - 1 down to piece_start
        labels[piece_start - span_start : piece_end - span_start] = np.asarray(CDS_PLUS, dtype=np.uint8)[positions] + shift
        if previous_end is not None:  # the coding intron between the previous piece and this one
            a, b = (previous_end, piece_start) if not minus else (piece_end, previous_end)
            labels[a - span_start : b - span_start] = INTRON_PLUS[done % 3] + shift
        previous_end = piece_end if not minus else piece_start
        done += length
    return lo - start, labels[lo - span_start : hi - span_start]


def window_labels(transcripts: Sequence[CodingTranscript], start: int, end: int) -> np.ndarray:
    """uint8 class of every base of ``[start, end)`` from ``transcripts`` (see the module rules).

    Pass representative transcripts (:func:`representative_transcripts`): isoforms of one gene
    would otherwise compete base by base.
    """
    labels = np.zeros(end - start, dtype=np.uint8)
    priority = np.zeros(end - start, dtype=np.int8)
    for transcript in transcripts:
        placed = transcript_labels(transcript, start, end)
        if placed is None:
            continue
        offset, values = placed
        region = slice(offset, offset + values.size)
        new_priority = _priority(values)
        better = new_priority > priority[region]
        labels[region] = np.where(better, values, labels[region])
        priority[region] = np.where(better, new_priority, priority[region])
    return labels


# --- class weights of the per-base loss, and the prior they give the network ---------------

CLASS_WEIGHT_EXPONENT = 0.5  # the per-base CE weights class c by f_c ** -CLASS_WEIGHT_EXPONENT
MIN_CLASS_SHARE = 1e-4  # shares are floored here before the power


def class_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray | None:
    """float64 [N_CLASSES] loss weights from training label counts (None when there are none).

    ``f_c ** -0.5`` (f_c floored at ``MIN_CLASS_SHARE``), normalised so the frequency-weighted mean
    weight is 1; classes absent from the counts get the largest weight present.
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return None
    share = counts / total
    present = counts > 0
    weights = np.maximum(share, MIN_CLASS_SHARE) ** -CLASS_WEIGHT_EXPONENT
    weights /= (share * weights).sum()
    weights[~present] = weights[present].max()
    return weights


def network_class_log_prior(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """The class prior a head trained with :func:`class_weights` on ``counts`` has learnt.

    A class-weighted CE makes the network's posterior proportional to ``w_c f_c p(c | x) / f_c``,
    i.e. its implicit prior is ``w_c f_c`` (normalised). Dividing that out, not the species'
    own frequencies, turns the posterior into a scaled likelihood; the species' structure then
    enters through the decoder's transitions. (Dividing by a species' own tiny frequency of a
    class it lacks, e.g. UTR in yeast, would reward that class wherever the network is not
    certain it is absent.)
    """
    counts = np.asarray(counts, dtype=np.float64)
    weights = class_weights(counts)
    if weights is None:
        return np.full(N_CLASSES, -np.log(N_CLASSES))
    prior = weights * (counts + 1.0) / (counts.sum() + N_CLASSES)
    log_prior = np.log(prior / prior.sum())
    # A class the head never saw has no learnt likelihood: whatever mass an undertrained head
    # leaves on it is noise, and dividing by its tiny prior would reward it everywhere (a
    # 200-step quickstart model decoded whole contigs as one UTR). Its score is the plain log
    # posterior instead (prior 1), so the decoder uses it only where the head insists.
    log_prior[counts == 0] = 0.0
    return log_prior


def pool_intron_phases(log_probs_LC: np.ndarray, log_prior_C: Sequence[float]) -> tuple[np.ndarray, list[float]]:
    """Per-base log-probabilities and prior with each strand's three intron phases pooled.

    Every intron column becomes the log of the strand's total intron probability (and the prior
    likewise), so a decoder that knows the phase from the reading frame is not charged for the
    network's guess of it: inside a long intron the phase is hardly visible to a local model.
    """
    pooled = np.array(log_probs_LC, dtype=np.float32, copy=True)
    prior = list(map(float, log_prior_C))
    for phases in (INTRON_PLUS, INTRON_MINUS):
        columns = list(phases)
        total = np.logaddexp.reduce(pooled[:, columns], axis=1)
        pooled[:, columns] = total[:, None]
        prior_total = float(np.logaddexp.reduce([prior[c] for c in columns]))
        for c in columns:
            prior[c] = prior_total
    return pooled, prior
