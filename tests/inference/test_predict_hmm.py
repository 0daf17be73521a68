"""`genoforge predict --decoder hmm` end to end on a random debug model (CPU), and the generative
decoder guided by the HMM's parse (``--guide_from hmm``).

A random head decodes to meaningless genes, but the structure decoder guarantees their shape:
every CDS written must be a complete ORF with canonical introns, and the GFF3 must read back;
guided by the parse, the generative decoder writes such gene models too (those its windows hold
whole: a transcript cut by a contig's end is partial). A model directory without the bake's
gene_structure.json is a one-line error naming the fix, for both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STOPS = {"TAA", "TAG", "TGA"}
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def _sequences(fasta: Path) -> dict[str, str]:
    from genoforge.genes.fasta import read_fasta

    return {record.seqid: record.sequence.upper() for record in read_fasta(fasta)}


ANCHORED = ["--decoder", "generative", "--guide_from", "hmm", "--guide_weight", "3", "--window_size", "1200",
            "--overlap", "300"]


@pytest.mark.parametrize("decoder", [["--decoder", "hmm"], ANCHORED], ids=["hmm", "generative-hmm-anchored"])
def test_hmm_decoder_writes_only_complete_orfs(model_and_genome, tmp_path, decoder) -> None:
    from genoforge.genes.annotation import load_annotation

    model, genome = model_and_genome
    out = tmp_path / "pred.gff3"
    result = CliRunner().invoke(app, ["predict", str(model), str(genome), "-o", str(out), *decoder,
                                      "--species", "tiny", "--emission_weight", "1"])
    assert result.exit_code == 0, result.output
    sequences = _sequences(genome)
    annotation = load_annotation(out)
    transcripts = [t for ts in annotation.transcripts.values() for t in ts]
    assert transcripts, "a random head at emission weight 1 should still yield some gene models"
    cut = [t for t in transcripts if t.cds is not None and (t.cds[0] == 0 or t.cds[1] == len(sequences[t.seqid]))]
    complete = [t for t in transcripts if t not in cut]
    assert complete and all(t.cds is not None for t in complete), [(t.exons[0][0], t.exons[-1][1]) for t in complete
                                                                   if t.cds is None]
    for t in complete:
        seq = sequences[t.seqid]
        pieces = [(max(s, t.cds[0]), min(e, t.cds[1])) for s, e in t.exons if max(s, t.cds[0]) < min(e, t.cds[1])]
        orf = "".join(seq[s:e] for s, e in pieces)
        introns = [seq[pieces[i][1] : pieces[i + 1][0]] for i in range(len(pieces) - 1)]
        if t.strand == "-":
            orf = orf.translate(COMPLEMENT)[::-1]
            introns = [i.translate(COMPLEMENT)[::-1] for i in introns]
        codons = [orf[i : i + 3] for i in range(0, len(orf), 3)]
        assert len(orf) % 3 == 0 and codons[0] == "ATG" and codons[-1] in STOPS
        assert not STOPS & set(codons[:-1])
        for intron in introns:
            assert (intron[:2], intron[-2:]) in {("GT", "AG"), ("GC", "AG"), ("AT", "AC")}


@pytest.mark.parametrize("decoder", [["--decoder", "hmm"], ANCHORED], ids=["hmm", "generative-hmm-anchored"])
def test_hmm_decoder_without_gene_structure_is_a_one_line_error(model_and_genome, tmp_path, decoder) -> None:
    model, genome = model_and_genome
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / "gene_structure.json").unlink()
    out = tmp_path / "pred.gff3"
    result = CliRunner().invoke(app, ["predict", str(bare), str(genome), "-o", str(out), *decoder])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "gene_structure.json" in lines[0] and "genoforge bake" in lines[0], result.output
    assert not out.exists()


@pytest.mark.parametrize("beam", ["1", "2"])
def test_anchored_generative_decoder_writes_the_hmm_parse_of_the_contig(model_and_genome, tmp_path, beam) -> None:
    """Guided by the contig's parse, the generative decoder writes the hmm decoder's gene models
    exactly, a gene longer than a window included (pieces of many windows, joined in one frame),
    greedy or with a beam (whose hypotheses are ranked by their agreement with the parse too)."""
    from genoforge.genes.annotation import load_annotation

    model, genome = model_and_genome
    written = {}
    for name, flags in (("hmm", ["--decoder", "hmm"]), ("anchored", [*ANCHORED, "--beam", beam])):
        out = tmp_path / f"{name}.gff3"
        result = CliRunner().invoke(app, ["predict", str(model), str(genome), "-o", str(out), *flags,
                                          "--species", "tiny", "--emission_weight", "1"])
        assert result.exit_code == 0, result.output
        annotation = load_annotation(out)
        written[name] = sorted((t.seqid, t.strand, tuple(t.exons), t.cds) for ts in annotation.transcripts.values()
                               for t in ts if t.cds is not None)
    assert written["hmm"] and written["anchored"] == written["hmm"]
    assert max(t[2][-1][1] - t[2][0][0] for t in written["hmm"]) > 1200  # longer than a window


def test_a_model_baked_before_the_coding_content_decodes_as_before(model_and_genome, tmp_path) -> None:
    """A gene_structure.json written before the coding-content counts existed loads and decodes,
    at the default --content_weight as at 0, and gives what the current file gives with the chain
    off. (What the chain does is tested on planted genes in tests/genes/test_coding_content.py.)"""
    import json

    model, genome = model_and_genome
    old = tmp_path / "old-model"
    shutil.copytree(model, old)
    data = json.loads((old / "gene_structure.json").read_text())
    for entry in data["species"].values():
        del entry["counts"]["coding_context_counts"], entry["counts"]["noncoding_context_counts"]
    (old / "gene_structure.json").write_text(json.dumps(data))

    def rows(model_dir, *flags):
        out = tmp_path / f"{model_dir.name}{'-'.join(flags)}.gff3"
        result = CliRunner().invoke(app, ["predict", str(model_dir), str(genome), "-o", str(out), "--decoder", "hmm",
                                          "--species", "tiny", "--emission_weight", "1", *flags])
        assert result.exit_code == 0, result.output
        return [line for line in out.read_text().splitlines() if not line.startswith("#")]

    old_rows = rows(old)
    assert old_rows and old_rows == rows(old, "--content_weight", "0") == rows(model, "--content_weight", "0")
