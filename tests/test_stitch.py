"""Stitching window annotations back into one contig annotation (genoforge/inference/stitch.py).

The main test cuts a synthetic contig annotation into the windows predict lays
(``window_annotation``, exactly what a perfect model would write per window), stitches them, and
expects the original back: every transcript (exons, CDS, phase) and the gene grouping. The
contig (47,300 bp, windows of 10,000 with 2,500 overlap: six windows, the last aligned to the
contig end) holds:

- g1 (+) starting at the contig's first base, CDS phase 2 (5'-truncated by the contig start);
- g2 (-) lying wholly inside the first overlap (seen whole by two windows: must appear once);
- g3 (+) across the first window's right edge (whole only in the second window);
- g4 (-) a two-isoform gene across five windows: an exon crosses the third overlap, an intron
  spans the fourth overlap entirely, CDS over all of it (phase from the 5' = high end);
- g5 (-) nested in an intron of g4 on the same strand;
- g6 (+) an lncRNA gene with two isoforms; g7 (+) across the last window's left edge;
- g8 (-) cut by the contig end, CDS phase 1 at its 5' (high) end;
- an origin_of_replication across a window edge, and a mobile_genetic_element across three windows.
"""

from __future__ import annotations

from collections import Counter

from genoforge.genes.gene_models import Annotation, RegionFeature, Transcript, transcript_sort_key
from genoforge.genes.target import WindowAnnotation, WindowTranscript, window_annotation
from genoforge.inference.stitch import WindowResult, stitch_contig
from genoforge.inference.windows import tile_contig

SEQID = "chrS"
LENGTH = 47_300
WINDOW, OVERLAP = 10_000, 2_500


def tx(gene: str, name: str, strand: str, exons, cds=None, phase=0, biotype="protein_coding") -> Transcript:
    return Transcript(SEQID, strand, biotype, gene, name, tuple(exons), cds, phase)


def synthetic_annotation() -> Annotation:
    g4_tail = [(14_000, 16_000), (19_000, 19_200), (24_000, 26_000), (28_000, 29_000), (33_000, 34_000)]
    transcripts = [
        tx("g1", "g1.1", "+", [(0, 300), (500, 1_200)], (0, 1_000), 2),
        tx("g2", "g2.1", "-", [(7_800, 8_200), (8_400, 9_100)], (7_900, 9_000)),
        tx("g3", "g3.1", "+", [(9_000, 9_500), (9_700, 11_000)], (9_100, 10_800)),
        tx("g4", "g4.1", "-", [(12_000, 12_500), *g4_tail], (12_200, 33_500)),
        tx("g4", "g4.2", "-", [(13_000, 13_500), *g4_tail], (13_200, 33_500)),
        tx("g5", "g5.1", "-", [(16_500, 17_000), (17_200, 18_000)], (16_600, 17_900)),
        tx("g6", "g6.1", "+", [(26_000, 26_500), (27_000, 27_500)], biotype="lncRNA"),
        tx("g6", "g6.2", "+", [(26_000, 26_500), (27_200, 27_800)], biotype="lncRNA"),
        tx("g7", "g7.1", "+", [(38_000, 38_500), (39_000, 41_000)], (38_100, 40_500)),
        tx("g8", "g8.1", "-", [(45_000, 46_000), (46_500, LENGTH)], (45_200, LENGTH), 1),
    ]
    features = [
        RegionFeature(SEQID, "origin_of_replication", "+", 16_800, 17_800),
        RegionFeature(SEQID, "mobile_genetic_element", ".", 20_000, 36_000),
    ]
    annotation = Annotation()
    annotation.transcripts[SEQID] = sorted(transcripts, key=transcript_sort_key)
    annotation.features[SEQID] = sorted(features, key=lambda f: (f.start, f.end))
    return annotation


def windows_of(annotation: Annotation, length: int = LENGTH) -> list[WindowResult]:
    return [
        WindowResult(start, end, window_annotation(annotation, SEQID, start, end))
        for start, end in tile_contig(length, WINDOW, OVERLAP)
    ]


def shape(t) -> tuple:
    return (t.strand, t.biotype, t.exons, t.cds, t.cds_phase)


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
