"""The GFF3 that predict writes (genoforge/inference/gff_writer.py), fed known annotations.

Every file is checked by `gt gff3validator` (genometools; those checks skip when `gt` is absent)
and read back with genoforge's own GFF3 loader, which must give the models that were written.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from genoforge.genes.annotation import load_annotation
from genoforge.genes.target import WindowAnnotation, WindowFeature, WindowTranscript
from genoforge.inference.gff_writer import escape_seqid, open_gff
from genoforge.inference.stitch import WindowResult, stitch_contig

from tests.helpers import assert_gt_valid
from tests.inference.stitch_contig import LENGTH, SEQID, shape, synthetic_annotation, windows_of


def feature_rows(path: Path) -> list[list[str]]:
    return [line.rstrip("\n").split("\t") for line in path.read_text().splitlines()
            if line and not line.startswith("#")]


def write(path: Path, contigs, regions) -> Path:
    with open_gff(path, "toy-model", "/models/toy-model", regions, ["windows: test"]) as writer:
        for contig in contigs:
            writer.write_contig(contig)
    return path


def test_stitched_contig_is_valid_and_reads_back_to_the_same_models(tmp_path: Path) -> None:
    annotation = synthetic_annotation()
    stitched = stitch_contig(SEQID, LENGTH, windows_of(annotation))
    path = write(tmp_path / "pred.gff3", [stitched], [(SEQID, LENGTH)])
    assert_gt_valid(path)
    back = load_annotation(path, {SEQID: LENGTH})
    assert not back.skipped
    original = annotation.transcripts[SEQID]
    assert Counter(shape(t) for t in back.transcripts[SEQID]) == Counter(shape(t) for t in original)

    def genes(ts):
        return Counter(frozenset(shape(t) for t in ts if t.gene_id == g) for g in {t.gene_id for t in ts})

    assert genes(back.transcripts[SEQID]) == genes(original)
    assert [(f.type, f.start, f.end) for f in back.features[SEQID]] == [
        ("origin_of_replication", 16_800, 17_800), ("mobile_genetic_element", 20_000, 36_000)]


def test_header_ids_and_sequence_regions(tmp_path: Path) -> None:
    stitched = stitch_contig(SEQID, LENGTH, windows_of(synthetic_annotation()))
    path = write(tmp_path / "pred.gff3", [stitched], [(SEQID, LENGTH), ("chrEmpty", 10)])
    lines = path.read_text().splitlines()
    assert lines[0] == "##gff-version 3"
    assert any(line.startswith("# genoforge ") and "predict" in line for line in lines[:4])
    assert "# model: toy-model (/models/toy-model)" in lines
    assert f"##sequence-region {SEQID} 1 {LENGTH}" in lines and "##sequence-region chrEmpty 1 10" in lines
    ids = [col[8].split("ID=")[1].split(";")[0] for col in feature_rows(path) if "ID=" in col[8]]
    ids_without_cds = [i for i in ids if not i.endswith(".cds")]
    assert len(ids_without_cds) == len(set(ids_without_cds))  # CDS rows share their transcript's CDS ID
    types = Counter(col[2] for col in feature_rows(path))
    assert types["gene"] == 8 and types["mRNA"] == 8 and types["lnc_RNA"] == 2
    assert types["five_prime_UTR"] > 0 and types["three_prime_UTR"] > 0
    assert not list(tmp_path.glob(".*tmp"))  # nothing left behind by the atomic write


def test_minus_strand_cds_phases_in_the_file(tmp_path: Path) -> None:
    """A minus-strand CDS of pieces 102 + 50 + 60 bp whose 5' piece (the highest) has phase 1:
    walking 5'->3' (high to low) the phases are 1, (1 - 60) mod 3 = 1, (1 - 110) mod 3 = 2."""
    t = WindowTranscript("-", "protein_coding", 0, ".", ((100, 301), (400, 450), (500, 560)), (199, 560), 1)
    contig = stitch_contig("chrM", 1_000, [WindowResult(0, 1_000, WindowAnnotation((t,)))])
    path = write(tmp_path / "minus.gff3", [contig], [("chrM", 1_000)])
    assert_gt_valid(path)
    cds = sorted((int(c[3]), int(c[4]), c[7]) for c in feature_rows(path) if c[2] == "CDS")
    assert cds == [(200, 301, "2"), (401, 450, "1"), (501, 560, "1")]
    utrs = sorted((c[2], int(c[3]), int(c[4])) for c in feature_rows(path) if c[2].endswith("UTR"))
    assert utrs == [("three_prime_UTR", 101, 199)]  # minus strand: the low end is 3'


def test_short_contig_n_contig_both_strands_and_contig_end_cuts(tmp_path: Path) -> None:
    """Contigs shorter than a window, an all-N contig (no rows, still a region), genes on both
    strands, and genes cut by either contig end are all valid GFF3."""
    short = WindowAnnotation((
        WindowTranscript("+", "protein_coding", 0, "<", ((0, 120), (200, 260)), (0, 230), 2),
        WindowTranscript("-", "protein_coding", 1, ">", ((280, 350), (400, 480)), (300, 480), 1),
        WindowTranscript("-", "tRNA", 2, ".", ((360, 390),), None, 0),
        WindowFeature("origin_of_replication", ".", 10, 50, "<"),
    ))
    short_contig = stitch_contig("ctg;short=1", 480, [WindowResult(0, 480, short)])
    n_contig = stitch_contig("chrN", 5_000, [WindowResult(0, 5_000, WindowAnnotation())])
    path = write(tmp_path / "edge.gff3", [short_contig, n_contig], [("ctg;short=1", 480), ("chrN", 5_000)])
    assert_gt_valid(path)
    rows = feature_rows(path)
    assert {r[0] for r in rows} == {escape_seqid("ctg;short=1")} == {"ctg%3Bshort%3D1"}
    partial = sorted(r[8].split("partial=")[1] for r in rows if "partial=" in r[8])
    assert partial == ["left", "left", "right"]
    # NCBI's convention beside it, on the transcripts: which coordinate is not a real end.
    ranges = sorted(a for r in rows if r[2] == "mRNA" for a in r[8].split(";")
                    if a.startswith(("start_range=", "end_range=")))
    assert ranges == ["end_range=480,.", "start_range=.,1"]
    back = load_annotation(path, {"ctg;short=1": 480, "chrN": 5_000})
    assert [t.cds_phase for t in back.transcripts["ctg;short=1"] if t.cds] == [2, 1]
    assert "chrN" not in back.transcripts


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "out.gff3"
    with pytest.raises(RuntimeError):
        with open_gff(path, "m", None, [("c", 10)]):
            raise RuntimeError("interrupted")
    assert not path.exists() and list(tmp_path.iterdir()) == []
