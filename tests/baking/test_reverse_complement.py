"""`bake --reverse_complement`: the minus-strand copy of a window equals baking the mirrored genome.

The reference is independent of genoforge/baking/reverse.py: the test writes the reverse
complement of a whole species (FASTA reversed and complemented, every GFF3 row mirrored, strands
flipped), and a window [a, b) of the original must give, through reverse.py, exactly what the
ordinary code gives for the window [L - b, L - a) of the mirrored files: the same target records,
per-base classes and bases.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.helpers import write_tiny_species
from typer.testing import CliRunner

from genoforge.baking import reverse
from genoforge.cli.app import app
from genoforge.genes.annotation import load_annotation
from genoforge.genes.classes import (
    encode_bases,
    representative_transcripts,
    window_labels,
)
from genoforge.genes.fasta import read_fasta
from genoforge.genes.packed_reader import PackedShard
from genoforge.genes.target import encode_target, window_annotation

_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def _mirror_species(source: Path, target: Path) -> dict[str, int]:
    """Write the reverse complement of ``source``'s genome and annotation into ``target``."""
    target.mkdir(parents=True)
    lengths: dict[str, int] = {}
    with open(target / "genome.fa", "w") as out:
        for record in read_fasta(source / "genome.fa"):
            lengths[record.seqid] = len(record.sequence)
            out.write(f">{record.seqid}\n{record.sequence.translate(_COMPLEMENT)[::-1]}\n")
    rows = []
    for line in (source / "annotation.gff3").read_text().splitlines():
        if line.startswith("#"):
            rows.append(line)
            continue
        cols = line.split("\t")
        length = lengths[cols[0]]
        start, end = int(cols[3]), int(cols[4])
        cols[3], cols[4] = str(length - end + 1), str(length - start + 1)
        cols[6] = {"+": "-", "-": "+"}[cols[6]]
        rows.append("\t".join(cols))
    (target / "annotation.gff3").write_text("\n".join(rows) + "\n")
    return lengths


def _window(folder: Path, seqid: str, start: int, end: int):
    genome = {r.seqid: r.sequence for r in read_fasta(folder / "genome.fa")}
    annotation = load_annotation(folder / "annotation.gff3", genome=genome)
    coding = representative_transcripts(annotation.transcripts_overlapping(seqid, 0, len(genome[seqid])))
    labels = window_labels(coding, 0, len(genome[seqid]))[start:end]
    sequence = genome[seqid][start:end]
    return sequence, window_annotation(annotation, seqid, start, end), encode_bases(sequence), labels


# Windows that hold a spliced + gene whole, cut one in an exon and in an intron, hold a - gene,
# and cut two isoforms (every partial mark and both strands occur).
WINDOWS = [(500, 2_800), (1_200, 1_600), (1_550, 9_000), (9_000, 13_000), (30_300, 32_500), (29_000, 34_000)]


@pytest.mark.parametrize(("start", "end"), WINDOWS)
def test_the_copy_of_a_window_is_the_mirrored_genome_s_window(tmp_path: Path, start: int, end: int):
    forward = write_tiny_species(tmp_path / "fwd")
    length = _mirror_species(forward, tmp_path / "rev")["chr1"]
    sequence, annotated, bases, labels = _window(forward, "chr1", start, end)
    want_sequence, want_annotation, want_bases, want_labels = _window(tmp_path / "rev", "chr1", length - end, length - start)

    assert reverse.reverse_complement_dna(sequence) == want_sequence
    got = reverse.reverse_complement_annotation(annotated, end - start)
    assert got == want_annotation
    assert encode_target(got) == encode_target(want_annotation)
    assert np.array_equal(reverse.reverse_complement_codes(bases), want_bases)
    assert np.array_equal(reverse.reverse_complement_labels(labels), want_labels)
    assert annotated.records  # every window above holds a gene
    assert {r.strand for r in got.transcripts} == {"+-"[r.strand == "+"] for r in annotated.transcripts}


def test_the_copy_is_an_involution():
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 255], dtype=np.uint8)
    assert np.array_equal(reverse.reverse_complement_labels(reverse.reverse_complement_labels(labels)), labels)
    assert reverse.reverse_complement_labels(labels)[:3].tolist() == [255, 8, 7]  # 16 -> 8, 15 -> 7
    assert reverse.reverse_complement_dna("ACGTNRYacgt") == "acgtRYNACGT"


def test_bake_adds_a_copy_of_every_training_window_only(tmp_path: Path, baking_tokenizer_dir: Path):
    raw = tmp_path / "raw"
    write_tiny_species(raw / "tiny")
    runner = CliRunner()
    shards = {}
    for flag in ("plain", "--reverse_complement"):
        out = tmp_path / flag.strip("-")
        result = runner.invoke(app, ["bake", "--raw_dir", str(raw), "--output_dir", str(out), "--tokenizer",
                                     str(baking_tokenizer_dir), "--window_size", "2000", "--val_fraction", "0.3",
                                     *([flag] if flag.startswith("--") else [])])
        assert result.exit_code == 0, result.output
        shards[flag] = {split: PackedShard(out / f"{split}.packed") for split in ("training", "validation")}
    plain, doubled = shards["plain"], shards["--reverse_complement"]
    assert len(doubled["training"]) == 2 * len(plain["training"]) > 0
    assert len(doubled["validation"]) == len(plain["validation"]) > 0
    # Each original window is followed by its copy: the bases and labels read the other way.
    for i in range(len(plain["training"])):
        original, copy = doubled["training"].sample(2 * i), doubled["training"].sample(2 * i + 1)
        assert np.array_equal(original.bases, plain["training"].sample(i).bases)
        assert np.array_equal(copy.bases, reverse.reverse_complement_codes(original.bases))
        assert np.array_equal(copy.base_labels, reverse.reverse_complement_labels(original.base_labels))
