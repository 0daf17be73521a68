"""One transcript from its row and its part rows: exons, coding span and phase, checked.

:func:`build_transcript` applies the exon, CDS and phase rules of :mod:`genoforge.genes.annotation`
(exons merged, CDS inside exons and covering them, phases consistent 5'->3', a separate stop codon
included); :func:`check_inside` the rule that a part lies inside its parent, on its seqid and
strand. A rule that fails raises :class:`ModelSkip`: the model is dropped and counted under its
reason (or, under ``strict``, reported).
"""

from __future__ import annotations

from genoforge.genes.gene_models import (
    SKIP_CDS_GAP,
    SKIP_CDS_OUTSIDE_EXON,
    SKIP_NO_STRAND,
    SKIP_OTHER_SEQID,
    SKIP_OTHER_STRAND,
    SKIP_OUTSIDE_PARENT,
    SKIP_OVERLAPPING_CDS,
    SKIP_OVERLAPPING_EXONS,
    SKIP_PHASE,
    SKIP_STOP_OUTSIDE_EXONS,
    Transcript,
    cds_pieces,
)
from genoforge.genes.gene_types import EXON_TYPES
from genoforge.genes.gff3 import Feature


class ModelSkip(Exception):
    """A model that is dropped and counted under ``reason``; ``line`` and ``message`` (what was
    found; what to do) locate it for the summary and for ``strict``."""

    def __init__(self, reason: str, line: int = 0, message: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.message = message or reason


def check_inside(part: Feature, parent: Feature) -> None:
    """A part (or transcript) must share its parent's seqid and strand and lie inside it.

    Raises:
        ModelSkip: it does not (another seqid, the other strand, or outside the parent).
    """
    name = parent.id or f"line {parent.line}"
    if part.seqid != parent.seqid:
        raise ModelSkip(
            SKIP_OTHER_SEQID,
            part.line,
            f"{part.type} is on seqid {part.seqid} but its parent {name!r} (line "
            f"{parent.line}) is on {parent.seqid}; fix the seqid or the Parent",
        )
    if part.strand != parent.strand and parent.strand in ("+", "-"):
        raise ModelSkip(
            SKIP_OTHER_STRAND,
            part.line,
            f"{part.type} is on strand {part.strand} but its parent {name!r} (line "
            f"{parent.line}) is on {parent.strand}; fix the strand or the Parent",
        )
    if part.start < parent.start or part.end > parent.end:
        raise ModelSkip(
            SKIP_OUTSIDE_PARENT,
            part.line,
            f"{part.type} {part.start + 1}-{part.end} lies outside its parent {name!r} "
            f"{parent.start + 1}-{parent.end} (line {parent.line}); fix the coordinates or "
            "the Parent",
        )


def build_transcript(row: Feature, parts: list[Feature], biotype: str, gene_id: str) -> Transcript:
    """The transcript that ``row`` and its ``parts`` (exon, CDS, stop_codon rows) define.

    Raises:
        ModelSkip: a rule of the module docstring fails (no strand, a part outside ``row``,
            overlapping exons or CDS rows, CDS outside or not covering the exons, a phase
            mismatch, a stop codon outside the exons).
    """
    name = row.id or f"line {row.line}"
    if row.strand not in ("+", "-"):
        raise ModelSkip(
            SKIP_NO_STRAND,
            row.line,
            f"{row.type} {name!r} has strand {row.strand!r}; give the transcript strand + or -",
        )
    for part in parts:
        check_inside(part, row)
    exon_rows = [p for p in parts if p.type.lower() in EXON_TYPES]
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
                raise ModelSkip(
                    SKIP_OVERLAPPING_CDS,
                    second.line,
                    f"CDS {second.start + 1}-{second.end} overlaps CDS {first.start + 1}-"
                    f"{first.end} (line {first.line}) of {name!r} (a ribosomal frameshift?); "
                    "genoforge models one reading frame per transcript: drop one row",
                )
        for piece in cds_rows:
            if not any(s <= piece.start and piece.end <= e for s, e in exons):
                raise ModelSkip(
                    SKIP_CDS_OUTSIDE_EXON,
                    piece.line,
                    f"CDS {piece.start + 1}-{piece.end} outside its exon (transcript {name}); "
                    "fix the CDS or add the exon",
                )
        cds_start, cds_end = cds_rows[0].start, cds_rows[-1].end
        covered = sum(p.end - p.start for p in cds_rows)
        exonic = sum(e - s for s, e in cds_pieces(exons, (cds_start, cds_end)))
        if covered != exonic:
            raise ModelSkip(
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
                raise ModelSkip(
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
            raise ModelSkip(
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
            raise ModelSkip(
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


__all__ = ["ModelSkip", "build_transcript", "check_inside"]
