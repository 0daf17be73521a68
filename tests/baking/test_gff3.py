"""GFF3 row parser on tests/data/genes.gff3 (loci described in its header) and inline defects."""

from __future__ import annotations

from pathlib import Path

import pytest

from genoforge.errors import GffFormatError
from genoforge.genes.gff3 import parse_gff3

GENES_GFF = Path(__file__).resolve().parents[1] / "data" / "genes.gff3"


@pytest.fixture(scope="module")
def rows():
    return list(parse_gff3(GENES_GFF))


def test_coordinates_become_zero_based_half_open(rows) -> None:
    gene_a = rows[0]
    assert (gene_a.type, gene_a.id, gene_a.seqid) == ("gene", "geneA", "chr1")
    assert (gene_a.start, gene_a.end) == (100, 600)  # file: 101..600
    assert gene_a.line == 19
    cds = [r for r in rows if r.type == "CDS" and "A.1" in r.parents]
    assert [(r.start, r.end, r.phase) for r in cds] == [(150, 200, 0), (300, 401, 1), (500, 560, 2)]


def test_percent_decoding_and_multi_values(rows) -> None:
    gene_c = next(r for r in rows if r.id == "geneC")
    assert gene_c.attributes["Note"] == ("a;b,c=d%",)
    assert gene_c.attributes["Alias"] == ("C1", "C2")
    shared_exon = next(r for r in rows if r.type == "exon" and r.start == 1400)
    assert shared_exon.parents == ("D.1", "D.2")


def test_comments_directives_and_fasta_section_are_not_rows(rows) -> None:
    assert all(not r.seqid.startswith(("#", ">")) for r in rows)
    assert rows[-1].seqid == "chrUn" and rows[-1].type == "CDS"  # ##FASTA ends the features
    n_feature_lines = sum(
        1
        for line in GENES_GFF.read_text().split("\n##FASTA")[0].splitlines()
        if line and not line.startswith("#")
    )
    assert len(rows) == n_feature_lines
    ars = next(r for r in rows if r.type == "ARS")
    assert ars.strand == "." and ars.phase is None and ars.score is None


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "x.gff3"
    path.write_text("##gff-version 3\n" + "\n".join(lines) + "\n")
    return path


GOOD = "chr1\tsrc\tgene\t1\t10\t.\t+\t.\tID=g"


@pytest.mark.parametrize(
    ("line", "phrase"),
    [
        ("chr1 src gene 1 10 . + . ID=g", "expected 9 TAB-separated columns, found 1"),
        ("chr1\tsrc\tgene\t1\t10\t.\t+\t.\tID=g\t", "found 10"),
        ("chr1\tsrc\tgene\tone\t10\t.\t+\t.\tID=g", "start 'one' is not a positive integer"),
        ("chr1\tsrc\tgene\t0\t10\t.\t+\t.\tID=g", "start 0 < 1"),
        ("chr1\tsrc\tCDS\t1\t10\t.\t+\t3\tID=g", "bad phase '3'"),
        ("chr1\tsrc\tCDS\t1\t10\t.\t+\t.\tID=g", "CDS without phase"),
        ("chr1\tsrc\tgene\t1\t10\thigh\t+\t.\tID=g", "bad score 'high'"),
        ("chr1\tsrc\tgene\t1\t10\t.\t+\t.\tID=g;oops", "attribute 'oops' is not key=value"),
        ("chr1\tsrc\tgene\t1\t10\t.\t+\t.\tID=a,b", "ID has 2 values"),
        (">chr1", "FASTA header inside the features"),
    ],
)
def test_row_defects_name_file_line_and_fix(tmp_path: Path, line: str, phrase: str) -> None:
    path = _write(tmp_path, GOOD, line)
    with pytest.raises(GffFormatError) as info:
        list(parse_gff3(path))
    assert str(info.value).startswith(f"{path}:3: ")
    assert phrase in str(info.value)


def test_only_comments_is_empty(tmp_path: Path) -> None:
    path = _write(tmp_path, "# nothing here", "##sequence-region chr1 1 10")
    with pytest.raises(GffFormatError, match="empty file"):
        list(parse_gff3(path))


def test_score_strand_question_and_trailing_semicolon(tmp_path: Path) -> None:
    path = _write(tmp_path, "chr%3B1\tsrc\tregion\t5\t5\t0.5\t?\t.\tID=r;Name=x%20y;")
    (row,) = parse_gff3(path)
    assert (row.seqid, row.start, row.end, row.score, row.strand) == ("chr;1", 4, 5, 0.5, "?")
    assert row.attributes == {"ID": ("r",), "Name": ("x y",)}
