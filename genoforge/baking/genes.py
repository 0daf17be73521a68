"""Gene models from GFF3 rows: transcripts (exons + coding span) and stand-alone features.

A GTF file (told apart by its content, whatever its name) is first read as the equivalent GFF3
rows by :mod:`genoforge.baking.gtf` (IDs from transcript_id/gene_id, the transcript and gene rows
it leaves out made up); everything below then applies to it unchanged.

The rules below turn the rows of one GFF3 file into the models the target grammar writes
(docs/target-format.md repeats them for users). Type names are compared case-insensitively.

Transcripts
    A transcript is any of
    (a) an ``mRNA``, ``transcript``, ``primary_transcript``, ``pseudogenic_transcript``,
        ``mRNA_TE_gene`` (TAIR10) or RNA-typed row (``tRNA``, ``rRNA``, ``snoRNA``, ``ncRNA``,
        ``lnc_RNA`` ...) with ``exon``, ``noncoding_exon``, ``pseudogenic_exon``, ``CDS`` or
        ``stop_codon`` children;
    (b) a gene-typed row (``gene``, ``pseudogene``, ``transposable_element_gene``, ...) with such
        parts directly under it (SGD yeast has no mRNA rows: CDS rows hang off the gene); the
        transcript then is its own gene;
    (c) an RNA-typed or pseudogene row with no parts at all: one exon spanning the row.
    Its gene is its first Parent (a transcript row) or itself (cases b, c, and parentless RNA
    rows such as SGD's tRNAs). Isoforms share the gene. A part with ``Parent=a,b`` belongs to
    each parent.

Biotypes (``inventory.TRANSCRIPT_BIOTYPES``)
    RNA types map to ``inventory.RNA_TYPES`` (and ``lnc_RNA``/``lncRNA`` -> ``lncRNA``); a gene
    typed ``pseudogene`` (or a ``pseudogenic_transcript``) gives ``pseudogene``;
    ``transposable_element_gene`` gives ``transposable_element``; an ``mRNA``, or a gene or
    ``transcript`` with CDS, gives ``protein_coding``. A ``transcript`` without CDS takes its
    ``biotype``/``transcript_biotype`` attribute when that is a known biotype. Anything else
    (``miRNA``, ``scRNA``, a gene with neither parts nor transcripts ...) is skipped and counted.

Exons and CDS
    Exons come from ``exon``/``noncoding_exon``/``pseudogenic_exon`` rows; when a transcript has only CDS (and
    stop_codon) rows, the exons are those pieces. Exons are sorted; identical duplicates are
    dropped and abutting exons merged (an intron of zero length is no intron); overlapping exons
    skip the transcript ("overlapping exons"). The CDS is kept as the coding span
    ``(min start, max end)`` of the CDS rows: CDS rows are taken exactly as the file gives them,
    so a file whose CDS include the stop codon (all four shared genomes do) keeps it. A separate
    ``stop_codon`` row that lies outside the CDS rows extends the span to cover it, so the span
    always includes the stop wherever the file says where it is. Every CDS row must lie inside an
    exon (else skipped, "CDS outside its exon"), and the CDS rows must cover every exonic
    base of the span (else skipped, "CDS does not cover its exons"); overlapping CDS rows
    (ribosomal frameshifts) are skipped ("overlapping CDS rows").

Phase
    ``cds_phase`` is the phase of the 5'-most CDS row (lowest start on +, highest end on -).
    Walking the CDS rows 5'->3', row k must have phase ``(cds_phase - L_k) mod 3`` where L_k is
    the total length of the rows before it (the first full codon of row k starts where the
    reading frame set up by row 0 puts it). A mismatch skips the transcript ("phase mismatch").

Stand-alone features (``inventory.FEATURE_TYPES``)
    ``ARS`` and ``origin_of_replication`` -> ``origin_of_replication``;
    ``mobile_genetic_element`` and ``insertion_sequence`` -> ``mobile_genetic_element``.
    Their strand ``?`` becomes ``.``.

Which rows take part
    Only rows of gene models: gene, transcript and stand-alone types, and part types (exon,
    CDS, stop_codon) under a Parent. Every other row (UTR and intron rows, which exons + CDS
    imply; RNA-seq evidence such as parentless ``intron`` or ``transcript_region`` rows;
    ``piRNA``, ``protein``, ``base_call_error_correction`` ...) is set aside BEFORE IDs are
    indexed, so such rows may reuse IDs freely, and a Parent naming one of them (TAIR's
    ``Parent=AT1G01010.1,AT1G01010.1-Protein`` on CDS rows) is dropped, not an orphan.

Ignored rows (counted in ``Annotation.skipped``, never an error)
    "unsupported type X" for each set-aside row of a type that is not implied (UTR, intron and
    start_codon rows, and their GTF spellings such as AUGUSTUS's ``5'-UTR``, ``tss`` and ``tts``,
    are not counted), "X without Parent" for a parentless part, and models of biotypes genoforge
    does not write ("unsupported type miRNA", "gene without transcripts or parts", "transcript
    without CDS or known biotype", "mRNA without exons or CDS" ...).

Broken gene models (``BROKEN_MODEL_REASONS``: skipped and counted; errors under ``strict``)
    A broken model is left out, counted by reason, and the reason's first line is kept in
    ``Annotation.skip_sites`` (``skip_location`` gives ``file:line``); the rest of the file is
    built as usual. Reasons: "orphan Parent" (a Parent that no row defines: the missing
    transcript counts once, a transcript under a missing gene once each), "duplicate ID" (one ID
    on rows that are not parts of one feature: GFF3 lets a discontinuous part such as a CDS
    share one ID over several rows that agree on type, seqid, strand and Parent, but two gene,
    transcript or stand-alone rows with one ID at different coordinates are two features, and
    every model that uses the ID is skipped, never merged), "part outside its parent" (a part
    outside its transcript's row, a transcript outside its gene's), "parts on the other strand"
    (e.g. trans-splicing, or a transcript on the other strand than its gene), "parts on another
    seqid", "transcript without strand" (``.``/``?``), "seqid missing from FASTA", "beyond the
    sequence end", and the exon/CDS/phase reasons above ("overlapping exons", "overlapping CDS
    rows", "CDS outside its exon", "stop_codon outside the exons", "CDS does not cover its
    exons", "phase mismatch"). ``strict`` raises the earliest one as a GffFormatError.

Errors (GffFormatError, one line with file, line and fix)
    A row that breaks the GFF3 subset (:mod:`genoforge.baking.gff3`: also binary, non-UTF-8 and
    empty files); Parent links that form a cycle (``a -> b -> a``, or a row that is its own
    Parent); with ``require_models``, a file that yields no model at all, or whose gene models
    all lie on seqids absent from the FASTA.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from genoforge.baking.gff3 import Feature
from genoforge.baking.gtf import parse_annotation
from genoforge.errors import GffFormatError
from genoforge.tokenizer import inventory as inv


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


# --- type tables (keys lower case) -------------------------------------------------------------

_RNA_BIOTYPES = {t.lower(): t for t in inv.RNA_TYPES} | {"lncrna": "lncRNA", "lnc_rna": "lncRNA"}
_TRANSCRIPT_TYPES = {"mrna", "transcript", "primary_transcript", "pseudogenic_transcript"}
_TRANSCRIPT_TYPES |= {"mrna_te_gene"}  # TAIR10's transcript of a transposable_element_gene
_TRANSCRIPT_TYPES |= set(_RNA_BIOTYPES)
# Gene types and the biotype they impose on their transcripts (None: decided by the transcript).
_GENE_TYPES: dict[str, str | None] = {
    "gene": None,
    "protein_coding_gene": None,
    "ncrna_gene": None,
    "pseudogene": inv.PSEUDOGENE,
    "transposable_element_gene": inv.TRANSPOSABLE_ELEMENT,
}
_EXON_TYPES = {"exon", "noncoding_exon", "pseudogenic_exon"}
_PART_TYPES = _EXON_TYPES | {"cds", "stop_codon"}
# Implied by exons + CDS: neither modelled nor counted as skipped.
_IMPLIED_TYPES = {
    "five_prime_utr",
    "three_prime_utr",
    "utr",
    "five_prime_utr_intron",
    "intron",
    "start_codon",
    # GTF spellings (AUGUSTUS: 5'-UTR, tss, tts; older Ensembl: 5UTR)
    "5'-utr",
    "3'-utr",
    "5utr",
    "3utr",
    "tss",
    "tts",
}
_STANDALONE_TYPES = {
    "ars": inv.ORIGIN_OF_REPLICATION,
    "origin_of_replication": inv.ORIGIN_OF_REPLICATION,
    "mobile_genetic_element": inv.MOBILE_GENETIC_ELEMENT,
    "insertion_sequence": inv.MOBILE_GENETIC_ELEMENT,
}
# Rows that a gene model hangs from (parts hang from these through Parent).
_NON_PART_TYPES = set(_GENE_TYPES) | _TRANSCRIPT_TYPES | set(_STANDALONE_TYPES)
_BIOTYPE_ATTRIBUTES = ("biotype", "transcript_biotype", "gene_biotype")

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


class _Skip(Exception):
    """A model that is dropped and counted under ``reason``; ``line`` and ``message`` (what was
    found; what to do) locate it for the summary and for ``strict``."""

    def __init__(self, reason: str, line: int = 0, message: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.message = message or reason


def load_annotation(
    gff_path: str | Path,
    seqid_lengths: dict[str, int] | None = None,
    genome: dict | None = None,
    *,
    strict: bool = False,
    require_models: bool = False,
) -> Annotation:
    """Build the gene models of a GFF3 or GTF file (rules in the module docstring).

    Args:
        gff_path: the annotation, GFF3 or GTF (told apart by content), plain, gzip or bgzip.
        seqid_lengths: seqid -> length from the FASTA (``fasta_lengths``). Models on other
            seqids, or reaching past the end, are skipped and counted. None: keep all seqids.
        genome: alternative to ``seqid_lengths``: seqid -> sequence (lengths are taken from it).
        strict: a broken gene model (``BROKEN_MODEL_REASONS``) is an error instead of a skip;
            the error names the earliest such line.
        require_models: a file that yields no model at all, or whose gene models all lie on
            seqids missing from ``seqid_lengths``, is an error (what ``bake`` wants; a predictor's
            output may legitimately hold no gene).

    Raises:
        GffFormatError: a row is malformed (see :mod:`genoforge.baking.gff3`), Parent links form
            a cycle, or (``strict``) a model is broken, or (``require_models``) nothing is usable;
            always with the file, line and fix.
    """
    if seqid_lengths is None and genome is not None:
        seqid_lengths = {seqid: len(sequence) for seqid, sequence in genome.items()}
    rows = parse_annotation(gff_path)
    annotation = Annotation(path=str(gff_path))
    builder = _Builder(gff_path, rows, annotation)
    transcripts: dict[str, list[Transcript]] = defaultdict(list)
    features: dict[str, list[RegionFeature]] = defaultdict(list)

    def place(item: Transcript | RegionFeature) -> bool:
        if seqid_lengths is None:
            return True
        what = item.transcript_id if isinstance(item, Transcript) else item.type
        if item.seqid not in seqid_lengths:
            annotation.record_skip(
                SKIP_MISSING_SEQID,
                item.line,
                f"seqid {item.seqid!r} of {what} is not in the FASTA; add the sequence or drop "
                "its rows",
            )
            return False
        if item.end > seqid_lengths[item.seqid]:
            annotation.record_skip(
                SKIP_BEYOND_END,
                item.line,
                f"{what} ends at {item.end}, beyond the end of {item.seqid} "
                f"({seqid_lengths[item.seqid]} bp in the FASTA); fix the coordinates or the FASTA",
            )
            return False
        return True

    for item in builder.models():
        if place(item):
            (transcripts if isinstance(item, Transcript) else features)[item.seqid].append(item)

    for seqid, items in transcripts.items():
        items.sort(key=transcript_sort_key)
        annotation.transcripts[seqid] = items
    for seqid, regions in features.items():
        regions.sort(key=lambda f: (f.start, f.end, f.type, f.strand))
        annotation.features[seqid] = regions
    annotation.n_transcripts = sum(len(items) for items in annotation.transcripts.values())
    annotation.n_genes = len(
        {(t.seqid, t.gene_id) for items in annotation.transcripts.values() for t in items}
    )
    # Order of the checks: a FASTA that shares no seqid with the file is a file-level defect
    # (the two files do not belong together) and wins; then, under strict, the earliest broken
    # model, which is the precise cause when it was the file's only model; then "no usable gene
    # model" for a file that yields nothing (its skips, if any, are all ignored rows).
    if require_models:
        _check_seqids_shared(gff_path, builder, annotation, seqid_lengths)
    if strict:
        broken = annotation.first_broken()
        if broken is not None:
            _, site = broken
            raise GffFormatError(f"{site.message} {STRICT_HINT}", gff_path, site.line)
    if require_models:
        _check_usable(gff_path, rows, annotation)
    return annotation


def _check_seqids_shared(
    path: str | Path,
    builder: _Builder,
    annotation: Annotation,
    seqid_lengths: dict[str, int] | None,
) -> None:
    """File-level defect: no model was kept and every model row lies on a seqid the FASTA lacks."""
    if annotation.transcripts or annotation.features:
        return
    model_rows = builder.model_rows
    if seqid_lengths is not None and model_rows:
        seqids = sorted({r.seqid for r in model_rows})
        if not any(seqid in seqid_lengths for seqid in seqids):
            fasta = sorted(seqid_lengths)
            raise GffFormatError(
                f"none of the gene models' {len(seqids)} seqids ({_first_few(seqids)}) is in the "
                f"FASTA ({_first_few(fasta)}); use the same sequence names in both files",
                path,
                model_rows[0].line,
            )


def _check_usable(path: str | Path, rows: list[Feature], annotation: Annotation) -> None:
    """File-level defect: the file yields no gene model at all."""
    if annotation.transcripts or annotation.features:
        return
    reasons = ", ".join(f"{reason} {count}" for reason, count in annotation.skipped.most_common(3))
    raise GffFormatError(
        f"no usable gene model in {len(rows)} feature rows (skipped: {reasons or 'none'}); is this "
        "a gene annotation (gene/mRNA/exon/CDS rows)?",
        path,
        rows[0].line,
    )


def _first_few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def transcript_sort_key(t: Transcript) -> tuple:
    """Canonical order of transcripts within a seqid."""
    return (t.start, t.end, t.strand, t.biotype, t.exons, t.cds or (-1, -1), t.cds_phase,
            t.gene_id, t.transcript_id)


def _same_feature(first: Feature, row: Feature) -> bool:
    """Whether two rows with one ID are parts of one feature: a discontinuous part (CDS over
    several rows) agrees on type, seqid, strand and Parent; a gene, transcript or stand-alone
    feature must be the same row again (two of them at other coordinates are two features)."""
    if (row.type.lower(), row.seqid, row.strand, row.parents) != (
        first.type.lower(),
        first.seqid,
        first.strand,
        first.parents,
    ):
        return False
    return row.type.lower() in _PART_TYPES or (row.start, row.end) == (first.start, first.end)


class _Builder:
    """Relations between the rows of gene models: ID index, children, and the models they form.

    Only gene-model rows (gene, transcript, part and stand-alone types; parts only under a
    Parent) take part; every other row is counted as ignored before any ID is looked at, so
    evidence rows can reuse IDs freely. Skips go to ``annotation.record_skip``.
    """

    def __init__(self, path: str | Path, rows: list[Feature], annotation: Annotation):
        self.path = path
        self.annotation = annotation
        all_ids = {row.id for row in rows if row.id is not None}
        # IDs that a gene model can hang from: genes, transcripts, stand-alone features.
        model_ids = {
            row.id for row in rows if row.id is not None and row.type.lower() in _NON_PART_TYPES
        }
        self.model_rows: list[Feature] = []
        for row in rows:
            kind = row.type.lower()
            if kind in _NON_PART_TYPES:
                self.model_rows.append(row)
            elif kind in _PART_TYPES:
                if not row.parents:
                    annotation.record_skip(
                        f"{row.type} without Parent", row.line,
                        f"{row.type} without Parent belongs to no gene model; add Parent=TRANSCRIPT",
                    )
                elif any(p in model_ids or p not in all_ids for p in row.parents):
                    self.model_rows.append(row)
                # else: a part of rows genoforge does not model (a miRNA's exon): counted there
            elif kind not in _IMPLIED_TYPES:
                annotation.record_skip(
                    f"unsupported type {row.type}", row.line,
                    f"{row.type} rows are not part of a gene model genoforge writes",
                )
        self.by_id: dict[str, list[Feature]] = {}
        # ID -> (first row, a later row that is not part of the same feature)
        self.duplicates: dict[str, tuple[Feature, Feature]] = {}
        for row in self.model_rows:
            if row.id is None:
                continue
            same = self.by_id.setdefault(row.id, [])
            if same and row.id not in self.duplicates and not _same_feature(same[0], row):
                self.duplicates[row.id] = (same[0], row)
            same.append(row)
        self.children: dict[str, list[Feature]] = defaultdict(list)
        # Keyed by id(row), not by line: a GTF transcript or gene row that the file left out is
        # made up with the line of its first part (genoforge.baking.gtf), so lines can repeat.
        self.model_parents: dict[int, tuple[str, ...]] = {}  # row -> Parents that are models
        self.orphan_of: dict[int, str] = {}  # row -> its first Parent that no row defines
        for row in self.model_rows:
            parents = []
            for parent in row.parents:
                if parent in self.by_id:
                    parents.append(parent)
                    self.children[parent].append(row)
                elif parent not in all_ids:
                    self.orphan_of.setdefault(id(row), parent)
                # else: a Parent that is a row of no gene model (a TAIR protein row): dropped
            self.model_parents[id(row)] = tuple(parents)
        self._check_cycles()

    # -- relations ---------------------------------------------------------------------------

    def _check_cycles(self) -> None:
        """A Parent chain that comes back to itself is an error (no model can be built from it)."""
        parents_of: dict[str, set[str]] = defaultdict(set)
        line_of: dict[tuple[str, str], int] = {}
        for row in self.model_rows:
            if row.id is None or row.id in self.duplicates:
                continue
            for parent in self.model_parents[id(row)]:
                if parent in self.duplicates:
                    continue
                parents_of[row.id].add(parent)
                line_of.setdefault((row.id, parent), row.line)
        done: set[str] = set()
        for start in sorted(parents_of):
            if start in done:
                continue
            path: list[str] = []
            on_path: set[str] = set()
            stack: list[tuple[str, list[str]]] = [(start, sorted(parents_of[start]))]
            path.append(start)
            on_path.add(start)
            while stack:
                node, pending = stack[-1]
                if not pending:
                    stack.pop()
                    path.pop()
                    on_path.discard(node)
                    done.add(node)
                    continue
                parent = pending.pop()
                if parent in on_path:
                    cycle = path[path.index(parent):] + [parent]
                    raise GffFormatError(
                        f"Parent cycle {' -> '.join(repr(c) for c in cycle)}: a feature cannot "
                        "be its own ancestor; fix the Parent attributes",
                        self.path,
                        line_of[(node, parent)],
                    )
                if parent in done or parent not in parents_of:
                    continue
                stack.append((parent, sorted(parents_of[parent])))
                path.append(parent)
                on_path.add(parent)

    def _duplicate(self, feature_id: str) -> _Skip:
        first, other = self.duplicates[feature_id]
        return _Skip(
            SKIP_DUPLICATE_ID,
            other.line,
            f"duplicate ID {feature_id!r} (first used on line {first.line} by a {first.type} at "
            f"{first.seqid}:{first.start + 1}-{first.end}, here a {other.type} at "
            f"{other.seqid}:{other.start + 1}-{other.end}); give each feature its own ID (rows of "
            "one discontinuous feature must agree on type, seqid, strand and Parent)",
        )

    def _orphan(self, row: Feature) -> _Skip | None:
        parent = self.orphan_of.get(id(row))
        if parent is None:
            return None
        return _Skip(
            SKIP_ORPHAN,
            row.line,
            f"orphan Parent {parent!r}: no row has ID={parent}; add the parent row or fix the "
            "Parent attribute",
        )

    def models(self):
        """Yield Transcript and RegionFeature models in file order; record what is skipped."""
        seen_ids: set[str] = set()
        counted_orphans: set[str] = set()
        record = self.annotation.record_skip
        for row in self.model_rows:
            if row.id is not None and row.id not in self.duplicates:
                if row.id in seen_ids:
                    continue  # a later row of a multi-row feature: handled with its first row
                seen_ids.add(row.id)
            kind = row.type.lower()
            try:
                if kind in _TRANSCRIPT_TYPES:
                    yield self._transcript(row, kind)
                elif kind in _GENE_TYPES:
                    yield from self._gene(row, kind)
                elif kind in _STANDALONE_TYPES:
                    if row.id in self.duplicates:
                        raise self._duplicate(row.id)
                    strand = row.strand if row.strand in ("+", "-") else "."
                    yield RegionFeature(
                        row.seqid, _STANDALONE_TYPES[kind], strand, row.start, row.end, row.line
                    )
                else:  # a part: only its missing parent is counted here (once per missing ID)
                    parent = self.orphan_of.get(id(row))
                    if parent is not None and parent not in counted_orphans:
                        counted_orphans.add(parent)
                        skip = self._orphan(row)
                        assert skip is not None
                        raise skip
            except _Skip as skip:
                record(skip.reason, skip.line, skip.message)

    # -- transcripts ---------------------------------------------------------------------------

    def _parts(self, row: Feature) -> list[Feature]:
        if row.id is None:
            return []
        parts = [c for c in self.children.get(row.id, ()) if c.type.lower() in _PART_TYPES]
        for part in parts:
            if part.id is not None and part.id in self.duplicates:
                raise self._duplicate(part.id)
        return parts

    def _gene(self, row: Feature, kind: str):
        has_transcripts = row.id is not None and any(
            c.type.lower() in _TRANSCRIPT_TYPES for c in self.children.get(row.id, ())
        )
        has_parts = row.id is not None and any(
            c.type.lower() in _PART_TYPES for c in self.children.get(row.id, ())
        )
        if has_transcripts and not has_parts:
            return  # its transcripts are built from their own rows
        if row.id in self.duplicates:
            raise self._duplicate(row.id)
        orphan = self._orphan(row)
        if orphan is not None:
            raise orphan
        parts = self._parts(row)
        gene_biotype = _GENE_TYPES[kind]
        if parts:
            has_cds = any(p.type.lower() == "cds" for p in parts)
            biotype = gene_biotype or (inv.PROTEIN_CODING if has_cds else _biotype_attribute(row))
            if biotype is None:
                raise _Skip(f"{row.type} with exons but no CDS or known biotype", row.line)
            yield self._build(row, parts, biotype, gene_id=row.id or f"line{row.line}")
            return
        if gene_biotype == inv.PSEUDOGENE:
            yield self._build(row, [], inv.PSEUDOGENE, gene_id=row.id or f"line{row.line}")
            return
        raise _Skip(f"{row.type} without transcripts or parts", row.line)

    def _transcript(self, row: Feature, kind: str) -> Transcript:
        if row.id is not None and row.id in self.duplicates:
            raise self._duplicate(row.id)
        orphan = self._orphan(row)
        if orphan is not None:
            raise orphan
        parents = self.model_parents[id(row)]
        for parent in parents:
            if parent in self.duplicates:
                raise self._duplicate(parent)
        parent_rows = [self.by_id[p][0] for p in parents]
        gene_id = parents[0] if parents else (row.id or f"line{row.line}")
        imposed = None
        for parent in parent_rows:
            imposed = imposed or _GENE_TYPES.get(parent.type.lower())
            self._check_inside(row, parent)
        parts = self._parts(row)
        has_cds = any(p.type.lower() == "cds" for p in parts)
        if kind in _RNA_BIOTYPES:
            biotype = _RNA_BIOTYPES[kind]
        elif kind == "pseudogenic_transcript":
            biotype = inv.PSEUDOGENE
        elif imposed is not None:
            biotype = imposed
        elif kind == "mrna" or has_cds:
            biotype = inv.PROTEIN_CODING
        else:
            biotype = _biotype_attribute(row)
            if biotype is None:
                raise _Skip(f"{row.type} without CDS or known biotype", row.line)
        if not parts and biotype not in _RNA_BIOTYPES.values() and biotype != inv.PSEUDOGENE:
            raise _Skip(f"{row.type} without exons or CDS", row.line)
        return self._build(row, parts, biotype, gene_id)

    def _check_inside(self, part: Feature, parent: Feature) -> None:
        """A part (or transcript) must share its parent's seqid and strand and lie inside it."""
        name = parent.id or f"line {parent.line}"
        if part.seqid != parent.seqid:
            raise _Skip(
                SKIP_OTHER_SEQID,
                part.line,
                f"{part.type} is on seqid {part.seqid} but its parent {name!r} (line "
                f"{parent.line}) is on {parent.seqid}; fix the seqid or the Parent",
            )
        if part.strand != parent.strand and parent.strand in ("+", "-"):
            raise _Skip(
                SKIP_OTHER_STRAND,
                part.line,
                f"{part.type} is on strand {part.strand} but its parent {name!r} (line "
                f"{parent.line}) is on {parent.strand}; fix the strand or the Parent",
            )
        if part.start < parent.start or part.end > parent.end:
            raise _Skip(
                SKIP_OUTSIDE_PARENT,
                part.line,
                f"{part.type} {part.start + 1}-{part.end} lies outside its parent {name!r} "
                f"{parent.start + 1}-{parent.end} (line {parent.line}); fix the coordinates or "
                "the Parent",
            )

    def _build(self, row: Feature, parts: list[Feature], biotype: str, gene_id: str) -> Transcript:
        name = row.id or f"line {row.line}"
        if row.strand not in ("+", "-"):
            raise _Skip(
                SKIP_NO_STRAND,
                row.line,
                f"{row.type} {name!r} has strand {row.strand!r}; give the transcript strand + or -",
            )
        for part in parts:
            self._check_inside(part, row)
        exon_rows = [p for p in parts if p.type.lower() in _EXON_TYPES]
        cds_rows = sorted(
            (p for p in parts if p.type.lower() == "cds"), key=lambda p: (p.start, p.end)
        )
        stop_rows = [p for p in parts if p.type.lower() == "stop_codon"]
        if exon_rows:
            exons = _merge(exon_rows, name)
        elif cds_rows or stop_rows:
            # Union: a stop_codon row may repeat the CDS's last bases; CDS overlaps are
            # checked below.
            exons = _union(sorted({(p.start, p.end) for p in cds_rows + stop_rows}))
        else:
            exons = ((row.start, row.end),)
        cds = None
        cds_phase = 0
        if cds_rows:
            for first, second in zip(cds_rows, cds_rows[1:]):
                if second.start < first.end:
                    raise _Skip(
                        SKIP_OVERLAPPING_CDS,
                        second.line,
                        f"CDS {second.start + 1}-{second.end} overlaps CDS {first.start + 1}-"
                        f"{first.end} (line {first.line}) of {name!r} (a ribosomal frameshift?); "
                        "genoforge models one reading frame per transcript: drop one row",
                    )
            for piece in cds_rows:
                if not any(s <= piece.start and piece.end <= e for s, e in exons):
                    raise _Skip(
                        SKIP_CDS_OUTSIDE_EXON,
                        piece.line,
                        f"CDS {piece.start + 1}-{piece.end} outside its exon (transcript {name}); "
                        "fix the CDS or add the exon",
                    )
            cds_start, cds_end = cds_rows[0].start, cds_rows[-1].end
            covered = sum(p.end - p.start for p in cds_rows)
            exonic = sum(e - s for s, e in cds_pieces(exons, (cds_start, cds_end)))
            if covered != exonic:
                raise _Skip(
                    SKIP_CDS_GAP,
                    row.line,
                    f"the CDS rows of {name!r} cover {covered} of the {exonic} exonic bases "
                    f"between {cds_start + 1} and {cds_end}; add the missing CDS rows",
                )
            ordered = cds_rows if row.strand == "+" else cds_rows[::-1]
            cds_phase = ordered[0].phase or 0
            before = 0
            for piece in ordered:
                wanted = (cds_phase - before) % 3
                if piece.phase != wanted:
                    raise _Skip(
                        SKIP_PHASE,
                        piece.line,
                        f"CDS phase {piece.phase} of {name!r}, but the rows before it set up "
                        f"phase {wanted}; fix the phase column",
                    )
                before += piece.end - piece.start
            for stop in stop_rows:  # a stop codon given apart from the CDS rows: include it
                cds_start, cds_end = min(cds_start, stop.start), max(cds_end, stop.end)
            cds = (cds_start, cds_end)
            if not (_in_exons(exons, cds_start) and _in_exons(exons, cds_end - 1)):
                raise _Skip(
                    SKIP_STOP_OUTSIDE_EXONS,
                    stop_rows[0].line,
                    f"stop_codon outside the exons of transcript {name}; fix the stop_codon row "
                    "or add the exon",
                )
        return Transcript(
            seqid=row.seqid,
            strand=row.strand,
            biotype=biotype,
            gene_id=gene_id,
            transcript_id=row.id or f"line{row.line}",
            exons=exons,
            cds=cds,
            cds_phase=cds_phase,
            line=row.line,
        )


def _merge(exon_rows: list[Feature], name: str) -> tuple[tuple[int, int], ...]:
    """Exon rows as sorted exons: identical rows count once, abutting ones merge (an intron of
    zero length is no intron); an overlap skips the transcript."""
    merged: list[list[int]] = []
    previous: Feature | None = None
    seen: set[tuple[int, int]] = set()
    for exon in sorted(exon_rows, key=lambda r: (r.start, r.end, r.line)):
        if (exon.start, exon.end) in seen:
            continue
        seen.add((exon.start, exon.end))
        if merged and exon.start < merged[-1][1]:
            assert previous is not None
            raise _Skip(
                SKIP_OVERLAPPING_EXONS,
                exon.line,
                f"exon {exon.start + 1}-{exon.end} overlaps exon {previous.start + 1}-"
                f"{previous.end} (line {previous.line}) of {name!r}; fix or drop one of them",
            )
        if merged and exon.start == merged[-1][1]:
            merged[-1][1] = exon.end
        else:
            merged.append([exon.start, exon.end])
        previous = exon
    return tuple((s, e) for s, e in merged)


def _union(intervals: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Union of sorted intervals (overlapping or abutting ones merge)."""
    merged: list[list[int]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


def _in_exons(exons: tuple[tuple[int, int], ...], position: int) -> bool:
    return any(s <= position < e for s, e in exons)


def _biotype_attribute(row: Feature) -> str | None:
    for key in _BIOTYPE_ATTRIBUTES:
        for value in row.attributes.get(key, ()):
            if value in inv.TRANSCRIPT_BIOTYPES:
                return value
            if value.lower() in _RNA_BIOTYPES:
                return _RNA_BIOTYPES[value.lower()]
    return None
