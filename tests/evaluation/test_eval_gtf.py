"""GTF annotations (AUGUSTUS, Ensembl, gffread/gffcompare style) read like their GFF3 twins.

The hand-written pair below holds the same gene models twice; what each locus exercises:

- A (chr1 +, Ensembl style): gene and transcript rows, exon rows, two CDS rows that EXCLUDE the
  stop codon plus a separate stop_codon row, start_codon and five_prime_utr rows, repeated keys
  (``tag``), unquoted values (``exon_number 1``) and a ``;`` inside a quoted value.
- B (chr1 -, AUGUSTUS style): bare ``gB`` / ``gB.t1`` attributes on the gene and transcript
  rows, no exon rows, an intron row, and a stop codon split over the intron (two stop_codon
  rows, one base before it and two after).
- C (chr2 +, gffread -T style): two isoforms with neither transcript nor gene rows (made up from
  their parts), CDS rows that already include the stop codon, phase 1 on a third CDS row.
- D (chr2 -, Ensembl style): a noncoding transcript whose biotype is an attribute (lncRNA).

The GFF3 twin writes every CDS with its stop codon, genoforge's convention.
"""

from __future__ import annotations

import dataclasses
import gzip
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.errors import GffFormatError
from genoforge.evaluation import LEVELS, evaluate
from genoforge.genes.annotation import load_annotation
from genoforge.genes.gtf import sniff_format

runner = CliRunner()

GTF_TEXT = """\
# hand-written GTF: loci A-D of the module docstring
chr1\tensembl\tgene\t101\t400\t.\t+\t.\tgene_id "A"; gene_biotype "protein_coding";
chr1\tensembl\ttranscript\t101\t400\t.\t+\t.\tgene_id "A"; transcript_id "A.1"; tag "basic"; tag "CCDS"; note "a; b";
chr1\tensembl\texon\t101\t200\t.\t+\t.\tgene_id "A"; transcript_id "A.1"; exon_number 1;
chr1\tensembl\tfive_prime_utr\t101\t130\t.\t+\t.\tgene_id "A"; transcript_id "A.1";
chr1\tensembl\tCDS\t131\t200\t.\t+\t0\tgene_id "A"; transcript_id "A.1"; exon_number 1;
chr1\tensembl\tstart_codon\t131\t133\t.\t+\t0\tgene_id "A"; transcript_id "A.1";
chr1\tensembl\texon\t301\t400\t.\t+\t.\tgene_id "A"; transcript_id "A.1"; exon_number 2;
chr1\tensembl\tCDS\t301\t368\t.\t+\t2\tgene_id "A"; transcript_id "A.1"; exon_number 2;
chr1\tensembl\tstop_codon\t369\t371\t.\t+\t0\tgene_id "A"; transcript_id "A.1"
chr1\tAUGUSTUS\tgene\t1099\t1270\t0.9\t-\t.\tgB
chr1\tAUGUSTUS\ttranscript\t1099\t1270\t0.9\t-\t.\tgB.t1
chr1\tAUGUSTUS\tstop_codon\t1099\t1100\t.\t-\t2\ttranscript_id "gB.t1"; gene_id "gB";
chr1\tAUGUSTUS\tintron\t1101\t1200\t1\t-\t.\ttranscript_id "gB.t1"; gene_id "gB";
chr1\tAUGUSTUS\tstop_codon\t1201\t1201\t.\t-\t0\ttranscript_id "gB.t1"; gene_id "gB";
chr1\tAUGUSTUS\tCDS\t1202\t1270\t0.9\t-\t0\ttranscript_id "gB.t1"; gene_id "gB";
chr1\tAUGUSTUS\tstart_codon\t1268\t1270\t.\t-\t0\ttranscript_id "gB.t1"; gene_id "gB";
chr2\tgffread\texon\t101\t200\t.\t+\t.\ttranscript_id "C.1"; gene_id "C";
chr2\tgffread\texon\t401\t500\t.\t+\t.\ttranscript_id "C.1"; gene_id "C";
chr2\tgffread\tCDS\t111\t200\t.\t+\t0\ttranscript_id "C.1"; gene_id "C";
chr2\tgffread\tCDS\t401\t450\t.\t+\t0\ttranscript_id "C.1"; gene_id "C";
chr2\tgffread\texon\t101\t200\t.\t+\t.\ttranscript_id "C.2"; gene_id "C";
chr2\tgffread\texon\t301\t350\t.\t+\t.\ttranscript_id "C.2"; gene_id "C";
chr2\tgffread\texon\t401\t500\t.\t+\t.\ttranscript_id "C.2"; gene_id "C";
chr2\tgffread\tCDS\t111\t200\t.\t+\t0\ttranscript_id "C.2"; gene_id "C";
chr2\tgffread\tCDS\t301\t350\t.\t+\t0\ttranscript_id "C.2"; gene_id "C";
chr2\tgffread\tCDS\t401\t450\t.\t+\t1\ttranscript_id "C.2"; gene_id "C";
chr2\tensembl\tgene\t1001\t1300\t.\t-\t.\tgene_id "D"; gene_biotype "lncRNA";
chr2\tensembl\ttranscript\t1001\t1300\t.\t-\t.\tgene_id "D"; transcript_id "D.1"; transcript_biotype "lncRNA";
chr2\tensembl\texon\t1001\t1100\t.\t-\t.\tgene_id "D"; transcript_id "D.1";
chr2\tensembl\texon\t1201\t1300\t.\t-\t.\tgene_id "D"; transcript_id "D.1";
"""

GFF3_TEXT = """\
##gff-version 3
chr1\tref\tgene\t101\t400\t.\t+\t.\tID=A
chr1\tref\tmRNA\t101\t400\t.\t+\t.\tID=A.1;Parent=A
chr1\tref\texon\t101\t200\t.\t+\t.\tParent=A.1
chr1\tref\texon\t301\t400\t.\t+\t.\tParent=A.1
chr1\tref\tCDS\t131\t200\t.\t+\t0\tParent=A.1
chr1\tref\tCDS\t301\t371\t.\t+\t2\tParent=A.1
chr1\tref\tgene\t1099\t1270\t.\t-\t.\tID=gB
chr1\tref\tmRNA\t1099\t1270\t.\t-\t.\tID=gB.t1;Parent=gB
chr1\tref\tCDS\t1099\t1100\t.\t-\t2\tParent=gB.t1
chr1\tref\tCDS\t1201\t1270\t.\t-\t0\tParent=gB.t1
chr2\tref\tgene\t101\t500\t.\t+\t.\tID=C
chr2\tref\tmRNA\t101\t500\t.\t+\t.\tID=C.1;Parent=C
chr2\tref\texon\t101\t200\t.\t+\t.\tParent=C.1
chr2\tref\texon\t401\t500\t.\t+\t.\tParent=C.1
chr2\tref\tCDS\t111\t200\t.\t+\t0\tParent=C.1
chr2\tref\tCDS\t401\t450\t.\t+\t0\tParent=C.1
chr2\tref\tmRNA\t101\t500\t.\t+\t.\tID=C.2;Parent=C
chr2\tref\texon\t101\t200\t.\t+\t.\tParent=C.2
chr2\tref\texon\t301\t350\t.\t+\t.\tParent=C.2
chr2\tref\texon\t401\t500\t.\t+\t.\tParent=C.2
chr2\tref\tCDS\t111\t200\t.\t+\t0\tParent=C.2
chr2\tref\tCDS\t301\t350\t.\t+\t0\tParent=C.2
chr2\tref\tCDS\t401\t450\t.\t+\t1\tParent=C.2
chr2\tref\tgene\t1001\t1300\t.\t-\t.\tID=D
chr2\tref\tlnc_RNA\t1001\t1300\t.\t-\t.\tID=D.1;Parent=D
chr2\tref\texon\t1001\t1100\t.\t-\t.\tParent=D.1
chr2\tref\texon\t1201\t1300\t.\t-\t.\tParent=D.1
"""


def _models(path: Path, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    """Transcripts per seqid, line numbers dropped (the two files differ only there)."""
    annotation = load_annotation(path, **kwargs)
    return {
        seqid: [dataclasses.replace(t, line=0) for t in items]
        for seqid, items in annotation.transcripts.items()
    }


@pytest.fixture
def twins(tmp_path: Path) -> tuple[Path, Path]:
    gtf = tmp_path / "models.gtf"
    gtf.write_text(GTF_TEXT)
    gff3 = tmp_path / "models.gff3"
    gff3.write_text(GFF3_TEXT)
    return gtf, gff3


def test_format_is_told_by_content_not_by_name(twins: tuple[Path, Path], tmp_path: Path) -> None:
    gtf, gff3 = twins
    assert sniff_format(gtf) == "gtf" and sniff_format(gff3) == "gff3"
    disguised = tmp_path / "annotation.gff3.gz"  # what a bake species folder may hold
    disguised.write_bytes(gzip.compress(GTF_TEXT.encode()))
    assert sniff_format(disguised) == "gtf"
    # bake's call: every model usable, none skipped as broken
    lengths = {"chr1": 2000, "chr2": 2000}
    annotation = load_annotation(disguised, lengths, strict=True, require_models=True)
    assert annotation.n_transcripts == 5 and annotation.n_genes == 4
    assert annotation.broken_models() == {}
    assert not any(reason.startswith("unsupported type") for reason in annotation.skipped)


def test_gtf_models_equal_their_gff3_twins(twins: tuple[Path, Path]) -> None:
    gtf, gff3 = twins
    from_gtf, from_gff3 = _models(gtf), _models(gff3)
    assert from_gtf == from_gff3
    a, b = from_gtf["chr1"]
    # the stop codon is merged into the CDS: 0-based half-open spans include it
    assert (a.transcript_id, a.gene_id, a.cds) == ("A.1", "A", (130, 371))
    assert (b.transcript_id, b.gene_id, b.cds, b.cds_phase) == ("gB.t1", "gB", (1098, 1270), 0)
    assert b.cds_pieces() == [(1098, 1100), (1200, 1270)]
    assert [t.gene_id for t in from_gtf["chr2"]] == ["C", "C", "D"]
    assert from_gtf["chr2"][2].biotype == "lncRNA" and from_gtf["chr2"][2].cds is None


def test_eval_scores_match_for_gtf_and_gff3(twins: tuple[Path, Path], tmp_path: Path) -> None:
    gtf, gff3 = twins
    # A prediction that puts A's stop codon one codon later and misses C.2.
    wrong = GTF_TEXT.replace("CDS\t301\t368", "CDS\t301\t371").replace(
        "stop_codon\t369\t371", "stop_codon\t372\t374"
    )
    wrong = "\n".join(line for line in wrong.splitlines() if '"C.2"' not in line) + "\n"
    wrong_gtf = tmp_path / "wrong.gtf"
    wrong_gtf.write_text(wrong)
    for reference in (gff3, gtf):
        for prediction in (gtf, gff3):
            scores = evaluate(reference, prediction).levels
            assert all(scores[name].f1 == 1.0 for name in LEVELS), (reference, prediction)
        scores = evaluate(reference, wrong_gtf).levels
        assert (scores["transcript"].n_prediction, scores["transcript"].tp_reference) == (3, 2)
        assert scores["cds_exon"].tp_prediction == 5  # of 6: all but A's last piece
        assert 0 < scores["cds_nucleotide"].f1 < 1
    mirrored = {n: s.to_dict() for n, s in evaluate(gff3, wrong_gtf).levels.items()}
    assert mirrored == {n: s.to_dict() for n, s in evaluate(gtf, wrong_gtf).levels.items()}
    result = runner.invoke(app, ["eval", str(gff3), str(gtf)])
    assert result.exit_code == 0, result.output
    assert "100.00%" in result.output


def test_malformed_gtf_attribute_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.gtf"
    path.write_text(GTF_TEXT.replace("exon_number 1;\nchr1\tensembl\tfive", "exon_number 1 2;\nchr1\tensembl\tfive"))
    with pytest.raises(GffFormatError, match=r"bad\.gtf:4: GTF attribute"):
        load_annotation(path)


def _augustus(args: list[str], fasta: Path) -> str:
    run = subprocess.run(
        ["augustus", "--species=saccharomyces_cerevisiae_S288C", *args, str(fasta)],
        capture_output=True, text=True, timeout=60,
    )
    if run.returncode != 0 or "CDS" not in run.stdout:
        pytest.skip(f"augustus could not run its yeast model: {run.stderr.strip()[:200]}")
    return run.stdout


@pytest.mark.skipif(shutil.which("augustus") is None, reason="augustus is not installed")
def test_real_augustus_gtf_scores_like_its_gff3(tmp_path: Path) -> None:
    example = resources.files("genoforge.data") / "example"
    genome = Path(str(example / "yeast_chrI.fa.gz"))
    reference = Path(str(example / "yeast_chrI.gff3.gz"))
    with gzip.open(genome, "rt") as handle:
        header = handle.readline()
        sequence = "".join(line.strip() for line in handle)
    head = tmp_path / "head.fa"  # the first 40 kb of chrI: about 10 genes, 1 s of AUGUSTUS
    head.write_text(f"{header}{sequence[:40_000]}\n")
    gtf = tmp_path / "augustus.gtf"
    gtf.write_text(_augustus([], head))
    gff3 = tmp_path / "augustus.gff3"
    gff3.write_text(_augustus(["--gff3=on"], head))
    assert sniff_format(gtf) == "gtf" and sniff_format(gff3) == "gff3"
    assert _models(gtf) == _models(gff3)
    from_gtf = evaluate(reference, gtf, genome)
    from_gff3 = evaluate(reference, gff3, genome)
    assert from_gtf.to_dict()["levels"] == from_gff3.to_dict()["levels"]
    assert from_gtf.levels["transcript"].tp_prediction > 0
    # AUGUSTUS's CDS rows exclude the stop codon; merged from stop_codon rows, none is missing
    assert from_gtf.prediction.stops is not None and from_gtf.prediction.stops.extended == 0
