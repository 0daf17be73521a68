"""Gene models in window coordinates, and how a window's annotation is cut from the genome's.

A window's records are :class:`WindowTranscript` and :class:`WindowFeature` (0-based half-open,
relative to the window start), held in canonical order by a :class:`WindowAnnotation`.
:func:`window_annotation` clips the genome's models to a window (:func:`clip_transcript`,
:func:`clip_feature`), orders them and numbers their genes; :func:`canonicalize` restores that
order on records written in any order (decoded model output). A window can hold at most
:data:`MAX_COORD` bases and :data:`MAX_GENES` genes, the most the target format
(:mod:`~genoforge.genes.target`) can write.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from genoforge.errors import ConfigError
from genoforge.genes import inventory as inv
from genoforge.genes.gene_models import (
    Annotation,
    ExonChain,
    RegionFeature,
    Transcript,
    cds_pieces,
)

COORD_BASE = inv.MAX_NUMBER + 1  # 1000: a coordinate is two base-1000 digits
MAX_COORD = COORD_BASE * COORD_BASE - 1  # 999,999: the largest window end the format can write
MAX_GENES = inv.MAX_NUMBER + 1  # gene indices are one NUM token


@dataclass(frozen=True, slots=True)
class WindowTranscript(ExonChain):
    """A transcript in window coordinates (0-based half-open, relative to the window start).

    ``gene`` is the gene index within the window (0, 1, ... in order of first appearance;
    isoforms share it). ``partial`` is one of ``. < > <>`` (the transcript extends past the
    left/right/both window edges). ``exons`` are the exons clipped to the window; ``cds`` is the
    clipped coding span or None; ``cds_phase`` the GFF3 phase at its 5' end (0 without a CDS).
    """

    strand: str
    biotype: str
    gene: int
    partial: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[int, int] | None
    cds_phase: int = 0


@dataclass(frozen=True, slots=True)
class WindowFeature:
    """A stand-alone feature in window coordinates."""

    type: str
    strand: str
    start: int
    end: int
    partial: str


WindowRecord = WindowTranscript | WindowFeature


@dataclass(frozen=True, slots=True)
class WindowAnnotation:
    """The records of one window, in canonical order when built by :func:`window_annotation`."""

    records: tuple[WindowRecord, ...] = ()

    @property
    def transcripts(self) -> list[WindowTranscript]:
        return [r for r in self.records if isinstance(r, WindowTranscript)]

    @property
    def features(self) -> list[WindowFeature]:
        return [r for r in self.records if isinstance(r, WindowFeature)]

# --- annotation -> window -----------------------------------------------------------------------


def _partial(cut_left: bool, cut_right: bool) -> str:
    if cut_left and cut_right:
        return inv.PARTIAL_BOTH
    if cut_left:
        return inv.PARTIAL_LEFT
    if cut_right:
        return inv.PARTIAL_RIGHT
    return inv.PARTIAL_NONE


def clip_transcript(t: Transcript, window_start: int, window_end: int, gene: int = 0):
    """``t`` clipped to the window, in window coordinates; None if no exon reaches into it.

    Exons are clipped to ``[0, W)`` and those wholly outside dropped (a window that falls inside
    an intron shows nothing of the transcript). The CDS is clipped to its exonic bases inside
    the window, and its phase is recomputed at the clipped 5' end: removing r coding bases from
    the 5' end turns phase p into ``(p - r) mod 3``, so every CDS piece inside the window keeps
    its GFF3 phase. ``partial`` marks the sides where the transcript's span leaves the window.
    """
    exons = tuple(
        (max(s, window_start) - window_start, min(e, window_end) - window_start)
        for s, e in t.exons
        if s < window_end and e > window_start
    )
    if not exons:
        return None
    cds = None
    cds_phase = 0
    pieces = cds_pieces(t.exons, t.cds)
    inside = [(max(s, window_start), min(e, window_end)) for s, e in pieces]
    inside = [(s, e) for s, e in inside if s < e]
    if inside:
        cds = (inside[0][0] - window_start, inside[-1][1] - window_start)
        if t.strand == "+":
            removed = sum(max(0, min(e, window_start) - s) for s, e in pieces)
        else:
            removed = sum(max(0, e - max(s, window_end)) for s, e in pieces)
        cds_phase = (t.cds_phase - removed) % 3
    return WindowTranscript(
        strand=t.strand,
        biotype=t.biotype,
        gene=gene,
        partial=_partial(t.start < window_start, t.end > window_end),
        exons=exons,
        cds=cds,
        cds_phase=cds_phase,
    )


def clip_feature(f: RegionFeature, window_start: int, window_end: int) -> WindowFeature:
    """``f`` clipped to the window (it must overlap it), in window coordinates."""
    return WindowFeature(
        type=f.type,
        strand=f.strand,
        start=max(f.start, window_start) - window_start,
        end=min(f.end, window_end) - window_start,
        partial=_partial(f.start < window_start, f.end > window_end),
    )


def _record_key(record: WindowRecord) -> tuple:
    """Canonical order: by start, end, then transcripts before features, strand, type, content."""
    if isinstance(record, WindowTranscript):
        return (record.start, record.end, 0, record.strand, record.biotype, record.exons,
                record.cds or (-1, -1), record.cds_phase, record.partial)
    return (record.start, record.end, 1, record.strand, record.type, (), (-1, -1), 0,
            record.partial)


def _order_and_number(items: list[tuple[WindowRecord, Any, Any]]) -> list[tuple[WindowRecord, Any]]:
    """Sort ``(record, gene_key, source)`` canonically and number genes by first appearance.

    Records equal in every field but the gene (identical isoforms of different genes) are
    ordered by the index their gene already has, then, for genes not seen yet, by ``gene_key``
    (genome gene ID, or the input gene index in :func:`canonicalize`). Gene indices thus increase
    along every run of equal records, so ordering an already canonical target changes nothing.
    """
    items = sorted(items, key=lambda item: _record_key(item[0]))
    genes: dict[Any, int] = {}
    out: list[tuple[WindowRecord, Any]] = []
    first = 0
    while first < len(items):
        last = first + 1
        key = _record_key(items[first][0])
        while last < len(items) and _record_key(items[last][0]) == key:
            last += 1
        run = items[first:last]
        if len(run) > 1:
            run.sort(
                key=lambda item: (0, genes[item[1]], "") if item[1] in genes else (1, 0, item[1])
            )
        for record, gene_key, source in run:
            if isinstance(record, WindowTranscript):
                gene = genes.setdefault(gene_key, len(genes))
                if gene >= MAX_GENES:
                    raise ConfigError(
                        f"a window holds more than {MAX_GENES} genes, more than a gene index "
                        "token can number; use a smaller window size"
                    )
                record = replace(record, gene=gene)
            out.append((record, source))
        first = last
    return out


def window_records(
    annotation: Annotation, seqid: str, window_start: int, window_end: int
) -> list[tuple[WindowRecord, Transcript | RegionFeature]]:
    """The window's records in canonical order, each with the genome model it came from.

    Gene indices are assigned 0, 1, ... in canonical order of first appearance. Uses the
    annotation's sorted overlap index, so tiling a chromosome costs O(records) per window.

    Raises:
        ConfigError: the window is longer than the format can address (999,999 bp) or holds
            more than 1000 genes.
    """
    if not 0 <= window_start < window_end or window_end - window_start > MAX_COORD:
        raise ConfigError(
            f"window [{window_start}, {window_end}) is empty or longer than {MAX_COORD:,} bp, "
            "the most a two-token coordinate can address; use a smaller window size"
        )
    items: list[tuple[WindowRecord, Any, Any]] = []
    for t in annotation.transcripts_overlapping(seqid, window_start, window_end):
        clipped = clip_transcript(t, window_start, window_end)
        if clipped is not None:
            items.append((clipped, t.gene_id, t))
    for f in annotation.features_overlapping(seqid, window_start, window_end):
        items.append((clip_feature(f, window_start, window_end), "", f))
    return _order_and_number(items)


def window_annotation(
    annotation: Annotation, seqid: str, window_start: int, window_end: int
) -> WindowAnnotation:
    """The annotation of ``[window_start, window_end)`` on ``seqid``, clipped and canonical.

    See :func:`clip_transcript` for clipping and :func:`window_records` for the order.
    """
    return WindowAnnotation(
        tuple(record for record, _ in window_records(annotation, seqid, window_start, window_end))
    )


def canonicalize(wa: WindowAnnotation) -> WindowAnnotation:
    """Sort records canonically and renumber genes in order of first appearance.

    Idempotent, and the identity on the output of :func:`window_annotation`; use it on decoded
    model output, whose records may come in any order.
    """
    items = [
        (r, r.gene if isinstance(r, WindowTranscript) else -1, None) for r in wa.records
    ]
    return WindowAnnotation(tuple(record for record, _ in _order_and_number(items)))


__all__ = [
    "COORD_BASE",
    "MAX_COORD",
    "MAX_GENES",
    "WindowAnnotation",
    "WindowFeature",
    "WindowRecord",
    "WindowTranscript",
    "canonicalize",
    "clip_feature",
    "clip_transcript",
    "window_annotation",
    "window_records",
]
