"""Stitching window annotations back into one contig annotation (genoforge/inference/stitch.py).

The main test cuts a synthetic contig annotation into the windows predict lays
(``window_annotation``, exactly what a perfect model would write per window), stitches them, and
expects the original back: every transcript (exons, CDS, phase) and the gene grouping.
The contig and what each of its genes exercises are described in stitch_contig.py.
"""

from __future__ import annotations

from collections import Counter

from genoforge.genes.target import WindowAnnotation, WindowTranscript
from genoforge.inference.stitch import WindowResult, stitch_contig
from genoforge.inference.windows import tile_contig

from tests.inference.stitch_contig import (
    LENGTH,
    OVERLAP,
    SEQID,
    WINDOW,
    shape,
    synthetic_annotation,
    windows_of,
)


def genes_of(transcripts, key) -> Counter:
    groups: dict = {}
    for t in transcripts:
        groups.setdefault(key(t), []).append(shape(t))
    return Counter(frozenset(members) for members in groups.values())


def test_tiling_of_the_synthetic_contig() -> None:
    assert tile_contig(LENGTH, WINDOW, OVERLAP) == [
        (0, 10_000), (7_500, 17_500), (15_000, 25_000), (22_500, 32_500), (30_000, 40_000),
        (37_300, 47_300)]


def test_windows_stitch_back_to_the_original_annotation() -> None:
    annotation = synthetic_annotation()
    windows = windows_of(annotation)
    # The test is only meaningful if genes really are cut and duplicated by the windows.
    assert sum(r.partial != "." for w in windows for r in w.annotation.records) >= 8
    stitched = stitch_contig(SEQID, LENGTH, windows)
    original = annotation.transcripts[SEQID]
    assert Counter(shape(t) for t in stitched.transcripts) == Counter(shape(t) for t in original)
    assert genes_of(stitched.transcripts, lambda t: t.gene) == genes_of(original, lambda t: t.gene_id)
    assert [(f.type, f.strand, f.start, f.end) for f in stitched.features] == [
        ("origin_of_replication", "+", 16_800, 17_800), ("mobile_genetic_element", ".", 20_000, 36_000)]
    assert not any(t.partial_left or t.partial_right for t in stitched.transcripts)
    starts = [min(t.start for t in stitched.transcripts if t.gene == g) for g in range(stitched.n_genes)]
    assert starts == sorted(starts)  # genes numbered along the contig


def test_stitching_is_independent_of_window_order() -> None:
    windows = windows_of(synthetic_annotation())
    forward = stitch_contig(SEQID, LENGTH, windows)
    backward = stitch_contig(SEQID, LENGTH, windows[::-1])
    assert forward == backward


def test_minus_strand_phase_survives_joining() -> None:
    """g4's CDS (minus strand) is cut at four window edges; the joined phases are the original's."""
    from genoforge.genes.gene_models import cds_pieces, piece_phases

    stitched = stitch_contig(SEQID, LENGTH, windows_of(synthetic_annotation()))
    g4 = [t for t in stitched.transcripts if t.exons[-1] == (33_000, 34_000)]
    assert len(g4) == 2
    for t in g4:
        pieces = cds_pieces(t.exons, t.cds)
        assert piece_phases(pieces, "-", t.cds_phase)[-1] == 0  # the 5' (high) piece starts a codon
    g8 = next(t for t in stitched.transcripts if t.end == LENGTH)
    assert g8.cds_phase == 1 and g8.strand == "-"


def test_contig_end_cuts_are_kept_as_partial() -> None:
    """A window that claims its model runs past the contig end gives a partial transcript."""
    cut = WindowTranscript("-", "protein_coding", 0, "<>", ((0, 400), (600, 900)), (100, 900), 2)
    stitched = stitch_contig(SEQID, 900, [WindowResult(0, 900, WindowAnnotation((cut,)))])
    (t,) = stitched.transcripts
    assert (t.partial_left, t.partial_right, t.cds_phase, t.exons) == (True, True, 2, ((0, 400), (600, 900)))


def test_piece_without_partner_is_kept_only_where_no_window_has_it_whole() -> None:
    # Window A sees a gene cut at its right edge; window B (its neighbour) sees it whole.
    a = WindowTranscript("+", "protein_coding", 0, ">", ((800, 1_000),), (850, 1_000), 0)
    b = WindowTranscript("+", "protein_coding", 0, ".", ((300, 700),), (350, 650), 0)
    windows = [WindowResult(0, 1_000, WindowAnnotation((a,))),
               WindowResult(500, 1_500, WindowAnnotation((b,)))]
    stitched = stitch_contig(SEQID, 1_500, windows)
    assert [t.exons for t in stitched.transcripts] == [((800, 1_200),)]
    # Without the whole copy, the cut piece is all there is: kept, marked partial.
    lonely = stitch_contig(SEQID, 1_500, [windows[0], WindowResult(500, 1_500, WindowAnnotation())])
    assert [(t.exons, t.partial_right) for t in lonely.transcripts] == [(((800, 1_000),), True)]


def test_disagreeing_windows_are_cut_at_the_overlap_midpoint() -> None:
    # Both windows see one exon across the overlap [500, 1000) but disagree on where it ends.
    a = WindowTranscript("+", "protein_coding", 0, ">", ((200, 900),), None, 0)
    b = WindowTranscript("+", "protein_coding", 0, "<", ((0, 700),), None, 0)  # [500, 1200) in contig
    windows = [WindowResult(0, 1_000, WindowAnnotation((a,))),
               WindowResult(500, 1_500, WindowAnnotation((b,)))]
    stitched = stitch_contig(SEQID, 2_000, windows)
    # Left of the midpoint 750 window A decides (start 200), from 750 on window B (end 1200).
    assert [t.exons for t in stitched.transcripts] == [((200, 1_200),)]
    assert not stitched.transcripts[0].partial_left and not stitched.transcripts[0].partial_right
