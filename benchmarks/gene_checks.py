"""Two checks of predicted gene structure that the F1 levels of ``genoforge eval`` do not show.

- :func:`is_complete_orf`: the transcript's CDS, spliced from the genome and read on its strand,
  starts with ATG, ends with a stop codon (TAA, TAG, TGA), has a length divisible by 3, no
  in-frame stop before the last codon, a 5'-most phase of 0, and every intron of the transcript
  reads GT..AG, GC..AG or AT..AC.
- :func:`boundary_errors`: for each predicted coding transcript that overlaps a reference coding
  transcript on the same seqid and strand (coding spans sharing at least one base), the distance
  in bp from each of its CDS exon boundaries to the nearest reference CDS exon boundary of the
  same side (a piece's lower coordinate to the reference pieces' lower coordinates, its upper to
  their upper ones) among the reference transcripts it overlaps.

:func:`structure_report` runs both on one GFF3 against its region FASTA and reference, after the
same stop-codon normalisation ``genoforge eval --genome`` applies (a CDS written without its stop
codon is extended by it when the next three bases are one), so conventions do not count.
Only the library is used (``genoforge.genes.annotation.load_annotation``,
``genoforge.evaluation.stops``); nothing here writes files.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from pathlib import Path

from genoforge.errors import GffFormatError
from genoforge.evaluation.stops import STOP_CODONS, with_stop_codon
from genoforge.genes.annotation import load_annotation
from genoforge.genes.fasta import read_fasta
from genoforge.genes.gene_models import Transcript

_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")
SPLICE_SITES = frozenset({("GT", "AG"), ("GC", "AG"), ("AT", "AC")})
WITHIN_BP = 10  # the "% of boundaries within N bp" column


def _revcomp(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def spliced_cds(transcript: Transcript, sequence: str) -> str:
    """The CDS bases of ``transcript`` in 5'->3' order on its strand, upper case."""
    bases = "".join(sequence[start:end] for start, end in transcript.cds_pieces()).upper()
    return bases if transcript.strand == "+" else _revcomp(bases)


def introns_canonical(transcript: Transcript, sequence: str) -> bool:
    """Every intron (gap between consecutive exons) reads GT..AG, GC..AG or AT..AC on the strand."""
    for (_, left_end), (right_start, _) in zip(transcript.exons, transcript.exons[1:]):
        intron = sequence[left_end:right_start].upper()
        if transcript.strand == "-":
            intron = _revcomp(intron)
        if len(intron) < 4 or (intron[:2], intron[-2:]) not in SPLICE_SITES:
            return False
    return True


def is_complete_orf(transcript: Transcript, sequence: str) -> bool:
    """Whether the transcript is a complete ORF with canonical introns (module docstring)."""
    if transcript.cds is None or transcript.strand not in ("+", "-") or transcript.cds_phase:
        return False
    cds = spliced_cds(transcript, sequence)
    if len(cds) < 6 or len(cds) % 3 or not cds.startswith("ATG") or cds[-3:] not in STOP_CODONS:
        return False
    if any(cds[i : i + 3] in STOP_CODONS for i in range(0, len(cds) - 3, 3)):
        return False
    return introns_canonical(transcript, sequence)


def _coding(path: str | Path) -> list[Transcript]:
    try:
        annotation = load_annotation(path)
    except GffFormatError:
        if any(line.strip() and not line.startswith("#") for line in open(path, encoding="utf-8")):
            raise
        return []  # no feature lines: a predictor that found nothing
    return [t for ts in annotation.transcripts.values() for t in ts if t.cds is not None and t.strand in ("+", "-")]


def _percentile(values: list[int], q: float) -> float | None:
    """The q-quantile (0..1) of ``values`` by linear interpolation (numpy's default); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def boundary_errors(reference: list[Transcript], prediction: list[Transcript]) -> list[int]:
    """Distances (bp) of predicted CDS exon boundaries to the nearest same-side reference boundary.

    Only predicted transcripts whose coding span overlaps a reference one (same seqid, strand) count;
    each of their CDS pieces gives two distances (its lower and its upper coordinate).
    """
    by_track: dict[tuple[str, str], list[Transcript]] = defaultdict(list)
    for transcript in reference:
        by_track[(transcript.seqid, transcript.strand)].append(transcript)
    distances: list[int] = []
    for predicted in prediction:
        start, end = predicted.cds
        overlapping = [r for r in by_track.get((predicted.seqid, predicted.strand), ())
                       if r.cds[0] < end and start < r.cds[1]]
        if not overlapping:
            continue
        lows = sorted({p[0] for r in overlapping for p in r.cds_pieces()})
        highs = sorted({p[1] for r in overlapping for p in r.cds_pieces()})
        for low, high in predicted.cds_pieces():
            distances.append(_nearest(lows, low))
            distances.append(_nearest(highs, high))
    return distances


def _nearest(sorted_values: list[int], value: int) -> int:
    i = bisect.bisect_left(sorted_values, value)
    candidates = sorted_values[max(0, i - 1) : i + 1]
    return min(abs(value - c) for c in candidates)


def structure_report(prediction_gff: str | Path, reference_gff: str | Path, genome_fasta: str | Path) -> dict:
    """ORF completeness and boundary errors of one prediction (see the module docstring).

    Returns a dict: ``transcripts`` (coding, stranded), ``complete_orfs``, ``complete_orf_pct``,
    ``boundaries`` (how many distances), ``boundary_p50`` / ``boundary_p90`` (bp),
    ``boundary_within_10bp_pct`` and ``boundary_exact_pct``; percentages are None when undefined.
    """
    genome = {record.seqid: record.sequence for record in read_fasta(genome_fasta)}
    reference = [_normalised(t, genome) for t in _coding(reference_gff)]
    prediction = [_normalised(t, genome) for t in _coding(prediction_gff)]
    complete = sum(1 for t in prediction if t.seqid in genome and is_complete_orf(t, genome[t.seqid]))
    distances = boundary_errors(reference, prediction)

    def pct(count: int, total: int) -> float | None:
        return 100.0 * count / total if total else None

    return {
        "transcripts": len(prediction),
        "complete_orfs": complete,
        "complete_orf_pct": pct(complete, len(prediction)),
        "boundaries": len(distances),
        "boundary_p50": _percentile(distances, 0.5),
        "boundary_p90": _percentile(distances, 0.9),
        "boundary_within_10bp_pct": pct(sum(d <= WITHIN_BP for d in distances), len(distances)),
        "boundary_exact_pct": pct(sum(d == 0 for d in distances), len(distances)),
    }


def _normalised(transcript: Transcript, genome: dict[str, str]) -> Transcript:
    sequence = genome.get(transcript.seqid)
    return transcript if sequence is None else with_stop_codon(transcript, sequence)
