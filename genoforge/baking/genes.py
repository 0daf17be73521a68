"""Gene models from GFF3 rows: transcripts (exons + coding span) and stand-alone features.

STUB: the API is final, the body is being filled in.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Transcript:
    """One transcript in genome coordinates (0-based half-open).

    ``exons`` are sorted, non-overlapping, non-abutting; ``cds`` is the coding span
    ``(min CDS start, max CDS end)`` or None, and lies inside the exons; ``cds_phase`` is the
    phase of the 5'-most CDS piece (lowest coordinate on +, highest on -), 0 for a complete CDS.
    ``biotype`` is one of ``inventory.TRANSCRIPT_BIOTYPES``. ``line`` is the GFF3 line of the row
    that defined the transcript (for messages).
    """

    seqid: str
    strand: str
    biotype: str
    gene_id: str
    transcript_id: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[int, int] | None
    cds_phase: int = 0
    line: int = 0

    @property
    def start(self) -> int:
        return self.exons[0][0]

    @property
    def end(self) -> int:
        return self.exons[-1][1]


@dataclass(frozen=True, slots=True)
class RegionFeature:
    """A stand-alone feature (``inventory.FEATURE_TYPES``) in genome coordinates."""

    seqid: str
    type: str
    strand: str
    start: int
    end: int
    line: int = 0


@dataclass
class Annotation:
    """All gene models of one annotation file, per seqid, each list in canonical order.

    ``skipped`` counts what was not turned into a model, by reason (e.g.
    ``"unsupported type repeat_region"``, ``"seqid missing from FASTA"``, ``"phase mismatch"``).
    """

    transcripts: dict[str, list[Transcript]] = field(default_factory=dict)
    features: dict[str, list[RegionFeature]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    n_genes: int = 0
    n_transcripts: int = 0


def load_annotation(
    gff_path: str | Path,
    seqid_lengths: dict[str, int] | None = None,
    genome: dict | None = None,
) -> Annotation:
    """Build the gene models of a GFF3 file.

    Args:
        gff_path: the annotation (plain, gzip or bgzip).
        seqid_lengths: seqid -> length from the FASTA (``fasta_lengths``). Features on other
            seqids, or reaching past the end, are skipped and counted. None: keep all seqids.
        genome: alternative to ``seqid_lengths``: seqid -> sequence (lengths are taken from it).

    Raises:
        GffFormatError: a row or a relation between rows is malformed (orphan Parent, duplicate
            ID, CDS outside its exon), with the file, line and fix.
    """
    raise NotImplementedError
