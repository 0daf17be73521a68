"""A window annotation as GFF3 rows in genome coordinates (what ``predict`` and ``bake inspect``
write, and what :func:`genoforge.genes.annotation.load_annotation` reads back to the same models).
"""

from __future__ import annotations

from genoforge.genes import inventory as inv
from genoforge.genes.gene_models import cds_pieces, piece_phases
from genoforge.genes.window_models import WindowAnnotation, WindowTranscript

_TRANSCRIPT_ROW_TYPE = {
    inv.PROTEIN_CODING: "mRNA",
    inv.TRANSPOSABLE_ELEMENT: "mRNA",
    inv.PSEUDOGENE: "pseudogenic_transcript",
    "lncRNA": "lnc_RNA",
}
_GENE_ROW_TYPE = {
    inv.PSEUDOGENE: "pseudogene",
    inv.TRANSPOSABLE_ELEMENT: "transposable_element_gene",
}
_PARTIAL_ATTRIBUTE = {
    inv.PARTIAL_LEFT: "left",
    inv.PARTIAL_RIGHT: "right",
    inv.PARTIAL_BOTH: "both",
}


def transcript_gff3_rows(
    t: WindowTranscript,
    seqid: str,
    offset: int,
    transcript_id: str,
    gene_id: str,
    source: str = "genoforge",
) -> list[str]:
    """The transcript row and its exon, CDS and UTR rows (window coordinates + ``offset``)."""

    def row(ftype: str, start: int, end: int, phase: str, attributes: str) -> str:
        return "\t".join((seqid, source, ftype, str(offset + start + 1), str(offset + end), ".",
                          t.strand, phase, attributes))

    extra = f";biotype={t.biotype}"
    if t.partial != inv.PARTIAL_NONE:
        side = _PARTIAL_ATTRIBUTE[t.partial]
        # NCBI's convention for incomplete ends (genome browsers and submission tools read it):
        # start_range=.,<start> when the lower end is cut, end_range=<end>,. when the upper one is.
        if side in ("left", "both"):
            extra += f";start_range=.,{offset + t.start + 1}"
        if side in ("right", "both"):
            extra += f";end_range={offset + t.end},."
        extra += f";partial={side}"
    ttype = _TRANSCRIPT_ROW_TYPE.get(t.biotype, t.biotype)
    rows = [row(ttype, t.start, t.end, ".", f"ID={transcript_id};Parent={gene_id}{extra}")]
    child = f"Parent={transcript_id}"
    rows += [row("exon", s, e, ".", child) for s, e in t.exons]
    pieces = cds_pieces(t.exons, t.cds)
    for (s, e), phase in zip(pieces, piece_phases(pieces, t.strand, t.cds_phase)):
        rows.append(row("CDS", s, e, str(phase), f"ID={transcript_id}.cds;{child}"))
    if t.cds is not None:
        left = "five_prime_UTR" if t.strand == "+" else "three_prime_UTR"
        right = "three_prime_UTR" if t.strand == "+" else "five_prime_UTR"
        for s, e in t.exons:
            if s < t.cds[0]:
                rows.append(row(left, s, min(e, t.cds[0]), ".", child))
            if e > t.cds[1]:
                rows.append(row(right, max(s, t.cds[1]), e, ".", child))
    return rows


def to_gff3_rows(
    wa: WindowAnnotation,
    seqid: str,
    window_start: int,
    source: str = "genoforge",
    id_prefix: str | None = None,
) -> list[str]:
    """GFF3 feature lines (no trailing newline) of a window annotation, in genome coordinates.

    One gene row per gene index (``pseudogene`` / ``transposable_element_gene`` for those
    biotypes, else ``gene``, so that :func:`~genoforge.genes.annotation.load_annotation` reads the
    rows back to the same models), then per
    transcript its row (``mRNA``, ``pseudogenic_transcript``, ``lnc_RNA`` or the RNA type),
    exon rows, CDS rows with their GFF3 phases on either strand, and UTR rows; stand-alone
    features as single rows. IDs are ``{id_prefix}.g{gene}`` and ``{id_prefix}.g{gene}.t{k}``
    (default prefix ``{seqid}.w{window_start}``); partial models carry ``partial=left|right|both``.
    Blocks are ordered by start.
    """
    prefix = id_prefix if id_prefix is not None else f"{seqid}.w{window_start}"
    by_gene: dict[int, list[WindowTranscript]] = {}
    for t in wa.transcripts:
        by_gene.setdefault(t.gene, []).append(t)
    blocks: list[tuple[int, list[str]]] = []
    for gene, transcripts in by_gene.items():
        gene_id = f"{prefix}.g{gene}"
        start = min(t.start for t in transcripts)
        end = max(t.end for t in transcripts)
        first = transcripts[0]
        gtype = _GENE_ROW_TYPE.get(first.biotype, "gene")
        rows = ["\t".join((seqid, source, gtype, str(window_start + start + 1),
                           str(window_start + end), ".", first.strand, ".",
                           f"ID={gene_id};biotype={first.biotype}"))]
        for k, t in enumerate(transcripts):
            rows += transcript_gff3_rows(t, seqid, window_start, f"{gene_id}.t{k}", gene_id, source)
        blocks.append((start, rows))
    for k, f in enumerate(wa.features):
        attributes = f"ID={prefix}.f{k}"
        if f.partial != inv.PARTIAL_NONE:
            attributes += f";partial={_PARTIAL_ATTRIBUTE[f.partial]}"
        blocks.append((f.start, ["\t".join((seqid, source, f.type, str(window_start + f.start + 1),
                                            str(window_start + f.end), ".", f.strand, ".",
                                            attributes))]))
    blocks.sort(key=lambda block: block[0])
    return [line for _, rows in blocks for line in rows]


__all__ = ["to_gff3_rows", "transcript_gff3_rows"]
