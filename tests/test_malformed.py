"""One test per file in tests/data/malformed/ (each file is named after its defect).

Errors must name the file and the line (``path:line:``) and say how to fix the input; the two
files that are not errors (CRLF endings, a seqid missing from the FASTA) are accepted with a
defined result. A broken gene model (orphan Parent, duplicate ID, CDS outside its exon) is skipped
and counted at its first line by default, and is that same one-line error under ``strict``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genoforge.baking.fasta import fasta_lengths, read_fasta
from genoforge.baking.genes import (
    SKIP_CDS_OUTSIDE_EXON,
    SKIP_DUPLICATE_ID,
    SKIP_MISSING_SEQID,
    SKIP_ORPHAN,
    load_annotation,
)
from genoforge.baking.gff3 import parse_gff3
from genoforge.errors import FastaFormatError, GffFormatError

MALFORMED = Path(__file__).parent / "data" / "malformed"


def _gff_error(name: str) -> GffFormatError:
    path = MALFORMED / name
    with pytest.raises(GffFormatError) as info:
        load_annotation(path, strict=True)
    return info.value


@pytest.mark.parametrize(
    ("name", "line", "phrase"),
    [
        ("end_before_start.gff3", 4, "end 100 < start 200"),
        ("unknown_strand.gff3", 3, "unknown strand 'x'"),
        ("cds_outside_exon.gff3", 7, "CDS 401-450 outside its exon"),
        ("orphan_parent.gff3", 5, "orphan Parent 't2'"),
        ("duplicate_id.gff3", 5, "duplicate ID 'g1' (first used on line 3"),
        ("empty_file.gff3", 1, "empty file"),
    ],
)
def test_gff3_defect_names_file_line_and_problem(name: str, line: int, phrase: str) -> None:
    error = _gff_error(name)
    message = str(error)
    assert message.startswith(f"{MALFORMED / name}:{line}: ")
    assert phrase in message
    assert ";" in message  # what was found; then how to fix it
    assert error.line == line


@pytest.mark.parametrize(
    ("name", "reason", "line", "kept"),
    [
        ("cds_outside_exon.gff3", SKIP_CDS_OUTSIDE_EXON, 7, 0),
        ("orphan_parent.gff3", SKIP_ORPHAN, 5, 0),
        ("duplicate_id.gff3", SKIP_DUPLICATE_ID, 5, 0),
    ],
)
def test_broken_models_are_skipped_and_located_without_strict(
    name: str, reason: str, line: int, kept: int
) -> None:
    annotation = load_annotation(MALFORMED / name)
    assert annotation.skipped[reason] >= 1
    assert annotation.skip_location(reason) == f"{MALFORMED / name}:{line}"
    assert annotation.n_transcripts == kept


def test_truncated_gzip_is_a_format_error_naming_file_and_line() -> None:
    path = MALFORMED / "truncated_gzip.gff3.gz"
    with pytest.raises(GffFormatError) as info:
        list(parse_gff3(path))
    message = str(info.value)
    assert message.startswith(f"{path}:")
    assert info.value.line is not None and info.value.line > 1
    assert "truncated or corrupt" in message and "re-download" in message


def test_truncated_gzip_fasta_is_a_format_error(tmp_path: Path) -> None:
    import gzip

    data = gzip.compress((">chr1\n" + "ACGT" * 20000 + "\n").encode(), mtime=0)
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FastaFormatError, match="truncated or corrupt") as info:
        fasta_lengths(path)
    assert str(info.value).startswith(f"{path}:")


def test_fasta_without_sequence_names_the_header_line() -> None:
    path = MALFORMED / "fasta_without_sequence.fa"
    with pytest.raises(FastaFormatError) as info:
        list(read_fasta(path))
    assert str(info.value).startswith(f"{path}:3: ")
    assert "'chr2' has no sequence" in str(info.value)


def test_empty_fasta_is_an_error() -> None:
    path = MALFORMED / "empty_file.fa"
    with pytest.raises(FastaFormatError) as info:
        fasta_lengths(path)
    assert str(info.value).startswith(f"{path}:1: empty file")


def test_seqid_missing_from_fasta_is_skipped_and_counted() -> None:
    lengths = fasta_lengths(MALFORMED / "seqid_missing_from_fasta.fa")
    annotation = load_annotation(MALFORMED / "seqid_missing_from_fasta.gff3", lengths)
    assert set(annotation.transcripts) == {"chr1"}
    assert annotation.features == {}
    # the gene and the ARS on chrX
    assert annotation.skipped[SKIP_MISSING_SEQID] == 2
    assert annotation.n_transcripts == 1
    # Without FASTA lengths nothing is skipped.
    assert load_annotation(MALFORMED / "seqid_missing_from_fasta.gff3").n_transcripts == 2


def test_crlf_line_endings_parse_like_lf(tmp_path: Path) -> None:
    crlf_gff = MALFORMED / "crlf_line_endings.gff3"
    assert b"\r\n" in crlf_gff.read_bytes()
    lf_gff = tmp_path / "lf.gff3"
    lf_gff.write_bytes(crlf_gff.read_bytes().replace(b"\r\n", b"\n"))
    assert list(parse_gff3(crlf_gff)) == list(parse_gff3(lf_gff))
    crlf_model = load_annotation(crlf_gff)
    assert crlf_model == load_annotation(lf_gff)
    assert crlf_model.transcripts["chr1"][0].cds == (50, 250)

    crlf_fa = MALFORMED / "crlf_line_endings.fa"
    lf_fa = tmp_path / "lf.fa"
    lf_fa.write_bytes(crlf_fa.read_bytes().replace(b"\r\n", b"\n"))
    records = list(read_fasta(crlf_fa))
    assert records == list(read_fasta(lf_fa))
    assert "\r" not in records[0].sequence and len(records[0].sequence) == 300
