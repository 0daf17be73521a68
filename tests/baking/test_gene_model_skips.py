"""Broken gene models are skipped and counted with their first line; ``strict`` refuses them.

Each test writes a tiny GFF3 whose rows say what they exercise. The rules are in the docstring of
genoforge/genes/annotation.py: rows that belong to no gene model are ignored before any ID check, a
broken model is skipped (counted by reason, first ``file:line`` kept), file-level defects and
Parent cycles are errors. The last tests load every annotation of ../shared/data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from genoforge.errors import GffFormatError
from genoforge.genes.annotation import load_annotation
from genoforge.genes.gene_models import (
    BROKEN_MODEL_REASONS,
    SKIP_DUPLICATE_ID,
    SKIP_ORPHAN,
    SKIP_OTHER_STRAND,
    SKIP_OUTSIDE_PARENT,
)


def _write(tmp_path: Path, *rows: str, name: str = "x.gff3") -> Path:
    path = tmp_path / name
    path.write_text("##gff-version 3\n" + "\n".join(r.replace(" ", "\t") for r in rows) + "\n")
    return path


def _ids(annotation) -> list[str]:
    return sorted(t.transcript_id for ts in annotation.transcripts.values() for t in ts)


# A complete two-exon gene on + (lines 2-7 of every file that starts with it).
GOOD = (
    "c src gene 1 300 . + . ID=good",
    "c src mRNA 1 300 . + . ID=good.1;Parent=good",
    "c src exon 1 100 . + . Parent=good.1",
    "c src exon 201 300 . + . Parent=good.1",
    "c src CDS 1 100 . + 0 Parent=good.1",
    "c src CDS 201 300 . + 2 Parent=good.1",
)


def test_evidence_rows_reusing_ids_are_ignored_before_id_checks(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        *GOOD,
        # RNA-seq splice rows as TAIR ships them: no Parent, IDs reused on other strands/places,
        # one of them even the ID of the gene above.
        "c RNASeq_splice intron 101 200 1 - . ID=lgs",
        "c RNASeq_splice intron 120 180 8 + . ID=lgs",
        "c RNASeq_splice intron 130 150 3 - . ID=good",
        "c RNASeq_reads transcript_region 5 50 1 . . ID=lgs",
        "c src piRNA 400 420 . + . ID=lgs",
        "c src base_call_error_correction 500 501 . . . ID=lgs",
    )
    annotation = load_annotation(path, {"c": 1000}, strict=True, require_models=True)
    assert _ids(annotation) == ["good.1"]
    assert annotation.transcripts["c"][0].exons == ((0, 100), (200, 300))
    # Parentless introns are implied rows (not counted); the other types are counted as ignored.
    assert annotation.skipped == {
        "unsupported type transcript_region": 1,
        "unsupported type piRNA": 1,
        "unsupported type base_call_error_correction": 1,
    }
    assert not annotation.broken_models()


def test_orphan_parent_skips_that_model_only_and_records_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        *GOOD,
        "c src gene 401 700 . - . ID=lost",
        "c src five_prime_UTR 681 700 . - . Parent=lost.1",  # line 9: an implied row, ignored
        "c src exon 401 700 . - . Parent=lost.1",  # line 10: the first model row under lost.1
        "c src CDS 401 680 . - 0 Parent=lost.1",
    )
    annotation = load_annotation(path, {"c": 1000})
    assert _ids(annotation) == ["good.1"]
    assert annotation.skipped[SKIP_ORPHAN] == 1  # one missing transcript, however many rows
    assert annotation.skip_location(SKIP_ORPHAN) == f"{path}:10"
    assert "orphan Parent 'lost.1'" in annotation.skip_sites[SKIP_ORPHAN].message


def test_duplicate_gene_id_at_distant_coordinates_is_not_merged(tmp_path: Path) -> None:
    # SGD style (CDS under gene): one ID on two genes 1.35 kb apart. Merging them would make
    # one gene with a 1.35 kb intron that no file describes.
    path = _write(
        tmp_path,
        *GOOD,
        "c SGD gene 1001 1300 . + . ID=YAL069W",
        "c SGD CDS 1001 1300 . + 0 Parent=YAL069W",
        "c SGD gene 2651 2950 . + . ID=YAL069W",  # line 10
        "c SGD CDS 2651 2950 . + 0 Parent=YAL069W",
    )
    annotation = load_annotation(path, {"c": 5000})
    assert _ids(annotation) == ["good.1"]
    assert annotation.skipped[SKIP_DUPLICATE_ID] == 2  # both genes
    assert annotation.skip_location(SKIP_DUPLICATE_ID) == f"{path}:10"
    message = annotation.skip_sites[SKIP_DUPLICATE_ID].message
    assert "duplicate ID 'YAL069W' (first used on line 8" in message
    with pytest.raises(GffFormatError, match=rf"^{path}:10: duplicate ID 'YAL069W'"):
        load_annotation(path, {"c": 5000}, strict=True)


def test_a_cds_sharing_one_id_over_several_rows_is_one_feature(tmp_path: Path) -> None:
    # WormBase: every CDS row of a transcript carries ID=CDS:x (a discontinuous feature).
    path = _write(
        tmp_path,
        "c src gene 1 300 . + . ID=g",
        "c src mRNA 1 300 . + . ID=t;Parent=g",
        "c src exon 1 100 . + . Parent=t",
        "c src exon 201 300 . + . Parent=t",
        "c src CDS 1 100 . + 0 ID=CDS:t;Parent=t",
        "c src CDS 201 300 . + 2 ID=CDS:t;Parent=t",
    )
    annotation = load_annotation(path, strict=True)
    assert annotation.transcripts["c"][0].cds == (0, 300) and not annotation.skipped


@pytest.mark.parametrize(
    ("rows", "line", "cycle"),
    [
        (("c src gene 1 300 . + . ID=a;Parent=b", "c src mRNA 1 300 . + . ID=b;Parent=a"), 2,
         "'a' -> 'b' -> 'a'"),
        (("c src mRNA 1 300 . + . ID=self;Parent=self",), 2, "'self' -> 'self'"),
    ],
)
def test_a_parent_cycle_is_a_one_line_error(tmp_path: Path, rows, line, cycle) -> None:
    path = _write(tmp_path, *rows)
    with pytest.raises(GffFormatError) as info:
        load_annotation(path)  # an error without --strict: no model can be built from a cycle
    message = str(info.value)
    assert message.startswith(f"{path}:") and "\n" not in message
    assert f"Parent cycle {cycle}" in message and "; fix the Parent" in message
    assert info.value.line is not None and info.value.line >= line


def test_parts_outside_their_parent_and_strand_conflicts_are_skipped(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        *GOOD,
        "c src mRNA 401 500 . + . ID=wide",
        "c src exon 401 560 . + . Parent=wide",  # line 9: past the mRNA's end
        "c src gene 601 700 . + . ID=flip",
        "c src mRNA 601 700 . - . ID=flip.1;Parent=flip",  # line 11: the gene is on +
        "c src exon 601 700 . - . Parent=flip.1",
        "c src gene 801 900 . + . ID=small",
        "c src mRNA 790 900 . + . ID=small.1;Parent=small",  # line 14: starts before its gene
        "c src exon 790 900 . + . Parent=small.1",
    )
    annotation = load_annotation(path, {"c": 1000})
    assert _ids(annotation) == ["good.1"]
    assert annotation.broken_models() == {SKIP_OUTSIDE_PARENT: 2, SKIP_OTHER_STRAND: 1}
    assert annotation.skip_sites[SKIP_OUTSIDE_PARENT].line == 9
    assert annotation.skip_sites[SKIP_OTHER_STRAND].line == 11


def test_strict_names_the_earliest_broken_model(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        *GOOD,
        "c src mRNA 401 500 . + . ID=t2",
        "c src exon 401 500 . + . Parent=t2",
        "c src exon 451 480 . + . Parent=t2",  # line 10: overlapping exons
        "c src exon 601 700 . + . Parent=missing",  # line 11: orphan
    )
    assert load_annotation(path).broken_models() == {"orphan Parent": 1, "overlapping exons": 1}
    with pytest.raises(GffFormatError) as info:
        load_annotation(path, strict=True)
    message = str(info.value)
    assert message.startswith(f"{path}:10: exon 451-480 overlaps exon 401-500 (line 9)")
    assert "--strict" in message and "\n" not in message


def test_unsupported_types_are_never_strict_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, *GOOD, "c src repeat_region 400 500 . + . ID=r", "c src miRNA 600 620 . + . ID=m")
    annotation = load_annotation(path, strict=True)
    assert annotation.skipped == {"unsupported type repeat_region": 1, "unsupported type miRNA": 1}
    assert not set(annotation.skipped) & BROKEN_MODEL_REASONS


def test_tair_rows_protein_parents_te_transcripts_and_pseudogenic_exons(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        *GOOD[:2],
        "c TAIR10 protein 1 300 . + . ID=good.1-Protein;Derives_from=good.1",
        *(row.replace("Parent=good.1", "Parent=good.1,good.1-Protein") if " CDS " in row else row
          for row in GOOD[2:]),
        "c TAIR10 transposable_element_gene 401 600 . - . ID=te",
        "c TAIR10 mRNA_TE_gene 401 600 . - . ID=te.1;Parent=te",
        "c TAIR10 exon 401 600 . - . Parent=te.1",
        "c TAIR10 pseudogene 701 900 . + . ID=ps",
        "c TAIR10 pseudogenic_transcript 701 900 . + . ID=ps.1;Parent=ps",
        "c TAIR10 pseudogenic_exon 701 750 . + . Parent=ps.1",
        "c TAIR10 pseudogenic_exon 801 900 . + . Parent=ps.1",
    )
    annotation = load_annotation(path, {"c": 1000}, strict=True)
    by_id = {t.transcript_id: t for t in annotation.transcripts["c"]}
    assert by_id["good.1"].cds == (0, 300)  # the link to the protein row is not a transcript
    assert by_id["te.1"].biotype == "transposable_element"
    assert by_id["ps.1"].biotype == "pseudogene" and by_id["ps.1"].exons == ((700, 750), (800, 900))
    assert annotation.skipped == {"unsupported type protein": 1}


# -- file-level defects (what bake asks for with require_models) -----------------------------


def test_every_seqid_missing_from_the_fasta_is_one_error(tmp_path: Path) -> None:
    path = _write(tmp_path, *GOOD)
    assert load_annotation(path, {"chr1": 1000}).skipped == {"seqid missing from FASTA": 1}
    with pytest.raises(GffFormatError, match=rf"^{path}:2: none of the gene models' 1 seqids \(c\) is in "
                                             r"the FASTA \(chr1\); use the same sequence names"):
        load_annotation(path, {"chr1": 1000}, require_models=True)


def test_no_usable_gene_model_is_one_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "c src repeat_region 1 100 . + . ID=r", "c src intron 5 50 . + . ID=i")
    assert load_annotation(path).n_transcripts == 0
    with pytest.raises(GffFormatError, match=rf"^{path}:2: no usable gene model in 2 feature rows"):
        load_annotation(path, require_models=True)


@pytest.mark.parametrize(
    ("data", "line", "phrase"),
    [
        (b"##gff-version 3\nc\tsrc\tgene\t1\t9\t.\t+\t.\tID=g\xe9ne\n", 2, "not UTF-8 text (byte 0xe9"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", 1, "not UTF-8 text"),
        (b"##gff-version 3\nBAM\x01\x00\x00\n", 2, "NUL byte: this is binary data"),
        ("##gff-version 3\n".encode("utf-16"), 1, "UTF-16 text"),
    ],
    ids=["latin1", "png", "nul", "utf16"],
)
def test_binary_and_wrongly_encoded_files_are_one_line_errors(tmp_path: Path, data, line, phrase) -> None:
    path = tmp_path / "bad.gff3"
    path.write_bytes(data)
    with pytest.raises(GffFormatError) as info:
        load_annotation(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and phrase in str(info.value)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    plain = _write(tmp_path, *GOOD)
    bom = tmp_path / "bom.gff3"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert load_annotation(bom) == load_annotation(plain)


# -- the real annotations ---------------------------------------------------------------------

# Broken models per shared species (the published files, as they are): athal and celegans lack
# a few transcript/gene rows (segments cut from whole chromosomes); the others have none.
EXPECTED_BROKEN = {
    "athal_snap_segments": {SKIP_ORPHAN: 3},
    "celegans_snap_segments": {SKIP_ORPHAN: 10},
}


@pytest.mark.shared_data
def test_every_shared_annotation_loads_with_default_rules(shared_data: Path) -> None:
    """What bake does first for each species folder: no species may abort."""
    from genoforge.genes.fasta import fasta_lengths

    folders = sorted(p for p in shared_data.iterdir() if p.is_dir())
    assert {"athal_snap_segments", "celegans_snap_segments"} <= {p.name for p in folders}
    for folder in folders:
        annotation = load_annotation(
            folder / "annotation.gff3.gz", fasta_lengths(folder / "genome.fa.gz"), require_models=True
        )
        assert annotation.n_transcripts > 0, folder.name
        assert annotation.broken_models() == EXPECTED_BROKEN.get(folder.name, {}), folder.name
        if folder.name in EXPECTED_BROKEN:
            with pytest.raises(GffFormatError, match=r"annotation\.gff3\.gz:\d+: orphan Parent"):
                load_annotation(folder / "annotation.gff3.gz", strict=True)
