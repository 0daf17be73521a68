"""Sensitivity, precision and F1 at the four levels of ``genoforge eval``.

The definitions are stated in :mod:`genoforge.evaluation.compare`; this module computes them from
coding transcripts (:class:`genoforge.genes.gene_models.Transcript` with a CDS span), with no I/O.

Every level compares two collections on the same footing: strand-aware keys (seqid, strand, ...)
built identically for the reference and the prediction, so a feature predicted on the wrong strand
never matches. Nucleotides are counted with merged intervals, never one Python object per base, so
memory stays proportional to the number of CDS pieces.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from genoforge.genes.gene_models import Transcript

# (seqid, strand): the strand-aware coordinate system every key lives in.
Track = tuple[str, str]
Piece = tuple[int, int]
# A CDS chain: the sorted CDS pieces of one transcript, with where they lie.
ChainKey = tuple[str, str, tuple[Piece, ...]]


@dataclass(frozen=True, slots=True)
class LevelScore:
    """Counts and scores of one level.

    ``tp_reference`` reference items matched by the prediction (the sensitivity numerator);
    ``tp_prediction`` predicted items matched by the reference (the precision numerator). They
    are equal at every level except ``gene``, where a locus is matched through any transcript.
    A ratio with a zero denominator is None (undefined), not 0 or 1.
    """

    n_reference: int
    n_prediction: int
    tp_reference: int
    tp_prediction: int

    @property
    def sensitivity(self) -> float | None:
        return self.tp_reference / self.n_reference if self.n_reference else None

    @property
    def precision(self) -> float | None:
        return self.tp_prediction / self.n_prediction if self.n_prediction else None

    @property
    def f1(self) -> float | None:
        """Harmonic mean of sensitivity and precision; 0.0 when both are 0, None if undefined."""
        sn, pr = self.sensitivity, self.precision
        if sn is None or pr is None:
            return None
        return 0.0 if sn + pr == 0 else 2 * sn * pr / (sn + pr)

    @property
    def false_negatives(self) -> int:
        return self.n_reference - self.tp_reference

    @property
    def false_positives(self) -> int:
        return self.n_prediction - self.tp_prediction

    def to_dict(self) -> dict[str, int | float | None]:
        return {
            "n_reference": self.n_reference,
            "n_prediction": self.n_prediction,
            "tp_reference": self.tp_reference,
            "tp_prediction": self.tp_prediction,
            "false_negatives": self.false_negatives,
            "false_positives": self.false_positives,
            "sensitivity": self.sensitivity,
            "precision": self.precision,
            "f1": self.f1,
        }


def cds_pieces(transcript: Transcript) -> tuple[Piece, ...]:
    """The CDS pieces of a transcript (exons intersected with its coding span), sorted."""
    return tuple(transcript.cds_pieces())


def chain_key(transcript: Transcript) -> ChainKey:
    return (transcript.seqid, transcript.strand, cds_pieces(transcript))


def nucleotide_level(
    reference: Sequence[Transcript], prediction: Sequence[Transcript]
) -> LevelScore:
    """CDS bases, strand-aware: a base covered by CDS on both strands counts once per strand."""
    ref_tracks = _merged_tracks(reference)
    pred_tracks = _merged_tracks(prediction)
    n_ref = sum(_total(intervals) for intervals in ref_tracks.values())
    n_pred = sum(_total(intervals) for intervals in pred_tracks.values())
    tp = sum(
        _intersection_length(intervals, pred_tracks[track])
        for track, intervals in ref_tracks.items()
        if track in pred_tracks
    )
    return LevelScore(n_ref, n_pred, tp, tp)


def exon_level(reference: Sequence[Transcript], prediction: Sequence[Transcript]) -> LevelScore:
    """Distinct CDS pieces (seqid, strand, start, end), matched exactly."""
    ref = _piece_set(reference)
    pred = _piece_set(prediction)
    tp = len(ref & pred)
    return LevelScore(len(ref), len(pred), tp, tp)


def transcript_level(
    reference: Sequence[Transcript], prediction: Sequence[Transcript]
) -> LevelScore:
    """Distinct CDS chains (seqid, strand, every piece), matched exactly."""
    ref = {chain_key(t) for t in reference}
    pred = {chain_key(t) for t in prediction}
    tp = len(ref & pred)
    return LevelScore(len(ref), len(pred), tp, tp)


def gene_level(reference: Sequence[Transcript], prediction: Sequence[Transcript]) -> LevelScore:
    """Genes (seqid, strand, gene_id): matched when any of their CDS chains is on the other side."""
    ref_genes = _gene_chains(reference)
    pred_genes = _gene_chains(prediction)
    ref_chains = set().union(*ref_genes.values()) if ref_genes else set()
    pred_chains = set().union(*pred_genes.values()) if pred_genes else set()
    tp_ref = sum(1 for chains in ref_genes.values() if not chains.isdisjoint(pred_chains))
    tp_pred = sum(1 for chains in pred_genes.values() if not chains.isdisjoint(ref_chains))
    return LevelScore(len(ref_genes), len(pred_genes), tp_ref, tp_pred)


def isoform_level(reference: Sequence[Transcript], prediction: Sequence[Transcript]) -> LevelScore:
    """Isoforms: the distinct CDS chains of genes with two or more of them (on each side its own
    genes), matched exactly against every chain of the other side. Sensitivity is the share of
    the reference's alternative isoforms a prediction recovers; a prediction that writes one
    transcript per locus recovers at most one of each such gene's chains."""
    ref_multi = {c for chains in _gene_chains(reference).values() if len(chains) > 1 for c in chains}
    pred_multi = {c for chains in _gene_chains(prediction).values() if len(chains) > 1 for c in chains}
    ref_all = {chain_key(t) for t in reference}
    pred_all = {chain_key(t) for t in prediction}
    return LevelScore(len(ref_multi), len(pred_multi), len(ref_multi & pred_all), len(pred_multi & ref_all))


def _gene_chains(transcripts: Iterable[Transcript]) -> dict[tuple[str, str, str], set[ChainKey]]:
    genes: dict[tuple[str, str, str], set[ChainKey]] = defaultdict(set)
    for t in transcripts:
        genes[(t.seqid, t.strand, t.gene_id)].add(chain_key(t))
    return genes


def _piece_set(transcripts: Iterable[Transcript]) -> set[tuple[str, str, int, int]]:
    return {(t.seqid, t.strand, start, end) for t in transcripts for start, end in cds_pieces(t)}


def _merged_tracks(transcripts: Iterable[Transcript]) -> dict[Track, list[Piece]]:
    """Per (seqid, strand), the union of all CDS pieces as sorted, disjoint intervals."""
    raw: dict[Track, list[Piece]] = defaultdict(list)
    for t in transcripts:
        raw[(t.seqid, t.strand)].extend(cds_pieces(t))
    return {track: _merge(pieces) for track, pieces in raw.items()}


def _merge(pieces: list[Piece]) -> list[Piece]:
    merged: list[Piece] = []
    for start, end in sorted(pieces):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _total(intervals: list[Piece]) -> int:
    return sum(end - start for start, end in intervals)


def _intersection_length(a: list[Piece], b: list[Piece]) -> int:
    """Bases in both of two sorted, disjoint interval lists (a linear merge)."""
    i = j = total = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            total += end - start
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total
