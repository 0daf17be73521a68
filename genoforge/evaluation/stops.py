"""Stop-codon normalisation: make CDS with and without the stop codon compare equal.

Annotations disagree on whether the CDS includes the terminal stop codon (GFF3 from Ensembl,
SGD and most gene finders include it; GTF from GENCODE and some predictors leave it out, as its
own ``stop_codon`` row). With the genome sequence, every coding transcript is brought to the
"stop included" convention, on both sides alike, before anything is compared:

1. The CDS must end on a codon boundary: ``(coding length - cds_phase) % 3 == 0``. Otherwise the
   3' end is partial (or the frame is broken) and the transcript is left as it is.
2. If its last codon (the last three coding bases, read on the transcript's strand, across
   introns if need be) is a stop (TAA, TAG, TGA; the stops of the standard, bacterial and plastid
   codes), it already includes the stop: left as it is.
3. Otherwise the three bases downstream of the CDS are read: along the transcript's remaining
   exons (a 3' UTR), then straight on in the genome past the last exon. If they are a stop and lie
   inside the sequence, the coding span grows to include them (the last exon grows with it when
   the stop lies past it).

Bases are compared case-insensitively; a codon holding N or another ambiguity code is never a
stop. Sequences are streamed one record at a time, so memory is one chromosome.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from genoforge.evaluation.metrics import cds_pieces
from genoforge.genes.fasta import read_fasta
from genoforge.genes.gene_models import Transcript

STOP_CODONS = frozenset({"TAA", "TAG", "TGA"})
_COMPLEMENT = str.maketrans("ACGTacgt", "TGCAtgca")


@dataclasses.dataclass(frozen=True, slots=True)
class StopReport:
    """What normalisation did to one annotation: transcripts extended by their stop codon, and
    coding transcripts that could not be checked because their seqid is not in the genome."""

    extended: int
    missing_seqid: int


def include_stop_codons(
    annotations: Sequence[Sequence[Transcript]], genome_path: str | Path
) -> tuple[list[list[Transcript]], list[StopReport]]:
    """Normalise several annotations against one genome in a single pass over the FASTA.

    Args:
        annotations: coding transcripts of each annotation (e.g. reference and prediction).
        genome_path: FASTA (plain, gzip or bgzip) holding the sequences the transcripts lie on.

    Returns:
        The transcripts of each annotation, in the input order, with stops included, and a
        :class:`StopReport` per annotation.

    Raises:
        FastaFormatError: the genome breaks the FASTA format.
    """
    by_seqid: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for which, transcripts in enumerate(annotations):
        for index, transcript in enumerate(transcripts):
            by_seqid[transcript.seqid].append((which, index))
    results = [list(transcripts) for transcripts in annotations]
    extended = [0] * len(annotations)
    for record in read_fasta(genome_path):
        for which, index in by_seqid.pop(record.seqid, ()):
            normalised = with_stop_codon(results[which][index], record.sequence)
            if normalised is not results[which][index]:
                results[which][index] = normalised
                extended[which] += 1
    missing = [0] * len(annotations)
    for members in by_seqid.values():
        for which, _ in members:
            missing[which] += 1
    reports = [StopReport(extended[i], missing[i]) for i in range(len(annotations))]
    return results, reports


def with_stop_codon(transcript: Transcript, sequence: str) -> Transcript:
    """The transcript with its stop codon inside the CDS (the same object if nothing changes).

    Args:
        transcript: a coding transcript on ``sequence``.
        sequence: the whole sequence of the transcript's seqid.
    """
    if transcript.cds is None or transcript.strand not in ("+", "-"):
        return transcript
    coding_length = sum(end - start for start, end in cds_pieces(transcript))
    if coding_length < 3 or (coding_length - transcript.cds_phase) % 3:
        return transcript
    forward = transcript.strand == "+"
    last_codon = _coding_positions_from_3prime(transcript, 3)
    if _codon(sequence, last_codon, forward) in STOP_CODONS:
        return transcript
    downstream = _downstream_positions(transcript, 3, len(sequence))
    if len(downstream) < 3 or _codon(sequence, downstream, forward) not in STOP_CODONS:
        return transcript
    cds_start, cds_end = transcript.cds
    exons = list(transcript.exons)
    if forward:
        cds_end = downstream[-1] + 1
        if cds_end > exons[-1][1]:
            exons[-1] = (exons[-1][0], cds_end)
    else:
        cds_start = downstream[-1]
        if cds_start < exons[0][0]:
            exons[0] = (cds_start, exons[0][1])
    return dataclasses.replace(transcript, exons=tuple(exons), cds=(cds_start, cds_end))


def _codon(sequence: str, positions: list[int], forward: bool) -> str:
    """The codon at ``positions`` (listed 5'->3' on the transcript's strand), upper case."""
    bases = "".join(sequence[p] for p in positions).upper()
    return bases if forward else bases.translate(_COMPLEMENT)


def _coding_positions_from_3prime(transcript: Transcript, count: int) -> list[int]:
    """The last ``count`` coding positions, in transcript (5'->3') order."""
    pieces = cds_pieces(transcript)
    if transcript.strand == "+":
        positions = [p for start, end in reversed(pieces) for p in range(end - 1, start - 1, -1)]
    else:
        positions = [p for start, end in pieces for p in range(start, end)]
    return positions[:count][::-1]


def _downstream_positions(transcript: Transcript, count: int, sequence_length: int) -> list[int]:
    """Up to ``count`` positions 3' of the CDS: along the exons, then on in the genome."""
    assert transcript.cds is not None
    cds_start, cds_end = transcript.cds
    positions: list[int] = []
    if transcript.strand == "+":
        for start, end in transcript.exons:
            for p in range(max(start, cds_end), end):
                positions.append(p)
                if len(positions) == count:
                    return positions
        p = max(transcript.exons[-1][1], cds_end)
        while len(positions) < count and p < sequence_length:
            positions.append(p)
            p += 1
    else:
        for start, end in reversed(transcript.exons):
            for p in range(min(end, cds_start) - 1, start - 1, -1):
                positions.append(p)
                if len(positions) == count:
                    return positions
        p = min(transcript.exons[0][0], cds_start) - 1
        while len(positions) < count and p >= 0:
            positions.append(p)
            p -= 1
    return positions
