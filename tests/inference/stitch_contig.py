"""The synthetic contig of the stitching tests: a known annotation and the windows predict lays.

test_stitch.py cuts it into the windows a perfect model would write (``windows_of``) and expects
it back; test_predict_gff.py writes it as GFF3. The contig (47,300 bp, windows of 10,000 with
2,500 overlap: six windows, the last aligned to the contig end) holds:

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

from genoforge.genes.gene_models import Annotation, RegionFeature, Transcript, transcript_sort_key
from genoforge.genes.target import window_annotation
from genoforge.inference.stitch import WindowResult
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
