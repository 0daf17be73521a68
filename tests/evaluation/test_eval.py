"""`genoforge eval` on tiny hand-made inputs: each level's definition, stop codons, the CLI.

The real-genome checks (perturbed copies of the shared annotations, agreement with `gt eval`)
are in test_eval_real.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.evaluation import LEVELS, compare_transcripts, evaluate
from genoforge.evaluation.metrics import LevelScore
from genoforge.evaluation.stops import with_stop_codon
from genoforge.genes.gene_models import Transcript

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def tx(
    pieces: list[tuple[int, int]],
    strand: str = "+",
    gene: str = "g1",
    name: str | None = None,
    seqid: str = "chr1",
    exons: list[tuple[int, int]] | None = None,
    phase: int = 0,
) -> Transcript:
    """A coding transcript whose CDS pieces are ``pieces`` (exons default to the pieces)."""
    exons = exons or pieces
    return Transcript(
        seqid=seqid,
        strand=strand,
        biotype="protein_coding",
        gene_id=gene,
        transcript_id=name or f"{gene}.t",
        exons=tuple(exons),
        cds=(pieces[0][0], pieces[-1][1]),
        cds_phase=phase,
    )


# --- levels -------------------------------------------------------------------------------------


def test_identical_annotations_score_100_percent_everywhere() -> None:
    ref = [tx([(0, 30), (50, 80)]), tx([(200, 260)], strand="-", gene="g2")]
    scores = compare_transcripts(ref, list(ref))
    for name in LEVELS:
        assert scores[name].sensitivity == 1.0 and scores[name].precision == 1.0
    assert scores["cds_nucleotide"].n_reference == 30 + 30 + 60


def test_nucleotides_are_strand_aware() -> None:
    ref = [tx([(100, 160)], strand="+")]
    pred = [tx([(100, 160)], strand="-")]
    score = compare_transcripts(ref, pred)["cds_nucleotide"]
    assert (score.n_reference, score.n_prediction, score.tp_reference) == (60, 60, 0)


def test_nucleotides_merge_isoforms_and_count_partial_overlap() -> None:
    ref = [tx([(0, 90)], name="a"), tx([(30, 120)], name="b")]  # union: 0..120
    pred = [tx([(60, 150)], gene="p")]
    score = compare_transcripts(ref, pred)["cds_nucleotide"]
    assert (score.n_reference, score.n_prediction, score.tp_reference) == (120, 90, 60)
    assert score.sensitivity == pytest.approx(0.5)
    assert score.precision == pytest.approx(60 / 90)


def test_exons_need_both_ends_exact_and_shared_pieces_count_once() -> None:
    ref = [tx([(0, 30), (50, 80)], name="a"), tx([(0, 30), (60, 80)], name="b")]  # 3 pieces
    pred = [tx([(0, 30), (51, 80)], gene="p")]  # (51, 80) is off by one
    score = compare_transcripts(ref, pred)["cds_exon"]
    assert (score.n_reference, score.n_prediction, score.tp_reference) == (3, 2, 1)


def test_transcript_needs_the_whole_chain_and_ignores_utrs() -> None:
    with_utr = tx([(10, 30), (50, 80)], exons=[(0, 30), (50, 95)], name="utr")
    ref = [with_utr, tx([(200, 230), (250, 280)], gene="g2")]
    pred = [
        tx([(10, 30), (50, 80)], gene="p1"),  # same CDS chain, no UTRs: a match
        tx([(200, 230)], gene="p2"),  # first piece only: no match
    ]
    score = compare_transcripts(ref, pred)["transcript"]
    assert (score.n_reference, score.n_prediction, score.tp_reference) == (2, 2, 1)


def test_gene_matches_through_any_transcript_with_separate_numerators() -> None:
    ref = [
        tx([(0, 30)], gene="A", name="A.1"),
        tx([(0, 60)], gene="A", name="A.2"),
        tx([(100, 130)], gene="B"),
        tx([(300, 330)], gene="C"),
    ]
    pred = [
        tx([(0, 60)], gene="P", name="P.1"),  # matches A through A.2
        tx([(100, 130)], gene="P", name="P.2"),  # ... and B: one predicted gene finds two
        tx([(500, 530)], gene="Q"),  # false gene
    ]
    score = compare_transcripts(ref, pred)["gene"]
    assert (score.n_reference, score.n_prediction) == (3, 2)
    assert (score.tp_reference, score.tp_prediction) == (2, 1)
    assert score.sensitivity == pytest.approx(2 / 3)
    assert score.precision == pytest.approx(1 / 2)
    assert score.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))


def test_gene_on_other_seqid_or_strand_does_not_match() -> None:
    ref = [tx([(0, 30)], gene="A")]
    pred = [tx([(0, 30)], gene="A", seqid="chr2"), tx([(0, 30)], gene="B", strand="-")]
    scores = compare_transcripts(ref, pred)
    assert scores["gene"].tp_reference == 0 and scores["gene"].n_prediction == 2
    assert scores["cds_nucleotide"].n_prediction == 60


def test_ratios_with_empty_sides() -> None:
    assert LevelScore(0, 5, 0, 0).sensitivity is None
    assert LevelScore(0, 5, 0, 0).f1 is None
    assert LevelScore(5, 0, 0, 0).precision is None
    assert LevelScore(4, 4, 0, 0).f1 == 0.0
    scores = compare_transcripts([tx([(0, 30)])], [])
    assert scores["gene"].sensitivity == 0.0 and scores["gene"].precision is None


# --- stop codons ---------------------------------------------------------------------------------

# Forward: ATG AAA | intron gt..ag | CCC TAA, then spacer. Positions: exon1 10..16, exon2 30..36.
_PLUS_SEQ = "N" * 10 + "ATGAAA" + "GTAAGTTTTTTCAG" + "CCCTAAGGG" + "N" * 10


def _revcomp(seq: str) -> str:
    return seq[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def test_stop_added_downstream_on_plus_strand() -> None:
    seq = _PLUS_SEQ
    assert seq[30:36] == "CCCTAA"
    without = tx([(10, 16), (30, 33)])
    extended = with_stop_codon(without, seq)
    assert extended.cds == (10, 36)
    assert extended.exons == ((10, 16), (30, 36))  # the CDS-only exon grows with the stop
    assert with_stop_codon(extended, seq) is extended  # already has its stop: unchanged


def test_stop_added_on_minus_strand() -> None:
    seq = _revcomp(_PLUS_SEQ)
    n = len(seq)
    # The same gene mirrored: exon2 (stop side) is now the lowest coordinate.
    pieces = [(n - 33, n - 30), (n - 16, n - 10)]
    extended = with_stop_codon(tx(pieces, strand="-"), seq)
    assert extended.cds == (n - 36, n - 10)
    assert extended.exons[0] == (n - 36, n - 30)


def test_stop_split_by_an_intron_is_read_along_the_exons() -> None:
    # Exon 1 is ATG AAA CCC T, exon 2 AA GGG: the CDS stops one base before exon 1 ends, so its
    # stop codon T|AA is split by the intron.
    seq = "ATGAAACCCT" + "GTAAGTTTTTTCAG" + "AAGGG"
    exon1, exon2 = (0, 10), (24, 29)
    assert seq[9] + seq[24:26] == "TAA"
    coding = tx([(0, 9)], exons=[exon1, exon2])
    extended = with_stop_codon(coding, seq)
    assert extended.cds == (0, 26)
    assert extended.cds_pieces() == [(0, 10), (24, 26)]


def test_stop_not_added_when_partial_out_of_frame_or_ambiguous() -> None:
    seq = "ATGAAACCCTAAGGG"
    assert with_stop_codon(tx([(0, 8)]), seq).cds == (0, 8)  # 8 bases: not on a codon boundary
    assert with_stop_codon(tx([(1, 9)], phase=2), seq).cds == (1, 12)  # phase 2: 8-2 = 6, in frame
    assert with_stop_codon(tx([(0, 9)]), "ATGAAACCCTNAGGG").cds == (0, 9)  # N is never a stop
    assert with_stop_codon(tx([(0, 9)]), "ATGAAACCCTA").cds == (0, 9)  # runs off the sequence


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("##gff-version 3\n" + "".join("\t".join(r.split()) + "\n" for r in rows))
    return path


def test_evaluate_with_genome_equates_cds_with_and_without_stop(tmp_path: Path) -> None:
    genome = tmp_path / "genome.fa"
    genome.write_text(">chr1\n" + _PLUS_SEQ + "\n")
    ref = _write(
        tmp_path / "ref.gff3",
        [
            "chr1 t gene 11 36 . + . ID=g1",
            "chr1 t mRNA 11 36 . + . ID=m1;Parent=g1",
            "chr1 t CDS 11 16 . + 0 Parent=m1",
            "chr1 t CDS 31 36 . + 0 Parent=m1",
        ],
    )
    pred = _write(
        tmp_path / "pred.gff3",
        [
            "chr1 t gene 11 33 . + . ID=p1",
            "chr1 t mRNA 11 33 . + . ID=pm1;Parent=p1",
            "chr1 t CDS 11 16 . + 0 Parent=pm1",
            "chr1 t CDS 31 33 . + 0 Parent=pm1",
        ],
    )
    plain = evaluate(ref, pred)
    assert plain.levels["transcript"].tp_reference == 0
    assert plain.levels["cds_exon"].tp_reference == 1
    normalised = evaluate(ref, pred, genome)
    for name in LEVELS:
        assert normalised.levels[name].f1 == 1.0, name
    assert normalised.reference.stops.extended == 0
    assert normalised.prediction.stops.extended == 1


# --- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    ref = _write(
        tmp_path / "ref.gff3",
        [
            "chr1 t gene 1 90 . + . ID=g1",
            "chr1 t mRNA 1 90 . + . ID=m1;Parent=g1",
            "chr1 t CDS 1 30 . + 0 Parent=m1",
            "chr1 t CDS 61 90 . + 0 Parent=m1",
            "chr1 t gene 201 260 . - . ID=g2",
            "chr1 t mRNA 201 260 . - . ID=m2;Parent=g2",
            "chr1 t CDS 201 260 . - 0 Parent=m2",
        ],
    )
    pred = _write(
        tmp_path / "pred.gff3",
        [
            "chr1 t gene 1 90 . + . ID=p1",
            "chr1 t mRNA 1 90 . + . ID=pm1;Parent=p1",
            "chr1 t CDS 1 30 . + 0 Parent=pm1",
            "chr1 t CDS 61 90 . + 0 Parent=pm1",
        ],
    )
    return ref, pred


def test_cli_table(pair: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["eval", str(pair[0]), str(pair[1])])
    assert result.exit_code == 0, result.output
    assert "sensitivity" in result.output and "CDS exon" in result.output
    assert "50.00%" in result.output  # gene and transcript sensitivity: 1 of 2


def test_cli_json_schema(pair: tuple[Path, Path]) -> None:
    result = runner.invoke(app, ["eval", str(pair[0]), str(pair[1]), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1
    assert doc["genome"] is None and doc["stop_codons_normalised"] is False
    assert set(doc["levels"]) == set(LEVELS)
    for level in doc["levels"].values():
        assert set(level) == {
            "n_reference",
            "n_prediction",
            "tp_reference",
            "tp_prediction",
            "false_negatives",
            "false_positives",
            "sensitivity",
            "precision",
            "f1",
        }
    assert doc["levels"]["gene"]["n_reference"] == 2
    assert doc["levels"]["gene"]["sensitivity"] == 0.5
    assert doc["levels"]["cds_nucleotide"] == {
        "n_reference": 120,
        "n_prediction": 60,
        "tp_reference": 60,
        "tp_prediction": 60,
        "false_negatives": 60,
        "false_positives": 0,
        "sensitivity": 0.5,
        "precision": 1.0,
        "f1": pytest.approx(2 / 3),
    }
    for side in ("reference", "prediction"):
        assert {"path", "genes", "coding_transcripts", "skipped_by_loader"} <= set(doc[side])


def test_cli_genome_flag_normalises_and_reports(pair: tuple[Path, Path], tmp_path: Path) -> None:
    genome = tmp_path / "g.fa"
    genome.write_text(">chr1\n" + "A" * 300 + "\n")  # no stop anywhere: nothing is extended
    result = runner.invoke(app, ["eval", *map(str, pair), "--genome", str(genome), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["stop_codons_normalised"] is True and doc["genome"] == str(genome)
    assert doc["reference"]["stop_codons_added"] == 0
    assert doc["levels"]["gene"]["tp_reference"] == 1
    table = runner.invoke(app, ["eval", *map(str, pair), "--genome", str(genome)])
    assert "stop codons added: 0 reference, 0 prediction" in table.output


def test_cli_malformed_gff_is_one_line_exit_1(pair: tuple[Path, Path]) -> None:
    bad = DATA / "cds_end_before_start.gff3"
    result = runner.invoke(app, ["eval", str(pair[0]), str(bad)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error:")
    assert "cds_end_before_start.gff3:4:" in lines[0]
    assert "Traceback" not in result.output


def test_cli_missing_file_is_exit_1(pair: tuple[Path, Path], tmp_path: Path) -> None:
    result = runner.invoke(app, ["eval", str(pair[0]), str(tmp_path / "absent.gff3")])
    assert result.exit_code == 1
    assert "absent.gff3" in result.stderr and "not found" in result.stderr


def test_cli_malformed_genome_is_exit_1(pair: tuple[Path, Path], tmp_path: Path) -> None:
    genome = tmp_path / "g.fa"
    genome.write_text("ACGT\n")
    result = runner.invoke(app, ["eval", *map(str, pair), "--genome", str(genome)])
    assert result.exit_code == 1
    assert "g.fa:1:" in result.stderr


def test_cli_usage_error_is_exit_2(pair: tuple[Path, Path]) -> None:
    assert runner.invoke(app, ["eval", str(pair[0])]).exit_code == 2
    assert runner.invoke(app, ["eval", *map(str, pair), "--no-such-flag"]).exit_code == 2


def test_cli_help_has_examples() -> None:
    result = runner.invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    assert "Examples" in result.output and "--genome" in result.output


def test_dropped_predictions_and_foreign_seqids_are_warned_about(
    pair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pred = _write(
        tmp_path / "pred_messy.gff3",
        [
            "chr1 t gene 1 90 . + . ID=p1",
            "chr1 t mRNA 1 90 . + . ID=pm1;Parent=p1",
            "chr1 t CDS 1 30 . + 0 Parent=pm1",
            "chr1 t CDS 61 90 . + 2 Parent=pm1",  # phase should be 0: the transcript is dropped
            "chrX t gene 1 60 . + . ID=p2",
            "chrX t mRNA 1 60 . + . ID=pm2;Parent=p2",
            "chrX t CDS 1 60 . + 0 Parent=pm2",
        ],
    )
    result = evaluate(pair[0], pred)
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert "1 transcripts left out of the comparison (1 phase mismatch)" in err
    assert "1 predicted seqids have no reference transcript (chrX)" in err
    assert result.prediction.skipped["phase mismatch"] == 1
    assert result.prediction.coding_transcripts == 1
    nucleotides = result.levels["cds_nucleotide"]
    assert (nucleotides.n_prediction, nucleotides.tp_prediction) == (60, 0)  # chrX: all FP


def test_prediction_without_features_scores_zero_not_an_error(pair: tuple[Path, Path]) -> None:
    empty = pair[1].with_name("empty.gff3")
    empty.write_text("##gff-version 3\n# no gene found\n")
    result = runner.invoke(app, ["eval", str(pair[0]), str(empty), "--json"])
    assert result.exit_code == 0, result.output
    gene = json.loads(result.stdout)["levels"]["gene"]
    assert (gene["n_prediction"], gene["sensitivity"], gene["precision"]) == (0, 0.0, None)
    table = runner.invoke(app, ["eval", str(pair[0]), str(empty)])
    assert table.exit_code == 0 and "0.00%" in table.output and " - " in table.output


def test_compare_transcripts_leaves_out_noncoding_models() -> None:
    trna = Transcript("chr1", "+", "tRNA", "t1", "t1", ((500, 572),), None)
    scores = compare_transcripts([tx([(0, 30)]), trna], [tx([(0, 30)], gene="p")])
    assert scores["gene"] == LevelScore(1, 1, 1, 1)
    assert scores["cds_nucleotide"].n_reference == 30


# --- isoforms -------------------------------------------------------------------------------------


def test_isoforms_count_each_alternative_chain_of_multi_isoform_genes() -> None:
    """Reference gene g1 has three distinct CDS chains (one duplicated in a UTR-only variant),
    g2 one; the prediction writes one of g1's and a wrong second isoform of its own gene."""
    from genoforge.evaluation.metrics import isoform_level

    ref = [
        tx([(0, 30), (50, 80)], name="a"), tx([(0, 30), (60, 80)], name="b"),
        tx([(0, 80)], name="c"), tx([(0, 30), (50, 80)], name="a2", exons=[(0, 30), (50, 95)]),
        tx([(300, 360)], gene="g2"),
    ]
    pred = [tx([(0, 30), (60, 80)], gene="p1", name="x"), tx([(0, 30), (70, 80)], gene="p1", name="y"),
            tx([(300, 360)], gene="p2")]
    score = isoform_level(ref, pred)
    assert (score.n_reference, score.tp_reference) == (3, 1)  # g1's chains; g2 is single
    assert (score.n_prediction, score.tp_prediction) == (2, 1)  # p1's chains; p2 is single
    assert score.sensitivity == pytest.approx(1 / 3) and score.precision == 0.5
    one_each = isoform_level(ref, [tx([(0, 30), (50, 80)], gene="p1")])
    assert one_each.tp_reference == 1 and one_each.n_prediction == 0 and one_each.precision is None


def test_eval_reports_isoforms_in_json_and_table(tmp_path: Path) -> None:
    def gff(path: Path, rows: list[tuple[str, str, int, int]]) -> Path:
        lines = ["##gff-version 3"]
        genes = sorted({g for g, _, _, _ in rows})
        for gene in genes:
            span = [(s, e) for g, _, s, e in rows if g == gene]
            lines.append(f"chr1\tt\tgene\t{min(s for s, _ in span)}\t{max(e for _, e in span)}\t.\t+\t.\tID={gene}")
        for gene, name, start, end in rows:
            lines.append(f"chr1\tt\tmRNA\t{start}\t{end}\t.\t+\t.\tID={name};Parent={gene}")
            lines.append(f"chr1\tt\texon\t{start}\t{end}\t.\t+\t.\tParent={name}")
            lines.append(f"chr1\tt\tCDS\t{start}\t{end}\t.\t+\t0\tParent={name}")
        path.write_text("\n".join(lines) + "\n")
        return path

    ref = gff(tmp_path / "ref.gff3", [("g1", "g1.a", 1, 90), ("g1", "g1.b", 4, 90), ("g2", "g2.a", 201, 260)])
    pred = gff(tmp_path / "pred.gff3", [("p1", "p1.a", 4, 90), ("p2", "p2.a", 201, 260)])
    result = evaluate(ref, pred)
    assert result.to_dict()["isoforms"]["n_reference"] == 2
    assert result.isoforms.tp_reference == 1
    out = runner.invoke(app, ["eval", str(ref), str(pred)])
    assert out.exit_code == 0, out.output
    assert "isoforms: 1 of 2 reference chains of multi-isoform genes found (50.0%)" in " ".join(out.output.split())
