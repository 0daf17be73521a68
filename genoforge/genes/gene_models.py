"""Gene models in genome coordinates (0-based half-open), and the reasons a model is skipped.

:class:`Transcript` (exons + coding span + phase) and :class:`RegionFeature` (a stand-alone
feature) are what :func:`genoforge.genes.annotation.load_annotation` builds; :class:`Annotation` holds
them per seqid in canonical order, with overlap queries and the counts of what was skipped and
why. :func:`cds_pieces` and :func:`piece_phases` give the CDS as exon pieces with their GFF3
phases. The ``SKIP_*`` reasons in :data:`BROKEN_MODEL_REASONS` are broken gene models (errors under
``--strict``); every other reason is a row genoforge does not model.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field


class ExonChain:
    """Mixin for gene models held as sorted ``exons``: their span (``start``, ``end``)."""

    __slots__ = ()
    exons: tuple[tuple[int, int], ...]

    @property
    def start(self) -> int:
        return self.exons[0][0]

    @property
    def end(self) -> int:
        return self.exons[-1][1]


@dataclass(frozen=True, slots=True)
class Transcript(ExonChain):
    """One transcript in genome coordinates (0-based half-open).

    ``exons`` are sorted, non-overlapping and non-abutting; ``cds`` is the coding span
    ``(min CDS start, max CDS end)`` or None and lies inside the exons (its ends are exonic);
    ``cds_phase`` is the phase of the 5'-most CDS piece (lowest coordinate on +, highest on -),
    0 for a complete CDS. ``biotype`` is one of ``inventory.TRANSCRIPT_BIOTYPES``. ``line`` is
    the GFF3 line of the row that defined the transcript (for messages).
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

    def cds_pieces(self) -> list[tuple[int, int]]:
        """The CDS as exon pieces, sorted by coordinate (empty without a CDS)."""
        return cds_pieces(self.exons, self.cds)


@dataclass(frozen=True, slots=True)
class RegionFeature:
    """A stand-alone feature (``inventory.FEATURE_TYPES``) in genome coordinates."""

    seqid: str
    type: str
    strand: str
    start: int
    end: int
    line: int = 0


@dataclass(frozen=True, slots=True)
class SkipSite:
    """Where a skip reason first occurs: the lowest GFF3 line, and what was found there and what
    to do (the message ``strict`` raises)."""

    line: int
    message: str


@dataclass
class Annotation:
    """All gene models of one annotation file, per seqid, each list in canonical order.

    Transcripts are sorted by (start, end, strand, biotype, exons, cds, cds_phase, gene_id,
    transcript_id), features by (start, end, type, strand). ``skipped`` counts what was not
    turned into a model, by reason (e.g. ``"unsupported type repeat_region"``); ``skip_sites``
    gives each reason's first line. Reasons in ``BROKEN_MODEL_REASONS`` are broken gene models,
    the others rows genoforge does not model. ``path`` is the file (for ``file:line``).
    """

    transcripts: dict[str, list[Transcript]] = field(default_factory=dict)
    features: dict[str, list[RegionFeature]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    n_genes: int = 0
    n_transcripts: int = 0
    skip_sites: dict[str, SkipSite] = field(default_factory=dict)
    path: str = field(default="", compare=False)
    # Per-seqid (starts, longest span) indexes for overlap queries, built on first use: treat
    # the lists as read-only once queried.
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def record_skip(self, reason: str, line: int, message: str = "") -> None:
        """Count one skipped model (or ignored row) under ``reason``, found at ``line``."""
        self.skipped[reason] += 1
        site = self.skip_sites.get(reason)
        if site is None or line < site.line:
            self.skip_sites[reason] = SkipSite(line, message or reason)

    def skip_location(self, reason: str) -> str:
        """``file:line`` of the first occurrence of ``reason``."""
        return f"{self.path}:{self.skip_sites[reason].line}"

    def broken_models(self) -> dict[str, int]:
        """Counts of broken gene models by reason (what ``strict`` refuses)."""
        return {r: n for r, n in sorted(self.skipped.items()) if r in BROKEN_MODEL_REASONS}

    def first_broken(self) -> tuple[str, SkipSite] | None:
        """The broken-model reason that occurs first in the file, and where; None if none."""
        sites = [(site.line, reason, site) for reason, site in self.skip_sites.items()
                 if reason in BROKEN_MODEL_REASONS]
        if not sites:
            return None
        _, reason, site = min(sites)
        return reason, site

    def transcripts_overlapping(self, seqid: str, start: int, end: int) -> list[Transcript]:
        """Transcripts whose span overlaps ``[start, end)``, in canonical order."""
        return self._overlapping("t", self.transcripts.get(seqid, []), seqid, start, end)

    def features_overlapping(self, seqid: str, start: int, end: int) -> list[RegionFeature]:
        """Stand-alone features overlapping ``[start, end)``, in canonical order."""
        return self._overlapping("f", self.features.get(seqid, []), seqid, start, end)

    def _overlapping(self, kind: str, items: list, seqid: str, start: int, end: int) -> list:
        key = (kind, seqid)
        if key not in self._index:
            starts = [item.start for item in items]
            longest = max((item.end - item.start for item in items), default=0)
            self._index[key] = (starts, longest)
        starts, longest = self._index[key]
        # An item overlapping [start, end) starts in (start - longest, end): bisect that range.
        lo = bisect_left(starts, start - longest + 1)
        hi = bisect_left(starts, end)
        return [item for item in items[lo:hi] if item.end > start]


def cds_pieces(
    exons: tuple[tuple[int, int], ...], cds: tuple[int, int] | None
) -> list[tuple[int, int]]:
    """Intersect a coding span with exons: the CDS pieces, sorted by coordinate."""
    if cds is None:
        return []
    cds_start, cds_end = cds
    pieces = []
    for exon_start, exon_end in exons:
        start, end = max(exon_start, cds_start), min(exon_end, cds_end)
        if start < end:
            pieces.append((start, end))
    return pieces


def piece_phases(pieces: list[tuple[int, int]], strand: str, cds_phase: int) -> list[int]:
    """GFF3 phase of each CDS piece (pieces sorted by coordinate; result in the same order).

    Walking 5'->3', piece k has phase ``(cds_phase - L_k) mod 3`` with L_k the length before it.
    """
    order = range(len(pieces)) if strand == "+" else range(len(pieces) - 1, -1, -1)
    phases = [0] * len(pieces)
    before = 0
    for k in order:
        phases[k] = (cds_phase - before) % 3
        before += pieces[k][1] - pieces[k][0]
    return phases


def transcript_sort_key(t: Transcript) -> tuple:
    """Canonical order of transcripts within a seqid."""
    return (t.start, t.end, t.strand, t.biotype, t.exons, t.cds or (-1, -1), t.cds_phase,
            t.gene_id, t.transcript_id)


SKIP_MISSING_SEQID = "seqid missing from FASTA"
SKIP_BEYOND_END = "beyond the sequence end"
SKIP_PHASE = "phase mismatch"
SKIP_ORPHAN = "orphan Parent"
SKIP_DUPLICATE_ID = "duplicate ID"
SKIP_OUTSIDE_PARENT = "part outside its parent"
SKIP_OTHER_STRAND = "parts on the other strand"
SKIP_OTHER_SEQID = "parts on another seqid"
SKIP_NO_STRAND = "transcript without strand"
SKIP_OVERLAPPING_EXONS = "overlapping exons"
SKIP_OVERLAPPING_CDS = "overlapping CDS rows"
SKIP_CDS_OUTSIDE_EXON = "CDS outside its exon"
SKIP_STOP_OUTSIDE_EXONS = "stop_codon outside the exons"
SKIP_CDS_GAP = "CDS does not cover its exons"
# Reasons that mean a gene model is broken (the file contradicts itself): ``--strict`` makes each
# an error. Every other reason is a row or biotype genoforge does not model, never an error.
BROKEN_MODEL_REASONS = frozenset(
    {
        SKIP_MISSING_SEQID,
        SKIP_BEYOND_END,
        SKIP_PHASE,
        SKIP_ORPHAN,
        SKIP_DUPLICATE_ID,
        SKIP_OUTSIDE_PARENT,
        SKIP_OTHER_STRAND,
        SKIP_OTHER_SEQID,
        SKIP_NO_STRAND,
        SKIP_OVERLAPPING_EXONS,
        SKIP_OVERLAPPING_CDS,
        SKIP_CDS_OUTSIDE_EXON,
        SKIP_STOP_OUTSIDE_EXONS,
        SKIP_CDS_GAP,
    }
)
STRICT_HINT = "(--strict; without it this model is skipped and counted)"


__all__ = [
    "BROKEN_MODEL_REASONS",
    "SKIP_BEYOND_END",
    "SKIP_CDS_GAP",
    "SKIP_CDS_OUTSIDE_EXON",
    "SKIP_DUPLICATE_ID",
    "SKIP_MISSING_SEQID",
    "SKIP_NO_STRAND",
    "SKIP_ORPHAN",
    "SKIP_OTHER_SEQID",
    "SKIP_OTHER_STRAND",
    "SKIP_OUTSIDE_PARENT",
    "SKIP_OVERLAPPING_CDS",
    "SKIP_OVERLAPPING_EXONS",
    "SKIP_PHASE",
    "SKIP_STOP_OUTSIDE_EXONS",
    "STRICT_HINT",
    "Annotation",
    "ExonChain",
    "RegionFeature",
    "SkipSite",
    "Transcript",
    "cds_pieces",
    "piece_phases",
    "transcript_sort_key",
]
