"""Target encoding on the toy loci of tests/data/genes.gff3: exact text, clipping, round trips."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from genoforge.errors import ConfigError, TargetParseError
from genoforge.genes.annotation import load_annotation
from genoforge.genes.fasta import fasta_lengths
from genoforge.genes.gene_models import Annotation, piece_phases
from genoforge.genes.target import (
    WindowAnnotation,
    WindowFeature,
    WindowTranscript,
    canonicalize,
    encode_target,
    parse_target_text,
    parse_target_tokens,
    target_text,
    to_gff3_rows,
    window_annotation,
    window_records,
)

DATA = Path(__file__).resolve().parents[1] / "data"

# The worked example of docs/target-format.md: chr1 of genes.gff3, window [1000, 2000).
WORKED_EXAMPLE = (
    "<bos>"
    "transcript\t-\tprotein_coding\t0\t<\n"
    "exon\t0:0\t0:100\n"
    "cds\t0:0\t0:80\t0\n"
    "transcript\t+\tprotein_coding\t1\t.\n"
    "exon\t0:200\t0:350\n"
    "cds\t0:200\t0:350\t0\n"
    "transcript\t+\tlncRNA\t2\t.\n"
    "exon\t0:400\t0:500\n"
    "exon\t0:600\t0:700\n"
    "transcript\t+\tlncRNA\t2\t.\n"
    "exon\t0:400\t0:500\n"
    "exon\t0:750\t0:800\n"
    "transcript\t+\tprotein_coding\t3\t.\n"
    "exon\t0:850\t0:880\n"
    "cds\t0:850\t0:880\t2\n"
    "transcript\t-\ttransposable_element\t4\t.\n"
    "exon\t0:880\t0:990\n"
    "cds\t0:880\t0:990\t0\n"
    "mobile_genetic_element\t+\t0:900\t0:950\t.\n"
    "<eos>"
)


WORKED_EXAMPLE_TOKENS = (
    ["<bos>", "transcript", "\t", "-", "\t", "protein_coding", "\t", "0", "\t", "<", "\n"]
    + ["exon", "\t", "0", ":", "0", "\t", "0", ":", "100", "\n"]
)


@pytest.fixture(scope="module")
def annotation() -> Annotation:
    return load_annotation(DATA / "genes.gff3", fasta_lengths(DATA / "genes.fa"))


def _windows(length: int, size: int, stride: int):
    start = 0
    while True:
        yield start, min(start + size, length)
        if start + size >= length:
            return
        start += stride


def test_worked_example_text(annotation: Annotation) -> None:
    wa = window_annotation(annotation, "chr1", 1000, 2000)
    tokens = encode_target(wa)
    assert target_text(tokens) == WORKED_EXAMPLE
    assert tokens[: len(WORKED_EXAMPLE_TOKENS)] == WORKED_EXAMPLE_TOKENS
    assert parse_target_text(WORKED_EXAMPLE, window_size=1000) == wa
    assert parse_target_tokens(tokens, window_size=1000) == wa


def test_two_token_coordinates_beyond_999(annotation: Annotation) -> None:
    text = target_text(encode_target(window_annotation(annotation, "chr1", 0, 2000)))
    assert "exon\t1:400\t1:500\n" in text  # geneD's shared exon at 1400..1500
    assert "exon\t0:100\t0:200\n" in text


@pytest.mark.parametrize(("size", "stride"), [(150, 70), (500, 250), (1000, 333), (2000, 2000)])
def test_every_window_round_trips_through_text(annotation: Annotation, size: int, stride: int) -> None:
    n_records = 0
    for seqid in ("chr1", "chr2"):
        for start, end in _windows(2000 if seqid == "chr1" else 500, size, stride):
            wa = window_annotation(annotation, seqid, start, end)
            assert canonicalize(wa) == wa
            text = target_text(encode_target(wa))
            assert " " not in text
            assert parse_target_text(text, window_size=end - start) == wa
            n_records += len(wa.records)
    assert n_records > 0


def test_right_edge_clip_of_a_minus_strand_gene(annotation: Annotation) -> None:
    records = window_annotation(annotation, "chr1", 0, 1000).transcripts
    b = next(t for t in records if t.strand == "-")
    assert b.partial == ">"
    assert b.exons == ((800, 900),)  # the second exon (1000..1100) is outside
    # 80 coding bases of the 5' end (high side) are cut: phase (0 - 80) mod 3 = 1
    assert b.cds == (847, 900) and b.cds_phase == 1


def test_left_edge_clip_recomputes_the_phase(annotation: Annotation) -> None:
    wa = window_annotation(annotation, "chr1", 500, 1500)
    a1, a2 = [t for t in wa.transcripts if t.partial == "<"]
    assert a1.exons == a2.exons == ((0, 100),)
    assert a1.cds == a2.cds == (0, 60)
    # the file's phases of the clipped pieces: 2 (A.1, after 151 coding bases) and 1 (A.2, after 50)
    assert {a1.cds_phase, a2.cds_phase} == {2, 1}
    assert a1.gene == a2.gene


def test_clipped_pieces_keep_the_file_phases(annotation: Annotation) -> None:
    """Every CDS piece whose 5' end lies in a window has the same GFF3 phase there as in the file."""
    for seqid, transcripts in annotation.transcripts.items():
        for start, end in _windows(2000, 230, 97):
            records = window_records(annotation, seqid, start, end)
            for record, source in records:
                if not isinstance(record, WindowTranscript) or record.cds is None:
                    continue
                original = source.cds_pieces()
                original_phases = piece_phases(original, source.strand, source.cds_phase)
                clipped = [
                    (max(s, record.cds[0]), min(e, record.cds[1]))
                    for s, e in record.exons
                    if s < record.cds[1] and e > record.cds[0]
                ]
                phases = piece_phases(clipped, record.strand, record.cds_phase)
                for (s, e), phase in zip(original, original_phases):
                    five_prime = s if source.strand == "+" else e
                    inside = start <= five_prime < end if source.strand == "+" else start < e <= end
                    if inside:
                        key = five_prime - start
                        match = [p for (cs, ce), p in zip(clipped, phases)
                                 if (cs if source.strand == "+" else ce) == key]
                        assert match == [phase]


def test_window_inside_an_intron_shows_nothing(annotation: Annotation) -> None:
    assert window_annotation(annotation, "chr1", 420, 480) == WindowAnnotation(())
    assert encode_target(WindowAnnotation(())) == ["<bos>", "<eos>"]


def test_unknown_seqid_and_bad_windows(annotation: Annotation) -> None:
    assert window_annotation(annotation, "nope", 0, 100).records == ()
    with pytest.raises(ConfigError, match="999,999"):
        window_annotation(annotation, "chr1", 0, 1_000_000)
    with pytest.raises(ConfigError):
        window_annotation(annotation, "chr1", 10, 10)


def test_canonicalize_restores_order_and_gene_numbers(annotation: Annotation) -> None:
    wa = window_annotation(annotation, "chr1", 0, 2000)
    rng = random.Random(3)
    for _ in range(20):
        shuffled = list(wa.records)
        rng.shuffle(shuffled)
        relabel = {g: 7 + 2 * g for g in range(10)}
        shuffled = [
            WindowTranscript(r.strand, r.biotype, relabel[r.gene], r.partial, r.exons, r.cds,
                             r.cds_phase) if isinstance(r, WindowTranscript) else r
            for r in shuffled
        ]
        assert canonicalize(WindowAnnotation(tuple(shuffled))) == wa


def test_parser_is_lenient_on_record_order() -> None:
    tokens = encode_target(WindowAnnotation((
        WindowFeature("origin_of_replication", ".", 50, 60, "."),
        WindowTranscript("+", "tRNA", 0, ".", ((1, 5),), None),
    )))
    assert len(parse_target_tokens(tokens).records) == 2


BASE = WORKED_EXAMPLE


@pytest.mark.parametrize(
    ("text", "phrase"),
    [
        (BASE.replace("<bos>", ""), "expected <bos>"),
        (BASE.replace("<eos>", ""), "expected a record"),
        (BASE + "exon", "nothing after <eos>"),
        (BASE.replace("lncRNA", "lincRNA", 1), "expected a transcript biotype"),
        (BASE.replace("0:0\t0:100", "0:100\t0:100"), "exon end in 101.."),
        (BASE.replace("0:600\t0:700", "0:450\t0:700"), "exon start in 501.."),
        (BASE.replace("cds\t0:0\t0:80\t0", "cds\t0:0\t0:180\t0"), "CDS end in 1..100"),
        (BASE.replace("cds\t0:200\t0:350\t0", "cds\t0:200\t0:350\t3"), "a phase (0, 1 or 2)"),
        (BASE.replace("lncRNA\t2", "lncRNA\t5", 1), "gene index at most 2"),
        (BASE.replace("0:900\t0:950", "0:900\t1:950"), "feature end in 901..1000"),
        (BASE.replace("0:850\t0:880", "0:850\t0880"), "the thousands of exon end"),
        (BASE.replace("0\t<\n", "0\t<>>\n"), "a partial mark"),
        (BASE.replace("\t+\tprotein_coding\t1", "\t.\tprotein_coding\t1"), "a strand (+ or -)"),
    ],
    ids=lambda value: value if len(value) < 40 else "text",
)
def test_parse_errors_say_where_and_what(text: str, phrase: str) -> None:
    with pytest.raises(TargetParseError) as info:
        parse_target_text(text, window_size=1000)
    message = str(info.value)
    assert phrase in message
    assert "target token" in message


def test_coordinate_separator_is_required_at_token_level() -> None:
    tokens = list(WORKED_EXAMPLE_TOKENS)
    at = tokens.index(":")
    del tokens[at]
    with pytest.raises(TargetParseError, match=f"target token {at}: expected ':' inside exon start"):
        parse_target_tokens(tokens)


def test_text_errors_name_the_line() -> None:
    text = WORKED_EXAMPLE.replace("exon\t0:750\t0:800", "exon\t0:750\t0:8x0")
    with pytest.raises(TargetParseError, match=r"target text line 12, target token \d+"):
        parse_target_text(text)


def test_cds_must_start_and_end_inside_exons() -> None:
    def tokens(cds_start: int, cds_end: int) -> list[str]:
        return encode_target(WindowAnnotation((
            WindowTranscript("+", "protein_coding", 0, ".", ((10, 20), (30, 40)),
                             (cds_start, cds_end)),
        )))

    assert parse_target_tokens(tokens(10, 40)).records[0].cds == (10, 40)
    assert parse_target_tokens(tokens(19, 31)).records[0].cds == (19, 31)
    with pytest.raises(TargetParseError, match="CDS start inside an exon, got 25"):
        parse_target_tokens(tokens(25, 35))
    with pytest.raises(TargetParseError, match="CDS end inside an exon, got 25"):
        parse_target_tokens(tokens(15, 25))
    with pytest.raises(TargetParseError, match="CDS end inside an exon, got 30"):
        parse_target_tokens(tokens(15, 30))  # the last CDS base (29) would be intronic


def test_gff3_rows_read_back_to_the_same_models(annotation: Annotation, tmp_path: Path) -> None:
    rows: list[str] = []
    for seqid, length in (("chr1", 2000), ("chr2", 500)):
        rows += to_gff3_rows(window_annotation(annotation, seqid, 0, length), seqid, 0)
    path = tmp_path / "out.gff3"
    path.write_text("##gff-version 3\n" + "\n".join(rows) + "\n")
    back = load_annotation(path)
    assert back.skipped == {}
    for seqid in ("chr1", "chr2"):
        key = lambda t: (t.strand, t.biotype, t.exons, t.cds, t.cds_phase)  # noqa: E731
        assert [key(t) for t in back.transcripts[seqid]] == [
            key(t) for t in annotation.transcripts[seqid]
        ]
        groups = lambda ts: sorted(  # noqa: E731
            sorted(t.exons for t in ts if t.gene_id == g) for g in {t.gene_id for t in ts}
        )
        assert groups(back.transcripts[seqid]) == groups(annotation.transcripts[seqid])
        assert [(f.type, f.strand, f.start, f.end) for f in back.features[seqid]] == [
            (f.type, f.strand, f.start, f.end) for f in annotation.features[seqid]
        ]
    ids = [r.split("\t")[8].split(";")[0] for r in rows if "\tID=" in r and "\tCDS\t" not in r]
    assert len(ids) == len(set(ids))


def test_gff3_rows_phases_utrs_and_genome_offset(annotation: Annotation) -> None:
    rows = to_gff3_rows(window_annotation(annotation, "chr1", 500, 1500), "chr1", 500)
    cds = [r.split("\t") for r in rows if "\tCDS\t" in r]
    # B.1 (minus strand) inside this window: 5'-most piece 1001-1080 phase 0, next piece 1
    b_pieces = [(int(c[3]), int(c[4]), c[7]) for c in cds if c[6] == "-"]
    assert b_pieces == [(848, 900, "1"), (1001, 1080, "0")]
    a_pieces = sorted((int(c[3]), int(c[4]), c[7]) for c in cds if c[6] == "+" and int(c[3]) < 600)
    assert a_pieces == [(501, 560, "1"), (501, 560, "2")]
    utr = [r.split("\t") for r in rows if "UTR" in r]
    assert ["three_prime_UTR", "561", "600"] in [u[2:5] for u in utr]
    assert ["five_prime_UTR", "1081", "1100"] in [u[2:5] for u in utr]  # minus strand: 5' is high
    assert any("partial=left" in r for r in rows)


def test_docs_worked_example_is_what_the_code_writes(annotation: Annotation) -> None:
    """docs/target-format.md shows the worked example with TAB as '→'; it must stay true."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "target-format.md").read_text()
    block = doc.split("The target in text form", 1)[1].split("```\n", 2)[1]
    assert block.replace("→", "\t") == WORKED_EXAMPLE + "\n"
    assert "exon→1:400→1:500" in doc
    whole = target_text(encode_target(window_annotation(annotation, "chr1", 0, 2000)))
    gene_b = doc.split("gene B, now whole, is", 1)[1].split("```\n", 2)[1]
    assert gene_b.replace("→", "\t") in whole


def test_identical_isoforms_of_two_genes_order_by_gene_index() -> None:
    """Ties broken so that canonicalize() is idempotent and the identity on window output."""
    from genoforge.genes.gene_models import Transcript

    def tx(gene: str, name: str, exons) -> Transcript:
        return Transcript("c", "+", "protein_coding", gene, name, exons, None)

    # gene "b" appears first (t1); then "a" and "b" each have an identical transcript (t2, t3)
    annotation = Annotation(transcripts={"c": [
        tx("b", "t1", ((10, 20),)),
        tx("a", "t2", ((30, 40),)),
        tx("b", "t3", ((30, 40),)),
        tx("z", "t4", ((50, 60),)),
        tx("y", "t5", ((50, 60),)),
    ]})
    wa = window_annotation(annotation, "c", 0, 100)
    assert [r.gene for r in wa.records] == [0, 0, 1, 2, 3]
    assert canonicalize(wa) == wa
    shuffled = WindowAnnotation(tuple(reversed(wa.records)))
    assert canonicalize(shuffled) == wa
    assert canonicalize(canonicalize(shuffled)) == canonicalize(shuffled)


def test_gff3_rows_pass_gt_gff3validator(annotation: Annotation, tmp_path: Path) -> None:
    import shutil
    import subprocess

    gt = shutil.which("gt")
    if gt is None:
        pytest.skip("genometools (gt) not installed")
    rows = ["##gff-version 3", "##sequence-region chr1 1 2000", "##sequence-region chr2 1 500"]
    for seqid, length in (("chr1", 2000), ("chr2", 500)):
        for start, end in _windows(length, 400, 300):  # overlapping windows, partial models
            wa = window_annotation(annotation, seqid, start, end)
            rows += to_gff3_rows(wa, seqid, start, id_prefix=f"{seqid}.{start}")
    path = tmp_path / "windows.gff3"
    path.write_text("\n".join(rows) + "\n")
    result = subprocess.run([gt, "gff3validator", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "input is valid GFF3" in result.stdout + result.stderr
