"""Per-base gene-structure labels (genoforge/genes/classes.py), worked by hand.

Every expected array below was written out base by base from the module's rules (class table in
its docstring), not produced by the code under test. Class legend, + strand / - strand:
0 intergenic; CDS codon position 0/1/2: 1 2 3 / 9 10 11; intron phase 0/1/2: 4 5 6 / 12 13 14;
utr5: 7 / 15; utr3: 8 / 16. On - the 5' end is the highest coordinate, so positions count down.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from genoforge.genes.classes import (
    CLASS_NAMES,
    N_CLASSES,
    coding_length,
    encode_bases,
    representative_transcripts,
    transcript_labels,
    window_labels,
)
from genoforge.genes.gene_models import Transcript


def tx(strand: str, exons, cds, gene: str = "g") -> SimpleNamespace:
    return SimpleNamespace(strand=strand, exons=tuple(exons), cds=cds, gene_id=gene)


def labels(transcripts, start: int, end: int) -> list[int]:
    return window_labels(transcripts, start, end).tolist()


# --- one coding intron in each phase, both strands (CDS = the whole span 0..16) -------------

SPLICED = {
    # (strand, exons): expected labels of [0, 16)
    ("+", ((0, 6), (10, 16))): [1, 2, 3, 1, 2, 3, 4, 4, 4, 4, 1, 2, 3, 1, 2, 3],  # phase 0
    ("+", ((0, 4), (8, 16))): [1, 2, 3, 1, 5, 5, 5, 5, 2, 3, 1, 2, 3, 1, 2, 3],  # phase 1
    ("+", ((0, 5), (9, 16))): [1, 2, 3, 1, 2, 6, 6, 6, 6, 3, 1, 2, 3, 1, 2, 3],  # phase 2
    # - strand: 5' exon is the high one; base 15 is codon position 0.
    ("-", ((0, 6), (10, 16))): [11, 10, 9, 11, 10, 9, 12, 12, 12, 12, 11, 10, 9, 11, 10, 9],
    ("-", ((0, 8), (12, 16))): [11, 10, 9, 11, 10, 9, 11, 10, 13, 13, 13, 13, 9, 11, 10, 9],
    ("-", ((0, 7), (11, 16))): [11, 10, 9, 11, 10, 9, 11, 14, 14, 14, 14, 10, 9, 11, 10, 9],
}


@pytest.mark.parametrize(("strand", "exons"), list(SPLICED), ids=lambda x: str(x))
def test_cds_split_by_an_intron_in_each_phase(strand, exons):
    assert labels([tx(strand, exons, (0, 16))], 0, 16) == SPLICED[(strand, exons)]


def test_a_minus_gene_is_the_mirror_of_its_plus_twin():
    # Reverse complement: a + gene on [0, 16) maps to a - gene on [0, 16) with exons mirrored.
    for (strand, exons), expected in SPLICED.items():
        if strand != "+":
            continue
        mirrored = tuple((16 - e, 16 - s) for s, e in reversed(exons))
        minus = labels([tx("-", mirrored, (0, 16))], 0, 16)
        assert [c - 8 if c else 0 for c in minus[::-1]] == expected


# --- UTRs --------------------------------------------------------------------------------------


def test_single_exon_plus_gene_with_both_utrs():
    gene = tx("+", [(2, 14)], (4, 13))
    assert labels([gene], 0, 16) == [0, 0, 7, 7, 1, 2, 3, 1, 2, 3, 1, 2, 3, 8, 0, 0]


def test_single_exon_minus_gene_with_both_utrs():
    # 3' UTR on the low side (1, 2), 5' UTR on the high side (12); CDS 5' end at base 11.
    gene = tx("-", [(1, 13)], (3, 12))
    assert labels([gene], 0, 14) == [0, 16, 16, 11, 10, 9, 11, 10, 9, 11, 10, 9, 15, 0]


def test_spliced_5utr_plus_intron_outside_the_cds_is_phase_0():
    gene = tx("+", [(0, 4), (8, 20)], (10, 19))
    assert labels([gene], 0, 22) == [7, 7, 7, 7, 4, 4, 4, 4, 7, 7, 1, 2, 3, 1, 2, 3, 1, 2, 3, 8, 0, 0]


def test_spliced_3utr_minus():
    gene = tx("-", [(0, 5), (9, 20)], (10, 19))
    expected = [16, 16, 16, 16, 16, 12, 12, 12, 12, 16, 11, 10, 9, 11, 10, 9, 11, 10, 9, 15]
    assert labels([gene], 0, 20) == expected


def test_cds_starting_at_an_exon_start_after_a_5utr_exon():
    # The UTR intron (4, 8) is phase 0 although the CDS begins right after it.
    gene = tx("+", [(0, 4), (8, 14)], (8, 14))
    assert labels([gene], 0, 14) == [7, 7, 7, 7, 4, 4, 4, 4, 1, 2, 3, 1, 2, 3]


# --- overlapping genes -------------------------------------------------------------------------


def test_overlap_priority_cds_over_intron_over_utr():
    a = tx("+", [(0, 20)], (5, 14), gene="a")  # utr5 0-4, CDS 5-13, utr3 14-19
    # b (-): utr3- 10-11, UTR intron 12-15, CDS 16-24 (5' end at 24), utr5- 25-29
    b = tx("-", [(10, 12), (16, 30)], (16, 25), gene="b")
    expected = ([7] * 5 + [1, 2, 3, 1, 2, 3, 1, 2, 3]  # a's CDS beats b's utr3 and intron at 10-13
                + [12, 12]  # b's intron beats a's utr3 at 14-15
                + [11, 10, 9, 11, 10, 9, 11, 10, 9]  # b's CDS beats a's utr3 at 16-19
                + [15] * 5 + [0, 0])
    assert labels([a, b], 0, 32) == expected
    assert labels([b, a], 0, 32) == expected  # priority, not order, decides between classes


def test_overlap_of_equal_priority_first_transcript_wins():
    a = tx("+", [(0, 9)], (0, 9), gene="a")
    b = tx("+", [(1, 10)], (1, 10), gene="b")
    assert labels([a, b], 0, 10) == [1, 2, 3, 1, 2, 3, 1, 2, 3, 3]
    assert labels([b, a], 0, 10) == [1, 1, 2, 3, 1, 2, 3, 1, 2, 3]


# --- window clipping ----------------------------------------------------------------------------


def test_window_starting_inside_a_gene_keeps_the_true_codon_positions():
    gene = tx("+", [(0, 4), (8, 16)], (0, 16))  # the phase-1 gene above
    assert labels([gene], 2, 10) == [3, 1, 5, 5, 5, 5, 2, 3]
    assert labels([gene], 10, 20) == [1, 2, 3, 1, 2, 3, 0, 0, 0, 0]
    assert labels([gene], 5, 7) == [5, 5]  # inside the intron only


def test_window_clipping_minus_strand():
    gene = tx("-", [(0, 8), (12, 16)], (0, 16))  # the phase-1 - gene above
    assert labels([gene], 5, 14) == [9, 11, 10, 13, 13, 13, 13, 9, 11]
    assert labels([gene], -3, 3) == [0, 0, 0, 11, 10, 9]


def test_window_outside_every_gene_is_intergenic():
    gene = tx("+", [(10, 19)], (10, 19))
    assert labels([gene], 0, 10) == [0] * 10
    assert labels([gene], 19, 25) == [0] * 6
    assert transcript_labels(gene, 0, 10) is None
    assert window_labels([], 3, 3).shape == (0,)


def test_transcript_labels_offset_is_into_the_window():
    gene = tx("+", [(10, 19)], (10, 19))
    offset, values = transcript_labels(gene, 7, 15)
    assert offset == 3
    assert values.tolist() == [1, 2, 3, 1, 2]


def test_labels_are_uint8_and_take_real_transcripts():
    gene = Transcript("chr1", "-", "protein_coding", "g1", "t1", ((0, 6), (10, 16)), (0, 16))
    out = window_labels([gene], 0, 16)
    assert out.dtype == np.uint8
    assert out.tolist() == SPLICED[("-", ((0, 6), (10, 16)))]


# --- representative transcripts -----------------------------------------------------------------


def test_representative_transcripts_longest_cds_per_gene():
    g1_short = tx("+", [(0, 30)], (0, 9), gene="g1")  # 9 coding bases
    g1_long = tx("+", [(0, 10), (20, 30)], (0, 30), gene="g1")  # 20 coding bases
    g1_tie = tx("+", [(0, 20)], (0, 20), gene="g1")  # 20: a tie, the first one stays
    g2 = tx("-", [(40, 49)], (40, 49), gene="g2")
    g3_noncoding = tx("+", [(50, 60)], None, gene="g3")
    g4_unstranded = tx(".", [(60, 69)], (60, 69), gene="g4")
    g4_empty_strand = tx("", [(60, 69)], (60, 69), gene="g4")
    reps = representative_transcripts(
        [g2, g1_short, g3_noncoding, g1_long, g1_tie, g4_unstranded, g4_empty_strand])
    assert reps == [g2, g1_long]  # genes in order of first appearance
    assert coding_length(g1_long) == 20
    assert coding_length(g3_noncoding) == 0


def test_representative_transcripts_custom_gene_key():
    a = tx("+", [(0, 9)], (0, 9), gene="x")
    b = tx("+", [(0, 12)], (0, 12), gene="y")
    assert representative_transcripts([a, b], gene_of=lambda t: "same") == [b]


# --- constants ----------------------------------------------------------------------------------


def test_class_table_and_base_codes():
    assert len(CLASS_NAMES) == N_CLASSES == 17
    assert CLASS_NAMES[4 + 8] == "intron-0" and CLASS_NAMES[8] == "utr3+" and CLASS_NAMES[16] == "utr3-"
    assert encode_bases("ACGTNacgtRx").tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 4]
