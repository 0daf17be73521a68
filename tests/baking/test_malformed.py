"""One test per file in tests/data/malformed/ (each file is named after its defect).

Errors must name the file and the line (``path:line:``) and say how to fix the input; the files
that are not errors (CRLF and CR-only line endings, a UTF-8 byte-order mark, a seqid missing from
the FASTA) are accepted with a defined result. A broken gene model (orphan Parent, duplicate ID,
CDS outside its exon, past the sequence end) is skipped and counted at its first line by default,
and is that same one-line error under ``strict``.

Every file is also baked end to end (:data:`BAKE_ERRORS`, :data:`BAKE_ACCEPTED`): a species folder
holds the file and a sound partner (a FASTA of chr1, 1,200 bp, for an annotation; a GFF3 with one
gene on chr1 1-300 for a FASTA; the ``seqid_missing_from_fasta`` and ``crlf_line_endings`` pairs
bake together). ``genoforge bake`` must then exit 1 with exactly one ``Error: path:line: ...`` line
on stderr, no traceback, and nothing left beside the output folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.errors import FastaFormatError, GffFormatError
from genoforge.genes.annotation import load_annotation
from genoforge.genes.fasta import fasta_lengths, read_fasta
from genoforge.genes.gene_models import (
    SKIP_CDS_OUTSIDE_EXON,
    SKIP_DUPLICATE_ID,
    SKIP_MISSING_SEQID,
    SKIP_ORPHAN,
)
from genoforge.genes.gff3 import parse_gff3

MALFORMED = Path(__file__).resolve().parents[1] / "data" / "malformed"


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


# -- the whole corpus through `genoforge bake` ----------------------------------------------

# (file, line named in the error or None where no line applies, phrase of the message, flags)
BAKE_ERRORS = [
    # annotations
    ("bad_attribute.gff3", 4, "attribute 'Parent g1' is not key=value", ()),
    ("bad_phase.gff3", 6, "bad phase '3'", ()),
    ("bad_score.gff3", 3, "bad score 'high'", ()),
    ("beyond_sequence_end.gff3", 9, "t1 ends at 5000, beyond the end of chr1 (1200 bp", ("--strict",)),
    ("binary_annotation.gff3", 1, "not UTF-8 text (byte 0xbd at column 7)", ()),
    ("bzip2_compressed.gff3", None, "is bzip2-compressed", ()),
    ("cds_outside_exon.gff3", 3, "no usable gene model in 5 feature rows (skipped: CDS outside", ()),
    ("cds_without_phase.gff3", 6, "CDS without phase", ()),
    ("comments_only.gff3", 2, "empty file: no feature lines", ()),
    ("duplicate_id.gff3", 3, "no usable gene model in 3 feature rows (skipped: duplicate ID 2)", ()),
    ("empty_file.gff3", 1, "empty file: no feature lines", ()),
    ("empty_seqid.gff3", 3, "empty seqid or type column", ()),
    ("end_before_start.gff3", 4, "exon end 100 < start 200", ()),
    ("fasta_without_directive.gff3", 7, "FASTA header inside the features", ()),
    ("latin1_byte.gff3", 3, "not UTF-8 text (byte 0xe9 at column 41)", ()),
    ("no_gene_model.gff3", 3, "no usable gene model in 2 feature rows", ()),
    ("non_integer_coordinate.gff3", 4, "start '1,001' is not a positive integer", ()),
    ("orphan_parent.gff3", 3, "no usable gene model in 3 feature rows", ()),
    ("parent_cycle.gff3", 4, "Parent cycle 't1' -> 't2' -> 't1'", ()),
    ("seqids_all_missing_from_fasta.gff3", 4, "2 seqids (chrY, chrZ) is in the FASTA (chr1)", ()),
    ("spaces_instead_of_tabs.gff3", 4, "expected 9 TAB-separated columns, found 1", ()),
    ("truncated_gzip.gff3.gz", 975, "truncated or corrupt", ()),
    ("two_ids_on_one_row.gff3", 3, "ID has 2 values", ()),
    ("unknown_strand.gff3", 3, "unknown strand 'x'", ()),
    ("utf16.gff3", 1, "UTF-16 text", ()),
    ("wrong_column_count.gff3", 4, "expected 9 TAB-separated columns, found 8", ()),
    ("zero_coordinate.gff3", 4, "start 0 < 1", ()),
    # genomes
    ("binary_fasta.fa", 1, "not UTF-8 text (byte 0x89 at column 1)", ()),
    ("blank_lines_only.fa", 4, "empty file: no '>' header", ()),
    ("duplicate_header.fa", 5, "duplicate sequence name 'chr1'", ()),
    ("empty_file.fa", 1, "empty file: no '>' header", ()),
    ("fasta_without_sequence.fa", 3, "record 'chr2' has no sequence", ()),
    ("genbank_numbered_lines.fa", 2, "character '1' (column 9) in sequence 'chr1'", ()),
    ("header_without_name.fa", 3, "header '>' without a sequence name", ()),
    ("invalid_fasta_character.fa", 3, "character '-' (column 5) in sequence 'chr1'", ()),
    ("latin1_byte.fa", 3, "not UTF-8 text (byte 0xe9 at column 31)", ()),
    ("nul_byte.fa", 2, "NUL byte", ()),
    ("protein_fasta.fa", 2, "character 'L' (column 3)", ()),
    ("text_before_header.fa", 1, "sequence text before the first '>' header", ()),
    ("truncated_gzip.fa.gz", 798, "truncated or corrupt", ()),
    ("utf16.fa", 1, "UTF-16 text", ()),
]
# Broken gene models under --strict: the defect's own line, even where the broken model was the
# file's only one (strict is checked before the file-level "no usable gene model").
BAKE_STRICT = [
    ("cds_outside_exon.gff3", 7, "CDS 401-450 outside its exon"),
    ("orphan_parent.gff3", 5, "orphan Parent 't2'"),
    ("duplicate_id.gff3", 5, "duplicate ID 'g1'"),
]
# Not errors: these bake (exit 0), byte for byte like their plain LF twin where one is given.
BAKE_ACCEPTED = [
    "cr_only_line_endings.fa",
    "cr_only_line_endings.gff3",
    "crlf_line_endings.fa",
    "crlf_line_endings.gff3",
    "seqid_missing_from_fasta.fa",
    "seqid_missing_from_fasta.gff3",
    "utf8_bom.fa",
    "utf8_bom.gff3",
]
PAIRED = ("seqid_missing_from_fasta", "crlf_line_endings")

_CHR1 = "".join("ACGT"[(i * 7 + i // 5) % 4] for i in range(1200))
PARTNER_FASTA = ">chr1 sound partner\n" + "".join(_CHR1[i : i + 60] + "\n" for i in range(0, 1200, 60))
PARTNER_GFF3 = "##gff-version 3\n" + "".join(
    "\t".join(row.split()) + "\n"
    for row in (
        "chr1 toy gene 1 300 . + . ID=g1",
        "chr1 toy mRNA 1 300 . + . ID=t1;Parent=g1",
        "chr1 toy exon 1 300 . + . Parent=t1",
        "chr1 toy CDS 1 300 . + 0 Parent=t1",
    )
)

runner = CliRunner()


def _species(raw: Path, name: str, data: bytes | None = None) -> Path:
    """raw/sp/ holding corpus file ``name`` (or ``data`` under that name) and its partner."""
    folder = raw / "sp"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(data if data is not None else (MALFORMED / name).read_bytes())
    stem = name.split(".")[0]
    if ".fa" in name:
        twin = MALFORMED / f"{stem}.gff3"
        (folder / "partner.gff3").write_text(twin.read_text() if stem in PAIRED else PARTNER_GFF3)
    else:
        twin = MALFORMED / f"{stem}.fa"
        (folder / "partner.fa").write_text(twin.read_text() if stem in PAIRED else PARTNER_FASTA)
    return folder / name


def _bake(raw: Path, out: Path, tokenizer: Path, *flags: str):
    args = ["bake", "--raw_dir", str(raw), "--output_dir", str(out / "baked"), "--tokenizer", str(tokenizer)]
    # 100 bp windows: even the 300 bp CRLF twin yields samples to compare.
    return runner.invoke(app, [*args, "--window_size", "100", "--val_fraction", "0.3", *flags])


def _assert_one_line_error(result, out: Path, where: str, phrase: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: {where}"), lines[0]
    assert phrase in lines[0], lines[0]
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())


def test_every_corpus_file_is_baked_by_a_test() -> None:
    tested = [name for name, *_ in BAKE_ERRORS] + BAKE_ACCEPTED
    assert len(tested) == len(set(tested))
    assert sorted(tested) == sorted(p.name for p in MALFORMED.iterdir() if not p.name.startswith("."))
    assert len(BAKE_ERRORS) >= 30


@pytest.mark.parametrize(("name", "line", "phrase", "flags"), BAKE_ERRORS, ids=[c[0] for c in BAKE_ERRORS])
def test_bake_reports_the_defect_in_one_line_and_leaves_nothing(
    tmp_path: Path, baking_tokenizer_dir: Path, name: str, line: int | None, phrase: str, flags: tuple
) -> None:
    path = _species(tmp_path / "raw", name)
    result = _bake(tmp_path / "raw", tmp_path / "out", baking_tokenizer_dir, *flags)
    _assert_one_line_error(result, tmp_path / "out", f"{path}:{line}: " if line else f"{path}: ", phrase)


@pytest.mark.parametrize(("name", "line", "phrase"), BAKE_STRICT, ids=[c[0] for c in BAKE_STRICT])
def test_bake_strict_names_the_broken_model_line(
    tmp_path: Path, baking_tokenizer_dir: Path, name: str, line: int, phrase: str
) -> None:
    path = _species(tmp_path / "raw", name)
    result = _bake(tmp_path / "raw", tmp_path / "out", baking_tokenizer_dir, "--strict")
    _assert_one_line_error(result, tmp_path / "out", f"{path}:{line}: ", phrase)
    assert "--strict" in result.stderr


@pytest.mark.parametrize(
    ("name", "line", "phrase"),
    [
        # File-level defects stay file-level under --strict.
        ("seqids_all_missing_from_fasta.gff3", 4, "2 seqids (chrY, chrZ) is in the FASTA (chr1)"),
        ("no_gene_model.gff3", 3, "no usable gene model in 2 feature rows"),
    ],
)
def test_bake_strict_keeps_file_level_errors(
    tmp_path: Path, baking_tokenizer_dir: Path, name: str, line: int, phrase: str
) -> None:
    path = _species(tmp_path / "raw", name)
    result = _bake(tmp_path / "raw", tmp_path / "out", baking_tokenizer_dir, "--strict")
    _assert_one_line_error(result, tmp_path / "out", f"{path}:{line}: ", phrase)


@pytest.mark.parametrize("kind", ["fa", "gff3"])
def test_bake_unreadable_file_is_one_line_error(
    tmp_path: Path, baking_tokenizer_dir: Path, kind: str
) -> None:
    data = (PARTNER_FASTA if kind == "fa" else PARTNER_GFF3).encode()
    path = _species(tmp_path / "raw", f"unreadable.{kind}", data)
    path.chmod(0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user (root?) who reads a chmod 000 file anyway")
        result = _bake(tmp_path / "raw", tmp_path / "out", baking_tokenizer_dir)
        _assert_one_line_error(result, tmp_path / "out", f"{path}", "cannot be read")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("kind", ["fa", "gff3"])
def test_bake_unreadable_file_is_one_line_error_even_as_root(
    tmp_path: Path, baking_tokenizer_dir: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # The chmod test above skips as root (root reads a chmod 000 file): here the open() of bake's
    # discovery (its compression sniff, the first read of each input) is refused instead.
    import builtins

    from genoforge.genes import discovery as discovery_module

    data = (PARTNER_FASTA if kind == "fa" else PARTNER_GFF3).encode()
    path = _species(tmp_path / "raw", f"unreadable.{kind}", data)
    refused: list[str] = []

    def refusing_open(file, *args, **kwargs):
        if Path(file) == path:
            refused.append(str(file))
            raise PermissionError(13, "Permission denied", str(file))
        return builtins.open(file, *args, **kwargs)

    monkeypatch.setattr(discovery_module, "open", refusing_open, raising=False)
    result = _bake(tmp_path / "raw", tmp_path / "out", baking_tokenizer_dir)
    assert refused, "the refusing open() was never called: the test no longer covers discovery"
    _assert_one_line_error(
        result, tmp_path / "out", f"{path}: ", "cannot be read (Permission denied); check its permissions"
    )


def _plain_twin(data: bytes) -> bytes:
    """The same text with LF line endings and no byte-order mark."""
    return data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n").replace(b"\r", b"\n")


@pytest.mark.parametrize("name", BAKE_ACCEPTED)
def test_bake_accepts_line_endings_bom_and_missing_seqids(
    tmp_path: Path, baking_tokenizer_dir: Path, name: str
) -> None:
    _species(tmp_path / "raw", name)
    result = _bake(tmp_path / "raw", tmp_path / "out", baking_tokenizer_dir)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    manifest = json.loads((tmp_path / "out" / "baked" / "manifest.json").read_text())
    assert manifest["species"]["sp"]["transcripts"] == 1
    plain = _plain_twin((MALFORMED / name).read_bytes())
    if plain != (MALFORMED / name).read_bytes():
        _species(tmp_path / "plain", name, plain)
        twin = _bake(tmp_path / "plain", tmp_path / "plain_out", baking_tokenizer_dir)
        assert twin.exit_code == 0, twin.output
        twin_manifest = json.loads((tmp_path / "plain_out" / "baked" / "manifest.json").read_text())
        for file_name, output in manifest["outputs"].items():
            assert output["sha256"] == twin_manifest["outputs"][file_name]["sha256"], file_name
        assert manifest["outputs"]["training.packed"]["samples"] > 0  # a comparison of something
