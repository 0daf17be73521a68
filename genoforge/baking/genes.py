"""Gene models from GFF3 rows: transcripts (exons + coding span) and stand-alone features.

The rules below turn the rows of one GFF3 file into the models the target grammar writes
(docs/target-format.md repeats them for users). Type names are compared case-insensitively.

Transcripts
    A transcript is any of
    (a) an ``mRNA``, ``transcript``, ``primary_transcript``, ``pseudogenic_transcript`` or
        RNA-typed row (``tRNA``, ``rRNA``, ``snoRNA``, ``ncRNA``, ``lnc_RNA`` ...) with ``exon``,
        ``noncoding_exon``, ``CDS`` or ``stop_codon`` children;
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
    Exons come from ``exon``/``noncoding_exon`` rows; when a transcript has only CDS (and
    stop_codon) rows, the exons are those pieces. Exons are sorted; identical duplicates are
    dropped and abutting exons merged (an intron of zero length is no intron); overlapping exons
    skip the transcript ("overlapping exons"). The CDS is kept as the coding span
    ``(min start, max end)`` of the CDS rows: CDS rows are taken exactly as the file gives them,
    so a file whose CDS include the stop codon (all four shared genomes do) keeps it. A separate
    ``stop_codon`` row that lies outside the CDS rows extends the span to cover it, so the span
    always includes the stop wherever the file says where it is. Every CDS row must lie inside an
    exon (else GffFormatError "CDS outside its exon"), and the CDS rows must cover every exonic
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

Skipped and counted (``Annotation.skipped``, reason -> count)
    Every other row that is not part of a gene model ("unsupported type repeat_region"; UTR,
    intron and start_codon rows are implied by exons + CDS and are not counted), models on seqids
    missing from the FASTA ("seqid missing from FASTA") or reaching past its end ("beyond the
    sequence end"), transcripts with strand ``.``/``?`` ("transcript without strand") or with
    parts on the other strand ("parts on the other strand", e.g. trans-splicing), and the
    per-transcript reasons above.

Errors (GffFormatError, with file, line and fix)
    A Parent that no row defines as ID ("orphan Parent"); one ID on rows that are not parts of one
    feature (GFF3 lets a discontinuous feature such as a CDS share one ID over several rows, but
    they must agree on type, seqid, strand and parents); a CDS row outside its transcript's exons;
    parts on another seqid than their transcript.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from genoforge.baking.gff3 import Feature, parse_gff3
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


@dataclass
class Annotation:
    """All gene models of one annotation file, per seqid, each list in canonical order.

    Transcripts are sorted by (start, end, strand, biotype, exons, cds, cds_phase, gene_id,
    transcript_id), features by (start, end, type, strand). ``skipped`` counts what was not
    turned into a model, by reason (e.g. ``"unsupported type repeat_region"``).
    """

    transcripts: dict[str, list[Transcript]] = field(default_factory=dict)
    features: dict[str, list[RegionFeature]] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    n_genes: int = 0
    n_transcripts: int = 0
    # Per-seqid (starts, longest span) indexes for overlap queries, built on first use: treat
    # the lists as read-only once queried.
    _index: dict = field(default_factory=dict, repr=False, compare=False)

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
_TRANSCRIPT_TYPES |= set(_RNA_BIOTYPES)
# Gene types and the biotype they impose on their transcripts (None: decided by the transcript).
_GENE_TYPES: dict[str, str | None] = {
    "gene": None,
    "protein_coding_gene": None,
    "ncrna_gene": None,
    "pseudogene": inv.PSEUDOGENE,
    "transposable_element_gene": inv.TRANSPOSABLE_ELEMENT,
}
_EXON_TYPES = {"exon", "noncoding_exon"}
_PART_TYPES = _EXON_TYPES | {"cds", "stop_codon"}
# Implied by exons + CDS: neither modelled nor counted as skipped.
_IMPLIED_TYPES = {
    "five_prime_utr",
    "three_prime_utr",
    "utr",
    "five_prime_utr_intron",
    "intron",
    "start_codon",
}
_STANDALONE_TYPES = {
    "ars": inv.ORIGIN_OF_REPLICATION,
    "origin_of_replication": inv.ORIGIN_OF_REPLICATION,
    "mobile_genetic_element": inv.MOBILE_GENETIC_ELEMENT,
    "insertion_sequence": inv.MOBILE_GENETIC_ELEMENT,
}
_BIOTYPE_ATTRIBUTES = ("biotype", "transcript_biotype", "gene_biotype")

SKIP_MISSING_SEQID = "seqid missing from FASTA"
SKIP_BEYOND_END = "beyond the sequence end"
SKIP_PHASE = "phase mismatch"


class _Skip(Exception):
    """A transcript that is dropped and counted under ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def load_annotation(
    gff_path: str | Path,
    seqid_lengths: dict[str, int] | None = None,
    genome: dict | None = None,
) -> Annotation:
    """Build the gene models of a GFF3 file (rules in the module docstring).

    Args:
        gff_path: the annotation (plain, gzip or bgzip).
        seqid_lengths: seqid -> length from the FASTA (``fasta_lengths``). Models on other
            seqids, or reaching past the end, are skipped and counted. None: keep all seqids.
        genome: alternative to ``seqid_lengths``: seqid -> sequence (lengths are taken from it).

    Raises:
        GffFormatError: a row or a relation between rows is malformed (orphan Parent, duplicate
            ID, CDS outside its exon), with the file, line and fix.
    """
    if seqid_lengths is None and genome is not None:
        seqid_lengths = {seqid: len(sequence) for seqid, sequence in genome.items()}
    rows = list(parse_gff3(gff_path))
    builder = _Builder(gff_path, rows)
    annotation = Annotation()
    transcripts: dict[str, list[Transcript]] = defaultdict(list)
    features: dict[str, list[RegionFeature]] = defaultdict(list)

    def place(seqid: str, end: int) -> bool:
        if seqid_lengths is None:
            return True
        if seqid not in seqid_lengths:
            annotation.skipped[SKIP_MISSING_SEQID] += 1
            return False
        if end > seqid_lengths[seqid]:
            annotation.skipped[SKIP_BEYOND_END] += 1
            return False
        return True

    for item in builder.models(annotation.skipped):
        if place(item.seqid, item.end):
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
    return annotation


def transcript_sort_key(t: Transcript) -> tuple:
    """Canonical order of transcripts within a seqid."""
    return (t.start, t.end, t.strand, t.biotype, t.exons, t.cds or (-1, -1), t.cds_phase,
            t.gene_id, t.transcript_id)


class _Builder:
    """Relations between rows: ID index, children, and the models they form."""

    def __init__(self, path: str | Path, rows: list[Feature]):
        self.path = path
        self.rows = rows
        self.by_id: dict[str, list[Feature]] = {}
        for row in rows:
            if row.id is None:
                continue
            same = self.by_id.setdefault(row.id, [])
            if same:
                first = same[0]
                if (row.type, row.seqid, row.strand, row.parents) != (
                    first.type,
                    first.seqid,
                    first.strand,
                    first.parents,
                ):
                    raise GffFormatError(
                        f"duplicate ID {row.id!r} (first used on line {first.line} by a "
                        f"{first.type}); give each feature its own ID (rows of one discontinuous "
                        "feature must agree on type, seqid, strand and Parent)",
                        path,
                        row.line,
                    )
            same.append(row)
        self.children: dict[str, list[Feature]] = defaultdict(list)
        for row in rows:
            for parent in row.parents:
                if parent not in self.by_id:
                    raise GffFormatError(
                        f"orphan Parent {parent!r}: no row has ID={parent}; add the parent row "
                        "or fix the Parent attribute",
                        path,
                        row.line,
                    )
                self.children[parent].append(row)

    def models(self, skipped: Counter[str]):
        """Yield Transcript and RegionFeature models in file order; count what is skipped."""
        seen_ids: set[str] = set()
        for row in self.rows:
            if row.id is not None:
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
                    strand = row.strand if row.strand in ("+", "-") else "."
                    yield RegionFeature(
                        row.seqid, _STANDALONE_TYPES[kind], strand, row.start, row.end, row.line
                    )
                elif kind in _PART_TYPES:
                    if not row.parents:
                        skipped[f"{row.type} without Parent"] += 1
                elif kind not in _IMPLIED_TYPES:
                    skipped[f"unsupported type {row.type}"] += 1
            except _Skip as skip:
                skipped[skip.reason] += 1

    # -- transcripts ---------------------------------------------------------------------------

    def _rows_of(self, row: Feature) -> list[Feature]:
        return self.by_id[row.id] if row.id is not None else [row]

    def _parts(self, row: Feature) -> list[Feature]:
        if row.id is None:
            return []
        return [c for c in self.children.get(row.id, ()) if c.type.lower() in _PART_TYPES]

    def _gene(self, row: Feature, kind: str):
        parts = self._parts(row)
        gene_biotype = _GENE_TYPES[kind]
        if parts:
            has_cds = any(p.type.lower() == "cds" for p in parts)
            biotype = gene_biotype or (inv.PROTEIN_CODING if has_cds else _biotype_attribute(row))
            if biotype is None:
                raise _Skip(f"{row.type} with exons but no CDS or known biotype")
            yield self._build(row, parts, biotype, gene_id=row.id or f"line{row.line}")
            return
        has_transcripts = row.id is not None and any(
            c.type.lower() in _TRANSCRIPT_TYPES for c in self.children.get(row.id, ())
        )
        if has_transcripts:
            return  # its transcripts are built from their own rows
        if gene_biotype == inv.PSEUDOGENE:
            yield self._build(row, [], inv.PSEUDOGENE, gene_id=row.id or f"line{row.line}")
            return
        raise _Skip(f"{row.type} without transcripts or parts")

    def _transcript(self, row: Feature, kind: str) -> Transcript:
        parent_rows = [self.by_id[p][0] for p in row.parents]
        gene_id = row.parents[0] if row.parents else (row.id or f"line{row.line}")
        imposed = None
        for parent in parent_rows:
            imposed = imposed or _GENE_TYPES.get(parent.type.lower())
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
                raise _Skip(f"{row.type} without CDS or known biotype")
        if not parts and biotype not in _RNA_BIOTYPES.values() and biotype != inv.PSEUDOGENE:
            raise _Skip(f"{row.type} without exons or CDS")
        return self._build(row, parts, biotype, gene_id)

    def _build(self, row: Feature, parts: list[Feature], biotype: str, gene_id: str) -> Transcript:
        if row.strand not in ("+", "-"):
            raise _Skip("transcript without strand")
        for part in parts:
            if part.seqid != row.seqid:
                raise GffFormatError(
                    f"{part.type} is on seqid {part.seqid} but its parent {row.id!r} (line "
                    f"{row.line}) is on {row.seqid}; fix the seqid or the Parent",
                    self.path,
                    part.line,
                )
            if part.strand != row.strand:
                raise _Skip("parts on the other strand")
        exon_rows = [p for p in parts if p.type.lower() in _EXON_TYPES]
        cds_rows = sorted(
            (p for p in parts if p.type.lower() == "cds"), key=lambda p: (p.start, p.end)
        )
        stop_rows = [p for p in parts if p.type.lower() == "stop_codon"]
        if exon_rows:
            exons = _merge(sorted({(p.start, p.end) for p in exon_rows}), "overlapping exons")
        elif cds_rows or stop_rows:
            # Union: a stop_codon row may repeat the CDS's last bases; CDS overlaps are
            # checked below.
            exons = _union(sorted({(p.start, p.end) for p in cds_rows + stop_rows}))
        else:
            rows = self._rows_of(row)
            exons = ((min(r.start for r in rows), max(r.end for r in rows)),)
        cds = None
        cds_phase = 0
        if cds_rows:
            for first, second in zip(cds_rows, cds_rows[1:]):
                if second.start < first.end:
                    raise _Skip("overlapping CDS rows")
            for piece in cds_rows:
                if not any(s <= piece.start and piece.end <= e for s, e in exons):
                    raise GffFormatError(
                        f"CDS {piece.start + 1}-{piece.end} outside its exon (transcript "
                        f"{row.id or row.line}); fix the CDS or add the exon",
                        self.path,
                        piece.line,
                    )
            cds_start, cds_end = cds_rows[0].start, cds_rows[-1].end
            covered = sum(p.end - p.start for p in cds_rows)
            exonic = sum(e - s for s, e in cds_pieces(exons, (cds_start, cds_end)))
            if covered != exonic:
                raise _Skip("CDS does not cover its exons")
            ordered = cds_rows if row.strand == "+" else cds_rows[::-1]
            cds_phase = ordered[0].phase or 0
            before = 0
            for piece in ordered:
                if piece.phase != (cds_phase - before) % 3:
                    raise _Skip(SKIP_PHASE)
                before += piece.end - piece.start
            for stop in stop_rows:  # a stop codon given apart from the CDS rows: include it
                cds_start, cds_end = min(cds_start, stop.start), max(cds_end, stop.end)
            cds = (cds_start, cds_end)
            if not (_in_exons(exons, cds_start) and _in_exons(exons, cds_end - 1)):
                raise GffFormatError(
                    f"stop_codon outside the exons of transcript {row.id or row.line}; fix the "
                    "stop_codon row or add the exon",
                    self.path,
                    stop_rows[0].line,
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


def _merge(intervals: list[tuple[int, int]], overlap_reason: str) -> tuple[tuple[int, int], ...]:
    """Merge sorted intervals that abut; an overlap skips the transcript with ``overlap_reason``."""
    merged: list[list[int]] = []
    for start, end in intervals:
        if merged and start < merged[-1][1]:
            raise _Skip(overlap_reason)
        if merged and start == merged[-1][1]:
            merged[-1][1] = end
        else:
            merged.append([start, end])
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
