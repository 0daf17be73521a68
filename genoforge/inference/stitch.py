"""Stitching: the window annotations of one contig -> one annotation of the contig.

Overlapping windows (:mod:`genoforge.inference.windows`) each describe what they see; a gene
shorter than the overlap is seen whole twice, a longer one is seen cut in two or more windows.
The rule that turns them into one annotation, with no duplicated and no truncated genes where
windows overlap:

1. **Lift.** Every transcript (and stand-alone feature) of every window is moved to contig
   coordinates. Its partial marks are read per side: a mark at a window edge that is also the
   contig's end means the model is truly cut by the contig end (kept, written ``partial=``);
   a mark at an inner window edge means "continues in the neighbouring window" (a *cut*).
2. **Join cut pieces.** Between consecutive windows i and i+1 with overlap ``O = [start(i+1),
   end(i))``, a piece of window i cut on the right and a piece of window i+1 cut on the left are
   the same transcript if they have the same kind, strand and biotype (or feature type) and they
   agree on the overlap: both have exonic bases in O and those bases intersect, or neither has
   any (an intron spans O). Each window is trusted on its own side of the overlap's midpoint
   ``c``: the joined transcript takes window i's exons and CDS left of c and window i+1's from c
   on (exons that meet at c merge into one), and its CDS phase from whichever side holds the
   CDS's 5' end (re-derived as in :func:`genoforge.genes.target.clip_transcript`). When both
   windows agree, this is exactly the transcript they both describe. Chains of joins cover genes
   longer than a window. Isoforms: every compatible pairing is joined and identical results are
   merged.
3. **Choose one copy per locus.** Candidates are ranked: (a) transcripts complete in one window,
   by how central their gene is in that window (the distance from the gene's span to the nearest
   inner window edge, larger first); then (b) joined transcripts; then (c) pieces still cut on an
   inner side (the neighbour had no matching piece). A candidate is kept unless a kept candidate
   from another source (another window, or another chain of joins) overlaps it on the same
   strand in exonic bases (same type and overlapping span, for features). So a gene seen whole
   in two windows is taken from the window where it is most central, with all its isoforms from
   that window; partial copies of it in other windows are dropped; nested genes (inside an
   intron) and genes on the other strand are untouched.
4. **Genes.** Kept transcripts that shared a gene index in a window belong to one gene (joins
   link the gene indices of their windows); a gene is then split by strand. Genes are numbered
   along the contig by start.

Known limits: an intron longer than a whole window leaves a window that sees nothing of the
transcript, so its two sides are written as two partial transcripts; with ``--overlap 0``
windows share no bases, so cut pieces are joined on strand and biotype alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from genoforge.genes import inventory as inv
from genoforge.genes.gene_models import ExonChain, cds_pieces
from genoforge.genes.window_models import (
    WindowAnnotation,
    WindowFeature,
    WindowTranscript,
)

Interval = tuple[int, int]
MAX_CHAINS_PER_START = 64  # isoform pairings explode combinatorially; real loci need a handful


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One window's decoded annotation; ``start``/``end`` in contig coordinates."""

    start: int
    end: int
    annotation: WindowAnnotation


@dataclass(frozen=True, slots=True)
class ContigTranscript(ExonChain):
    """A stitched transcript in contig coordinates (0-based half-open).

    ``gene`` numbers the contig's genes 0, 1, ... by start; ``partial_left``/``partial_right``:
    the transcript is cut on that side (by the contig end, or by a window whose neighbour did not
    continue it).
    """

    strand: str
    biotype: str
    gene: int
    exons: tuple[Interval, ...]
    cds: Interval | None
    cds_phase: int
    partial_left: bool = False
    partial_right: bool = False


@dataclass(frozen=True, slots=True)
class ContigFeature:
    """A stitched stand-alone feature in contig coordinates."""

    type: str
    strand: str
    start: int
    end: int
    partial_left: bool = False
    partial_right: bool = False


@dataclass
class ContigAnnotation:
    """The stitched annotation of one contig: transcripts sorted by gene, then start."""

    seqid: str
    length: int
    transcripts: list[ContigTranscript] = field(default_factory=list)
    features: list[ContigFeature] = field(default_factory=list)

    @property
    def n_genes(self) -> int:
        return len({t.gene for t in self.transcripts})


@dataclass(frozen=True)
class _Piece(ExonChain):
    """A transcript or feature from one or more windows, in contig coordinates.

    ``kind`` is "t" or "f"; ``label`` the biotype or feature type; ``genes`` the (window, gene
    index) keys it came from; ``cut_*``: continues into the neighbouring window on that side;
    ``end_*``: cut by the contig end on that side.
    """

    kind: str
    strand: str
    label: str
    exons: tuple[Interval, ...]
    cds: Interval | None
    cds_phase: int
    genes: tuple[tuple[int, int], ...]
    cut_left: bool
    cut_right: bool
    end_left: bool
    end_right: bool

    def shape(self) -> tuple:
        return (self.kind, self.strand, self.label, self.exons, self.cds, self.cds_phase)


def stitch_contig(seqid: str, length: int, windows: Sequence[WindowResult]) -> ContigAnnotation:
    """Stitch one contig's window annotations (the rule is the module docstring).

    Args:
        seqid: the contig's name.
        length: the contig's length in bp.
        windows: every window of the contig, sorted by start (as ``tile_contig`` lays them).
    """
    windows = sorted(windows, key=lambda w: (w.start, w.end))
    per_window = [_lift(i, w, length) for i, w in enumerate(windows)]
    margins = _gene_margins(per_window, windows, length)

    candidates: list[tuple[tuple, tuple, _Piece]] = []  # (rank, source, piece)
    for i, pieces in enumerate(per_window):
        for k, piece in enumerate(pieces):
            if not piece.cut_left and not piece.cut_right:
                rank = (0, -margins[piece.genes[0]], i, k)
                candidates.append((rank, ("w", i), piece))
    for number, (chain, dangling) in enumerate(_join_chains(per_window, windows)):
        rank = (2 if dangling else 1, -(chain.end - chain.start), chain.start, number)
        candidates.append((rank, ("c", tuple(sorted(set(chain.genes)))), chain))
    candidates.sort(key=lambda item: item[0])

    kept: list[tuple[tuple, _Piece]] = []
    seen: dict[tuple, int] = {}
    for _, source, piece in candidates:
        if any(source != other_source and _conflict(piece, other) for other_source, other in kept):
            continue
        shape = piece.shape()
        if shape in seen:  # the same model twice (isoform pairings): merge its gene links
            at = seen[shape]
            other_source, other = kept[at]
            kept[at] = (other_source, _with_genes(other, other.genes + piece.genes))
            continue
        seen[shape] = len(kept)
        kept.append((source, piece))
    return _assemble(seqid, length, [piece for _, piece in kept])


# --- lifting -------------------------------------------------------------------------------


def _lift(window_index: int, window: WindowResult, contig_length: int) -> list[_Piece]:
    offset = window.start
    at_start, at_end = window.start == 0, window.end >= contig_length
    pieces = []
    for record in window.annotation.records:
        left = record.partial in (inv.PARTIAL_LEFT, inv.PARTIAL_BOTH)
        right = record.partial in (inv.PARTIAL_RIGHT, inv.PARTIAL_BOTH)
        sides = dict(cut_left=left and not at_start, cut_right=right and not at_end,
                     end_left=left and at_start, end_right=right and at_end)
        if isinstance(record, WindowTranscript):
            cds = None if record.cds is None else (record.cds[0] + offset, record.cds[1] + offset)
            pieces.append(_Piece("t", record.strand, record.biotype,
                                 tuple((s + offset, e + offset) for s, e in record.exons), cds,
                                 record.cds_phase if cds is not None else 0,
                                 ((window_index, record.gene),), **sides))
        else:
            assert isinstance(record, WindowFeature)
            pieces.append(_Piece("f", record.strand, record.type,
                                 ((record.start + offset, record.end + offset),), None, 0,
                                 ((window_index, -1 - len(pieces)),), **sides))
    return pieces


def _gene_margins(per_window: list[list[_Piece]], windows: Sequence[WindowResult],
                  contig_length: int) -> dict[tuple[int, int], int]:
    """Distance from each window gene's span to the nearest inner edge of its window."""
    spans: dict[tuple[int, int], list[int]] = {}
    for pieces in per_window:
        for piece in pieces:
            key = piece.genes[0]
            span = spans.setdefault(key, [piece.start, piece.end])
            span[0], span[1] = min(span[0], piece.start), max(span[1], piece.end)
    margins = {}
    for (i, gene), (start, end) in spans.items():
        window = windows[i]
        left = start - window.start if window.start > 0 else contig_length
        right = window.end - end if window.end < contig_length else contig_length
        margins[(i, gene)] = min(left, right)
    return margins


# --- joining -------------------------------------------------------------------------------


def _exonic_in(piece: _Piece, lo: int, hi: int) -> list[Interval]:
    return [(max(s, lo), min(e, hi)) for s, e in piece.exons if s < hi and e > lo]


def _agree_on_overlap(a: _Piece, b: _Piece, lo: int, hi: int) -> bool:
    if (a.kind, a.strand, a.label) != (b.kind, b.strand, b.label):
        return False
    in_a, in_b = _exonic_in(a, lo, hi), _exonic_in(b, lo, hi)
    if not in_a and not in_b:
        return True  # an intron (or nothing) spans the overlap in both
    return any(s1 < e2 and s2 < e1 for s1, e1 in in_a for s2, e2 in in_b)


def _join_chains(per_window: list[list[_Piece]], windows: Sequence[WindowResult]):
    """Yield ``(joined piece, still cut on an inner side)`` for every chain of cut pieces."""
    # Edges from a right-cut piece of window i to the left-cut pieces of window i+1 it continues.
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    has_left_partner: set[tuple[int, int]] = set()
    for i in range(len(windows) - 1):
        lo, hi = windows[i + 1].start, windows[i].end
        for a_index, a in enumerate(per_window[i]):
            if not a.cut_right:
                continue
            for b_index, b in enumerate(per_window[i + 1]):
                if b.cut_left and _agree_on_overlap(a, b, lo, hi):
                    edges.setdefault((i, a_index), []).append((i + 1, b_index))
                    has_left_partner.add((i + 1, b_index))
    for i, pieces in enumerate(per_window):
        for k, piece in enumerate(pieces):
            if not (piece.cut_left or piece.cut_right) or (i, k) in has_left_partner:
                continue  # complete pieces are candidates as they are; chains start elsewhere
            for path in _paths((i, k), edges):
                joined = per_window[path[0][0]][path[0][1]]
                for (j, _), (j_next, k_next) in zip(path, path[1:]):
                    cut_at = (windows[j_next].start + windows[j].end) // 2
                    joined = _join(joined, per_window[j_next][k_next], cut_at)
                if joined is not None:
                    yield joined, joined.cut_left or joined.cut_right


def _paths(start: tuple[int, int], edges: dict) -> list[list[tuple[int, int]]]:
    paths: list[list[tuple[int, int]]] = []
    stack = [[start]]
    while stack and len(paths) < MAX_CHAINS_PER_START:
        path = stack.pop()
        following = edges.get(path[-1], [])
        if not following:
            paths.append(path)
        for node in reversed(following):
            stack.append(path + [node])
    return paths


def _clip(piece: _Piece, lo: int, hi: int) -> _Piece | None:
    """``piece`` restricted to ``[lo, hi)``; CDS phase re-derived at a clipped 5' end."""
    exons = tuple((max(s, lo), min(e, hi)) for s, e in piece.exons if s < hi and e > lo)
    if not exons:
        return None
    pieces = cds_pieces(piece.exons, piece.cds)
    inside = [(max(s, lo), min(e, hi)) for s, e in pieces if s < hi and e > lo]
    cds, phase = None, 0
    if inside:
        cds = (inside[0][0], inside[-1][1])
        if piece.strand == "-":
            removed = sum(max(0, e - max(s, hi)) for s, e in pieces)
        else:
            removed = sum(max(0, min(e, lo) - s) for s, e in pieces)
        phase = (piece.cds_phase - removed) % 3
    return _Piece(piece.kind, piece.strand, piece.label, exons, cds, phase, piece.genes,
                  piece.cut_left, piece.cut_right, piece.end_left, piece.end_right)


def _join(left: _Piece | None, right: _Piece, cut_at: int) -> _Piece | None:
    """``left`` up to ``cut_at`` followed by ``right`` from ``cut_at`` on (module rule 2)."""
    if left is None:
        return None
    a = _clip(left, left.start, cut_at)
    b = _clip(right, cut_at, right.end)
    if a is None or b is None:
        part = a or b
        if part is None:
            return None
        merged_exons = part.exons
    else:
        merged_exons = _merge_touching(a.exons + b.exons)
    coding = [p for p in (a, b) if p is not None and p.cds is not None]
    cds, phase = None, 0
    if coding:
        cds = (coding[0].cds[0], coding[-1].cds[1])  # type: ignore[index]
        five_prime = coding[0] if left.strand != "-" else coding[-1]
        phase = five_prime.cds_phase
    return _Piece(left.kind, left.strand, left.label, merged_exons, cds, phase,
                  left.genes + right.genes, left.cut_left, right.cut_right, left.end_left,
                  right.end_right)


def _merge_touching(intervals: tuple[Interval, ...]) -> tuple[Interval, ...]:
    merged: list[list[int]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return tuple((s, e) for s, e in merged)


# --- choosing and assembling ---------------------------------------------------------------


def _conflict(a: _Piece, b: _Piece) -> bool:
    """Same locus: same kind and strand, and shared exonic bases (features: same type too)."""
    if a.kind != b.kind or a.strand != b.strand or (a.kind == "f" and a.label != b.label):
        return False
    if a.start >= b.end or b.start >= a.end:
        return False
    return any(s1 < e2 and s2 < e1 for s1, e1 in a.exons for s2, e2 in b.exons)


def _with_genes(piece: _Piece, genes: tuple[tuple[int, int], ...]) -> _Piece:
    return _Piece(piece.kind, piece.strand, piece.label, piece.exons, piece.cds, piece.cds_phase,
                  genes, piece.cut_left, piece.cut_right, piece.end_left, piece.end_right)


def _assemble(seqid: str, length: int, pieces: list[_Piece]) -> ContigAnnotation:
    """Group kept transcripts into genes (shared window gene keys, one strand), number by start."""
    parent: dict[tuple, tuple] = {}

    def find(key: tuple) -> tuple:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    transcripts = [p for p in pieces if p.kind == "t"]
    for piece in transcripts:
        keys = [(piece.strand, *gene) for gene in piece.genes]
        for key in keys[1:]:
            parent[find(key)] = find(keys[0])
    groups: dict[tuple, list[_Piece]] = {}
    for piece in transcripts:
        groups.setdefault(find((piece.strand, *piece.genes[0])), []).append(piece)
    ordered = sorted(groups.values(), key=lambda members: (
        min(p.start for p in members), max(p.end for p in members), members[0].strand))
    out = ContigAnnotation(seqid, length)
    for gene, members in enumerate(ordered):
        for p in sorted(members, key=lambda p: (p.start, p.end, p.exons, p.cds or (-1, -1))):
            out.transcripts.append(ContigTranscript(
                strand=p.strand, biotype=p.label, gene=gene, exons=p.exons, cds=p.cds,
                cds_phase=p.cds_phase, partial_left=p.cut_left or p.end_left,
                partial_right=p.cut_right or p.end_right))
    for p in sorted((p for p in pieces if p.kind == "f"), key=lambda p: (p.start, p.end, p.label)):
        out.features.append(ContigFeature(p.label, p.strand, p.start, p.end,
                                          p.cut_left or p.end_left, p.cut_right or p.end_right))
    return out
