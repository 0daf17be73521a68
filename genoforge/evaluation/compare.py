"""Compare a predicted gene annotation with a reference: the engine of ``genoforge eval``.

What is compared
----------------
Both files (GFF3 or GTF, told apart by content: :mod:`genoforge.genes.gtf`) are read into gene
models by :func:`genoforge.genes.annotation.load_annotation`; a GTF's separate stop_codon rows are
merged into its CDS, so AUGUSTUS's or Ensembl's GTF scores as its GFF3 twin does.
Only **coding transcripts** (those with a CDS) on a known strand (``+``/``-``) take part; noncoding
transcripts (tRNA, ncRNA, pseudogenes without CDS, ...) and unstranded ones are counted in the
summary and otherwise ignored, since a gene finder is judged on protein-coding structure. (An
intron-chain level for noncoding transcripts was considered and left out: the predictor's
noncoding output is not what the recipe optimises, and mixing it in would blur the coding scores.)
A transcript's **CDS pieces** are its exons intersected with its coding span; its **CDS chain**
is the sorted tuple of those pieces. Every key below carries (seqid, strand): nothing matches
across strands.

The loader's rules apply to both files alike (its module docstring has them): CDS directly under
a gene (no mRNA) is a transcript of its own; a transcript given only by CDS rows takes them as
exons, so two CDS rows that abut become one piece; a transcript whose CDS phases disagree with
its first piece, or whose CDS rows overlap, is dropped and counted ("phase mismatch", ...), with
a warning here, since a dropped prediction could otherwise only flatter precision; malformed rows
or relations (orphan Parent, CDS outside its exon, ...) stop the comparison with a one-line
error naming the file and line. A file with no feature line at all (a predictor that found no
gene) is an empty annotation, not an error.

With ``--genome``, every coding transcript on both sides is first normalised to include its
terminal stop codon (:mod:`genoforge.evaluation.stops`), so a CDS written with the stop and the
same CDS written without it compare equal at every level.

The four levels
---------------
For each level, sensitivity = tp_reference / n_reference, precision = tp_prediction /
n_prediction, F1 = their harmonic mean (0 when both are 0); a ratio over 0 is undefined (None,
JSON null, shown as "-").

``cds_nucleotide``
    Items are bases (seqid, strand, position) covered by any CDS piece of any coding transcript,
    isoforms merged (a base is counted once per strand however many transcripts cover it).
    tp = bases in both.
``cds_exon``
    Items are distinct CDS pieces (seqid, strand, start, end); a piece shared by isoforms counts
    once. A predicted piece matches only if both ends are exact. tp = pieces in both.
``transcript``
    Items are distinct CDS chains (seqid, strand, pieces); a chain matches only if every piece is
    exact (so the number of pieces, every splice site, the start and the stop agree). UTRs and
    transcript ends are ignored; isoforms that differ only in UTRs are one item.
``gene``
    Items are genes, i.e. the coding transcripts sharing (seqid, strand, gene_id). A reference
    gene is found (tp_reference) if ANY of its CDS chains is among the predicted chains; a
    predicted gene is correct (tp_prediction) if ANY of its chains is among the reference chains.
    The two numerators can differ (a predicted gene matching two reference genes, split genes).

Besides the four levels, ``isoforms`` (JSON key, and a caption line of the table) scores the
distinct CDS chains of genes with two or more of them, each side's own multi-isoform genes
matched exactly against every chain of the other side: the share of the reference's alternative
isoforms that were recovered (:func:`genoforge.evaluation.metrics.isoform_level`).

How this differs from gffcompare and ``gt eval`` (genometools)
--------------------------------------------------------------
- gffcompare compares transcripts by exon/intron chain (UTRs included), builds loci by
  clustering overlapping transcripts, and tolerates fuzzy transcript ends; here everything is
  on the CDS, loci are the annotation's own gene IDs, and matching is exact. gffcompare's
  "Base", "Exon", "Transcript", "Locus" levels correspond to ``cds_nucleotide``, ``cds_exon``,
  ``transcript``, ``gene`` in spirit only.
- ``gt eval`` "nucleotide (CDS level)" equals ``cds_nucleotide`` (TP/FN/FP per strand, bases
  merged), except that gt ignores predictions on seqids absent from the reference (here they are
  false positives) and reads CDS rows as written (here they are exons ∩ coding span, identical
  for a consistent file).
- ``gt eval`` "exon (CDS level, all, collapsed)" equals ``cds_exon``. Its non-collapsed "all"
  counts every CDS row, isoform duplicates included, and its single/initial/internal/terminal
  split is not reported here.
- ``gt eval``'s "missing"/"wrong" counts (reference or predicted features overlapping nothing)
  and its mRNA-level (exon rows, UTRs included) scores are not reproduced.
- ``gt eval`` "mRNA (CDS level)" counts every mRNA (duplicates too) and requires the mRNA's own
  start and end to equal the reference's as well as its CDS rows; ``transcript`` collapses
  duplicate chains and ignores transcript ends. They agree when no two transcripts on one side
  share a CDS chain and every mRNA spans exactly its CDS.
- ``gt eval`` "gene (CDS level)" requires the gene's span to be equal and, when both genes have
  the same number of mRNAs, every mRNA to match; ``gene`` here needs any one shared CDS chain.
  They agree on single-transcript genes whose gene row spans exactly their CDS.
- ``gt eval`` does not normalise stop codons; gffcompare matches exon chains, on which the
  stop-codon convention only shows where a transcript has no 3' UTR.

tests/evaluation/test_eval_real.py checks the equalities above against ``gt eval`` on the shared genomes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genoforge.console import warn
from genoforge.errors import GffFormatError
from genoforge.evaluation.metrics import (
    LevelScore,
    exon_level,
    gene_level,
    isoform_level,
    nucleotide_level,
    transcript_level,
)
from genoforge.evaluation.stops import StopReport, include_stop_codons
from genoforge.genes.annotation import load_annotation
from genoforge.genes.gene_models import Annotation, Transcript
from genoforge.io import open_text

SCHEMA_VERSION = 1
LEVELS = ("cds_nucleotide", "cds_exon", "transcript", "gene")
# Loader skip reasons (genoforge.genes.annotation) that drop a transcript the file meant to define:
# worth a warning, since a dropped prediction can only raise precision. Other reasons (types a
# gene model does not use, such as repeat_region) are routine and only reported in the JSON.
TRANSCRIPT_DROP_REASONS = (
    "phase mismatch",
    "overlapping exons",
    "overlapping CDS rows",
    "CDS does not cover its exons",
    "parts on the other strand",
    "transcript without strand",
)


@dataclass
class AnnotationSummary:
    """What one side held: coding genes/transcripts compared, and what was left out and why."""

    path: str
    genes: int
    coding_transcripts: int
    noncoding_transcripts: int
    unstranded_transcripts: int
    skipped: Counter[str] = field(default_factory=Counter)
    stops: StopReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "genes": self.genes,
            "coding_transcripts": self.coding_transcripts,
            "noncoding_transcripts_ignored": self.noncoding_transcripts,
            "unstranded_transcripts_ignored": self.unstranded_transcripts,
            "skipped_by_loader": dict(sorted(self.skipped.items())),
            "stop_codons_added": None if self.stops is None else self.stops.extended,
            "seqids_missing_from_genome": None if self.stops is None else self.stops.missing_seqid,
        }


@dataclass
class EvalResult:
    """Scores per level (keys of :data:`LEVELS`) and a summary of each side."""

    levels: dict[str, LevelScore]
    reference: AnnotationSummary
    prediction: AnnotationSummary
    genome: str | None = None
    isoforms: LevelScore | None = None  # metrics.isoform_level: chains of multi-isoform genes

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (schema version :data:`SCHEMA_VERSION`)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "genome": self.genome,
            "stop_codons_normalised": self.genome is not None,
            "reference": self.reference.to_dict(),
            "prediction": self.prediction.to_dict(),
            "levels": {name: self.levels[name].to_dict() for name in LEVELS},
            "isoforms": None if self.isoforms is None else self.isoforms.to_dict(),
        }


def compare_transcripts(
    reference: list[Transcript], prediction: list[Transcript]
) -> dict[str, LevelScore]:
    """Score two sets of gene models at every level (no I/O, no stop-codon normalisation).

    For in-memory models, e.g. decoded validation windows during training. Noncoding and
    unstranded transcripts are left out here too; normalise stops first with
    :func:`genoforge.evaluation.stops.with_stop_codon` if the conventions may differ.
    """
    reference = [t for t in reference if _is_scored(t)]
    prediction = [t for t in prediction if _is_scored(t)]
    return {
        "cds_nucleotide": nucleotide_level(reference, prediction),
        "cds_exon": exon_level(reference, prediction),
        "transcript": transcript_level(reference, prediction),
        "gene": gene_level(reference, prediction),
    }


def evaluate(
    reference_path: str | Path,
    prediction_path: str | Path,
    genome_path: str | Path | None = None,
) -> EvalResult:
    """Compare a prediction with a reference annotation at the four levels.

    Args:
        reference_path: reference GFF3 or GTF (plain, gzip or bgzip).
        prediction_path: predicted GFF3 or GTF.
        genome_path: optional genome FASTA; when given, CDS are normalised to include the stop
            codon on both sides before comparing.

    Returns:
        An :class:`EvalResult`; its ``to_dict()`` is the JSON report.

    Raises:
        GffFormatError: either annotation is malformed (file, line, fix in the message).
        FastaFormatError: the genome is malformed.
        InputError: a file is missing or truncated.
    """
    reference, ref_summary = _load_coding(reference_path)
    prediction, pred_summary = _load_coding(prediction_path)
    if genome_path is not None:
        (reference, prediction), (ref_stops, pred_stops) = include_stop_codons(
            [reference, prediction], genome_path
        )
        ref_summary.stops, pred_summary.stops = ref_stops, pred_stops
        for name, summary in (("reference", ref_summary), ("prediction", pred_summary)):
            if summary.stops.missing_seqid:
                warn(
                    f"{summary.stops.missing_seqid} {name} transcripts lie on seqids absent from "
                    f"{genome_path}; their stop codons were not checked"
                )
    foreign = {t.seqid for t in prediction} - {t.seqid for t in reference}
    if foreign:
        shown = ", ".join(sorted(foreign)[:5]) + (" ..." if len(foreign) > 5 else "")
        warn(
            f"{len(foreign)} predicted seqids have no reference transcript ({shown}); "
            "their predictions count as false positives"
        )
    return EvalResult(
        levels=compare_transcripts(reference, prediction),
        reference=ref_summary,
        prediction=pred_summary,
        genome=None if genome_path is None else str(genome_path),
        isoforms=isoform_level([t for t in reference if _is_scored(t)],
                               [t for t in prediction if _is_scored(t)]),
    )


def _load_coding(path: str | Path) -> tuple[list[Transcript], AnnotationSummary]:
    try:
        annotation = load_annotation(path)
    except GffFormatError:
        # The strict parser rejects a file without feature lines (for baking, surely a wrong
        # path); here it is a legitimate answer, e.g. a predictor that found no gene.
        if _has_feature_lines(path):
            raise
        warn(f"{path}: no feature lines; scoring it as an empty annotation")
        annotation = Annotation()
    dropped = {r: annotation.skipped[r] for r in TRANSCRIPT_DROP_REASONS if annotation.skipped[r]}
    if dropped:
        detail = ", ".join(f"{count} {reason}" for reason, count in dropped.items())
        warn(f"{path}: {sum(dropped.values())} transcripts left out of the comparison ({detail})")
    coding: list[Transcript] = []
    noncoding = unstranded = 0
    for transcripts in annotation.transcripts.values():
        for transcript in transcripts:
            if transcript.cds is None:
                noncoding += 1
            elif transcript.strand not in ("+", "-"):
                unstranded += 1
            else:
                coding.append(transcript)
    genes = len({(t.seqid, t.strand, t.gene_id) for t in coding})
    summary = AnnotationSummary(
        path=str(path),
        genes=genes,
        coding_transcripts=len(coding),
        noncoding_transcripts=noncoding,
        unstranded_transcripts=unstranded,
        skipped=Counter(annotation.skipped),
    )
    return coding, summary


def _is_scored(transcript: Transcript) -> bool:
    return transcript.cds is not None and transcript.strand in ("+", "-")


def _has_feature_lines(path: str | Path) -> bool:
    """Whether a GFF3/GTF file has any line that is neither blank nor a comment before ##FASTA."""
    with open_text(path) as handle:
        for line in handle:
            if line.startswith("##FASTA"):
                return False
            if line.strip() and not line.startswith("#"):
                return True
    return False
