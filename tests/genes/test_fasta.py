"""FASTA reader on tests/data/genes.fa (two toy chromosomes) and small files written here."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from genoforge.errors import FastaFormatError
from genoforge.genes.fasta import FastaRecord, fasta_lengths, read_fasta

GENES_FA = Path(__file__).resolve().parents[1] / "data" / "genes.fa"


def test_records_seqids_and_sequences() -> None:
    records = list(read_fasta(GENES_FA))
    assert [r.seqid for r in records] == ["chr1", "chr2"]  # first word of the header
    chr1 = records[0].sequence
    assert len(chr1) == 2000 and len(records[1].sequence) == 500
    # soft-masking is kept as written; the N run and IUPAC codes are accepted
    assert chr1[600:800].islower() and chr1[:600].isupper()
    assert chr1[800:850] == "N" * 50
    assert chr1[950:954] == "RYKM"


def test_lengths_match_records_and_keep_file_order() -> None:
    lengths = fasta_lengths(GENES_FA)
    assert list(lengths.items()) == [(r.seqid, len(r.sequence)) for r in read_fasta(GENES_FA)]


def test_gzip_detected_by_content_not_extension(tmp_path: Path) -> None:
    path = tmp_path / "genome.fa"  # gzip bytes behind a plain name
    path.write_bytes(gzip.compress(GENES_FA.read_bytes()))
    assert list(read_fasta(path)) == list(read_fasta(GENES_FA))


def test_streams_one_record_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "g.fa"
    path.write_text(">a\nAC\nGT\n>b\nNN\n")
    records = read_fasta(path)
    assert next(records) == FastaRecord("a", "ACGT")
    assert next(records) == FastaRecord("b", "NN")


@pytest.mark.parametrize(
    ("text", "line", "phrase"),
    [
        ("ACGT\n>a\nACGT\n", 1, "before the first '>' header"),
        (">a\nACGT\n>a\nACGT\n", 3, "duplicate sequence name 'a'"),
        (">a\nACGT\nAC-GT\n", 3, "character '-' (column 3)"),
        (">a\nACGT\nAC*\n", 3, "character '*'"),
        (">a\nAC GT\n", 2, "character ' '"),
        ("> \nACGT\n", 1, "without a sequence name"),
        ("\n\n>a\n\n", 3, "'a' has no sequence"),
    ],
)
def test_format_errors_name_file_and_line(tmp_path: Path, text: str, line: int, phrase: str) -> None:
    path = tmp_path / "bad.fa"
    path.write_text(text)
    with pytest.raises(FastaFormatError) as info:
        list(read_fasta(path))
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert phrase in str(info.value)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="not found"):
        fasta_lengths(tmp_path / "absent.fa")
