"""Gene models from tests/data/genes.gff3 (each locus is described in the file's header)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genoforge.errors import GffFormatError
from genoforge.genes.annotation import load_annotation
from genoforge.genes.fasta import fasta_lengths, read_fasta
from genoforge.genes.gene_models import SKIP_MISSING_SEQID, SKIP_PHASE, Annotation, piece_phases
from genoforge.genes.gff3 import parse_gff3

DATA = Path(__file__).resolve().parents[1] / "data"
GENES_GFF = DATA / "genes.gff3"
GENES_FA = DATA / "genes.fa"


@pytest.fixture(scope="module")
def annotation() -> Annotation:
    return load_annotation(GENES_GFF, fasta_lengths(GENES_FA))


def _by_id(annotation: Annotation) -> dict:
    return {t.transcript_id: t for ts in annotation.transcripts.values() for t in ts}


def test_isoforms_share_their_gene_and_keep_their_exons(annotation: Annotation) -> None:
    t = _by_id(annotation)
    assert t["A.1"].gene_id == t["A.2"].gene_id == "geneA"
    assert t["A.1"].exons == ((100, 200), (300, 401), (500, 600))
    assert t["A.2"].exons == ((100, 200), (500, 600))
    assert t["A.1"].cds == t["A.2"].cds == (150, 560)
    assert t["A.1"].biotype == "protein_coding" and t["A.1"].strand == "+"


def test_minus_strand_phase_and_separate_stop_codon(annotation: Annotation) -> None:
    b = _by_id(annotation)["B.1"]
    assert b.strand == "-"
    # CDS rows 851-900 and 1001-1080, stop_codon 848-850 outside them: the span covers the stop
    assert b.cds == (847, 1080)
    assert b.cds_phase == 0  # phase of the 5'-most (highest) piece


def test_cds_under_gene_multi_parent_and_rna_types(annotation: Annotation) -> None:
    t = _by_id(annotation)
    assert t["geneC"].gene_id == "geneC" and t["geneC"].cds == (1200, 1350)
    # Parent=D.1,D.2: the exon belongs to both isoforms
    assert t["D.1"].exons[0] == t["D.2"].exons[0] == (1400, 1500)
    assert t["D.1"].biotype == t["D.2"].biotype == "lncRNA" and t["D.1"].cds is None
    assert t["tP"].exons == ((50, 80), (120, 150)) and t["tP"].biotype == "tRNA"
    assert t["snR1"].exons == ((200, 300),) and t["snR1"].biotype == "snoRNA"
    assert t["PSI1"].biotype == "pseudogene" and t["PSI1"].exons == ((300, 350),)
    assert t["TE1"].biotype == "transposable_element" and t["TE1"].strand == "-"


def test_partial_five_prime_cds_keeps_its_phase(annotation: Annotation) -> None:
    e = _by_id(annotation)["geneE"]
    assert e.cds == (1850, 1880) and e.cds_phase == 2


def test_features_counts_and_skips(annotation: Annotation) -> None:
    assert [(f.type, f.strand, f.start, f.end) for f in annotation.features["chr2"]] == [
        ("origin_of_replication", ".", 400, 450)
    ]
    assert [f.type for f in annotation.features["chr1"]] == ["mobile_genetic_element"]
    assert annotation.skipped == {
        "unsupported type repeat_region": 1,
        "unsupported type miRNA": 1,
        SKIP_MISSING_SEQID: 1,
    }
    assert annotation.n_transcripts == 11
    assert annotation.n_genes == 9  # A, B, C, D, E, TE1, tP, snR1, PSI1


def test_canonical_order_is_sorted_by_start(annotation: Annotation) -> None:
    for transcripts in annotation.transcripts.values():
        starts = [(t.start, t.end) for t in transcripts]
        assert starts == sorted(starts)
    chr1 = [t.transcript_id for t in annotation.transcripts["chr1"]]
    # same start and end: the exon chains decide, and A.1's second exon (300, 401) < (500, 600)
    assert chr1[:2] == ["A.1", "A.2"]


def test_piece_phases_reproduce_the_file_phases(annotation: Annotation) -> None:
    """The phase formula (cds_phase - length before) mod 3 gives back every CDS row's phase."""
    rows = list(parse_gff3(GENES_GFF))
    for transcript in _by_id(annotation).values():
        cds_rows = sorted(
            (r for r in rows if r.type == "CDS" and transcript.transcript_id in r.parents),
            key=lambda r: r.start,
        )
        if not cds_rows or transcript.transcript_id == "B.1":  # B.1's stop extends its last piece
            continue
        pieces = transcript.cds_pieces()
        assert pieces == [(r.start, r.end) for r in cds_rows]
        assert piece_phases(pieces, transcript.strand, transcript.cds_phase) == [
            r.phase for r in cds_rows
        ]


def test_genome_mapping_gives_lengths() -> None:
    genome = {r.seqid: r.sequence for r in read_fasta(GENES_FA)}
    assert load_annotation(GENES_GFF, genome=genome) == load_annotation(
        GENES_GFF, fasta_lengths(GENES_FA)
    )


def test_overlap_queries_match_brute_force(annotation: Annotation) -> None:
    items = annotation.transcripts["chr1"]
    for start in range(0, 2000, 37):
        end = start + 113
        expected = [t for t in items if t.start < end and t.end > start]
        assert annotation.transcripts_overlapping("chr1", start, end) == expected
    assert annotation.transcripts_overlapping("nope", 0, 10) == []


def _write(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "x.gff3"
    path.write_text("##gff-version 3\n" + "\n".join(r.replace(" ", "\t") for r in rows) + "\n")
    return path


def test_phase_mismatch_skips_the_transcript_only(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c src gene 1 300 . + . ID=g",
        "c src mRNA 1 300 . + . ID=t;Parent=g",
        "c src CDS 1 100 . + 0 Parent=t",
        "c src CDS 201 300 . + 0 Parent=t",  # should be (0 - 100) mod 3 = 2
        "c src gene 401 500 . - . ID=h",
        "c src CDS 401 500 . - 0 Parent=h",
    )
    annotation = load_annotation(path)
    assert annotation.skipped == {SKIP_PHASE: 1}
    assert [t.transcript_id for t in annotation.transcripts["c"]] == ["h"]


def test_overlapping_exons_and_uncovered_exons_are_skipped(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "c src mRNA 1 300 . + . ID=t1",
        "c src exon 1 100 . + . Parent=t1",
        "c src exon 50 300 . + . Parent=t1",
        "c src mRNA 1 300 . + . ID=t2",
        "c src exon 1 100 . + . Parent=t2",
        "c src exon 151 200 . + . Parent=t2",
        "c src exon 251 300 . + . Parent=t2",
        "c src CDS 1 100 . + 0 Parent=t2",
        "c src CDS 251 300 . + 2 Parent=t2",  # the middle exon has no CDS row
        "c src mRNA 1 300 . + . ID=t3",
        "c src exon 1 100 . + . Parent=t3",
        "c src exon 101 300 . + . Parent=t3",  # abuts: merged into one exon
    )
    annotation = load_annotation(path)
    assert annotation.skipped == {"overlapping exons": 1, "CDS does not cover its exons": 1}
    (t3,) = annotation.transcripts["c"]
    assert t3.exons == ((0, 300),) and t3.cds is None


def test_parts_on_another_seqid_skip_the_model_or_are_an_error_under_strict(tmp_path: Path) -> None:
    path = _write(tmp_path, "c src mRNA 1 300 . + . ID=t", "d src exon 1 100 . + . Parent=t")
    annotation = load_annotation(path)
    assert annotation.skipped == {"parts on another seqid": 1} and annotation.n_transcripts == 0
    with pytest.raises(GffFormatError, match=r"x.gff3:3: exon is on seqid d.*--strict"):
        load_annotation(path, strict=True)


def test_sequence_end_is_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, "c src tRNA 1 300 . + . ID=t", "c src tRNA 1 50 . + . ID=u")
    annotation = load_annotation(path, {"c": 100})
    assert annotation.skipped == {"beyond the sequence end": 1}
    assert [t.transcript_id for t in annotation.transcripts["c"]] == ["u"]
