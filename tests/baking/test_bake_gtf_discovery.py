"""`genoforge bake` finds a GTF annotation (``.gtf``, ``.gtf.gz``) like a GFF3 one.

The species folder is :func:`tests.helpers.write_tiny_species` with its GFF3 rewritten as GTF 2.2
(same genes, transcripts, exons and CDS rows; gene_id/transcript_id attributes, no gene or
transcript rows, which the GTF reader makes up). Baked from either file, the species gives the
same gene models and byte-identical training and validation shards.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.genes.annotation import load_annotation
from genoforge.genes.discovery import find_species_files

runner = CliRunner()


def _gff3_to_gtf(gff3: str) -> str:
    """The exon and CDS rows of write_tiny_species' GFF3 as GTF rows (frame = phase)."""
    gene_of: dict[str, str] = {}
    rows = ["# tiny species as GTF 2.2: exon and CDS rows only"]
    for line in gff3.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        columns = line.split("\t")
        attributes = dict(pair.split("=", 1) for pair in columns[8].split(";"))
        if columns[2] == "mRNA":
            gene_of[attributes["ID"]] = attributes["Parent"]
        elif columns[2] in ("exon", "CDS"):
            transcript = attributes["Parent"]
            columns[8] = f'gene_id "{gene_of[transcript]}"; transcript_id "{transcript}";'
            rows.append("\t".join(columns))
    return "\n".join(rows) + "\n"


def _gtf_species(folder: Path, file_name: str) -> Path:
    from tests.helpers import write_tiny_species

    write_tiny_species(folder)
    gff3_path = folder / "annotation.gff3"
    gtf = _gff3_to_gtf(gff3_path.read_text()).encode()
    gff3_path.unlink()
    (folder / file_name).write_bytes(gzip.compress(gtf, mtime=0) if file_name.endswith(".gz") else gtf)
    return folder / file_name


def _models(annotation) -> dict:
    """The transcripts per seqid without their file lines."""
    return {
        seqid: [dataclasses.replace(t, line=0) for t in items] for seqid, items in annotation.transcripts.items()
    }


def _bake(raw: Path, output: Path, tokenizer: Path):
    args = ["--raw_dir", str(raw), "--output_dir", str(output), "--tokenizer", str(tokenizer)]
    return runner.invoke(app, ["bake", *args, "--window_size", "5000"])


@pytest.mark.parametrize("file_name", ["annotation.gtf", "annotation.gtf.gz", "Genes.GTF"])
def test_discovery_finds_a_gtf_annotation(tmp_path: Path, file_name: str) -> None:
    path = _gtf_species(tmp_path / "raw" / "tiny", file_name)
    found = find_species_files(tmp_path / "raw" / "tiny")
    assert found.annotation == path
    assert found.fasta == tmp_path / "raw" / "tiny" / "genome.fa"


def test_a_gtf_and_a_gff3_annotation_are_two_annotations(tmp_path: Path) -> None:
    from tests.helpers import write_tiny_species

    from genoforge.errors import InputError

    folder = write_tiny_species(tmp_path / "raw" / "both")
    (folder / "annotation.gtf").write_text(_gff3_to_gtf((folder / "annotation.gff3").read_text()))
    with pytest.raises(InputError, match=r"several .*annotation.* files \(annotation\.gff3, annotation\.gtf\)"):
        find_species_files(folder)


@pytest.mark.parametrize("file_name", ["annotation.gtf", "annotation.gtf.gz"])
def test_bake_of_a_gtf_species_matches_its_gff3_twin(
    tmp_path: Path, baking_tokenizer_dir: Path, file_name: str
) -> None:
    from tests.helpers import write_tiny_species

    gtf_path = _gtf_species(tmp_path / "gtf_raw" / "tiny", file_name)
    gff3_path = write_tiny_species(tmp_path / "gff3_raw" / "tiny") / "annotation.gff3"
    # The rewrite kept every model (else the shard comparison below would prove little); only the
    # lines differ (the GTF has no gene and mRNA rows).
    assert _models(load_annotation(gtf_path)) == _models(load_annotation(gff3_path))

    gtf_result = _bake(tmp_path / "gtf_raw", tmp_path / "gtf_out", baking_tokenizer_dir)
    assert gtf_result.exit_code == 0, gtf_result.output
    gff3_result = _bake(tmp_path / "gff3_raw", tmp_path / "gff3_out", baking_tokenizer_dir)
    assert gff3_result.exit_code == 0, gff3_result.output

    gtf_manifest = json.loads((tmp_path / "gtf_out" / "manifest.json").read_text())
    gff3_manifest = json.loads((tmp_path / "gff3_out" / "manifest.json").read_text())
    species = gtf_manifest["species"]["tiny"]
    assert species["annotation"] == f"tiny/{file_name}"
    assert species["transcripts"] == 4 and species["genes"] == 3
    assert gtf_manifest["outputs"]["training.packed"]["samples"] > 0
    for output_name, output in gtf_manifest["outputs"].items():
        assert output["sha256"] == gff3_manifest["outputs"][output_name]["sha256"], output_name
