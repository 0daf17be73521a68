"""Gene models from GFF3 rows: transcripts (exons + coding span) and stand-alone features.

A GTF file (told apart by its content, whatever its name) is first read as the equivalent GFF3
rows by :mod:`genoforge.genes.gtf` (IDs from transcript_id/gene_id, the transcript and gene rows
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
    A row that breaks the GFF3 subset (:mod:`genoforge.genes.gff3`: also binary, non-UTF-8 and
    empty files); Parent links that form a cycle (``a -> b -> a``, or a row that is its own
    Parent); with ``require_models``, a file that yields no model at all, or whose gene models
    all lie on seqids absent from the FASTA.

Where the code is: this module holds :func:`load_annotation` and the file-level checks; the models,
:class:`Annotation` and the skip reasons are in :mod:`~genoforge.genes.gene_models`, the type tables
in :mod:`~genoforge.genes.gene_types`, the relations between rows (IDs, Parents, cycles) in
:mod:`~genoforge.genes.gene_builder`, and the exon/CDS/phase rules of one transcript in
:mod:`~genoforge.genes.transcript_build`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from genoforge.errors import GffFormatError
from genoforge.genes.gene_builder import GeneModelBuilder
from genoforge.genes.gene_models import (
    SKIP_BEYOND_END,
    SKIP_MISSING_SEQID,
    STRICT_HINT,
    Annotation,
    RegionFeature,
    Transcript,
    transcript_sort_key,
)
from genoforge.genes.gff3 import Feature
from genoforge.genes.gtf import parse_annotation


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
        GffFormatError: a row is malformed (see :mod:`genoforge.genes.gff3`), Parent links form
            a cycle, or (``strict``) a model is broken, or (``require_models``) nothing is usable;
            always with the file, line and fix.
    """
    if seqid_lengths is None and genome is not None:
        seqid_lengths = {seqid: len(sequence) for seqid, sequence in genome.items()}
    rows = parse_annotation(gff_path)
    annotation = Annotation(path=str(gff_path))
    builder = GeneModelBuilder(gff_path, rows, annotation)
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
    builder: GeneModelBuilder,
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

