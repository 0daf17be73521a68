"""Helpers shared by test modules (plain functions and constants; fixtures live in conftest.py).

Test modules import from here, never from each other: ``from tests.helpers import write_fasta``.
The tiny model, its tokenizer and batches are in tests/tiny.py; the tune runs in
tests/training/tune_runs.py.
"""

from __future__ import annotations

import gzip
import random
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


# --- files written by tests ------------------------------------------------------------------


def random_dna(rng: random.Random, n: int, alphabet: str = "ACGT") -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def write_fasta(path: Path, records: dict[str, str], width: int = 61) -> Path:
    text = "".join(f">{name} test contig\n"
                   + "".join(seq[i : i + width] + "\n" for i in range(0, len(seq), width))
                   for name, seq in records.items())
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def document_ids(lengths: list[int], total: int) -> torch.Tensor:
    """One packed row's document ids: documents 0, 1, ... of ``lengths`` tokens, then -1 padding."""
    import torch  # here: helpers stay importable without loading torch

    doc = torch.full((total,), -1, dtype=torch.long)
    start = 0
    for index, length in enumerate(lengths):
        doc[start : start + length] = index
        start += length
    return doc


def write_tiny_species(folder: Path, *, seed: int = 7, bad_line: str | None = None) -> Path:
    """A small species folder for bake tests, written from scratch (plain FASTA + GFF3).

    chr1 (40 kb): gene g1 on + with two exons (an intron) at 1,001-2,300, gene g2 on - with one
    exon at 10,001-12,000, a 6 kb run of N at 20,001-26,000 (mostly-N windows), gene g3 on + with
    two isoforms at 30,001-33,000. chr2 (8 kb): no gene (intergenic windows only). ``bad_line`` is
    appended to the GFF3 to make it malformed.
    """
    import random

    from genoforge.genes.gene_models import piece_phases

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    chr1 = [rng.choice("ACGT") for _ in range(40_000)]
    chr1[20_000:26_000] = "N" * 6_000
    chr2 = "".join(rng.choice("ACGTacgt") for _ in range(8_000))
    with open(folder / "genome.fa", "w") as fasta:
        for name, seq in (("chr1", "".join(chr1)), ("chr2", chr2)):
            fasta.write(f">{name} tiny test sequence\n")
            fasta.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    rows = ["##gff-version 3"]

    def gene(gene_id: str, strand: str, transcripts: dict[str, list[tuple[int, int]]]) -> None:
        starts = [s for exons in transcripts.values() for s, _ in exons]
        ends = [e for exons in transcripts.values() for _, e in exons]
        rows.append(f"chr1\ttest\tgene\t{min(starts) + 1}\t{max(ends)}\t.\t{strand}\t.\tID={gene_id}")
        for tx_id, exons in transcripts.items():
            rows.append(
                f"chr1\ttest\tmRNA\t{exons[0][0] + 1}\t{exons[-1][1]}\t.\t{strand}\t.\tID={tx_id};Parent={gene_id}"
            )
            for start, end in exons:
                rows.append(f"chr1\ttest\texon\t{start + 1}\t{end}\t.\t{strand}\t.\tParent={tx_id}")
            for (start, end), phase in zip(exons, piece_phases(list(exons), strand, 0)):
                rows.append(f"chr1\ttest\tCDS\t{start + 1}\t{end}\t.\t{strand}\t{phase}\tParent={tx_id}")

    gene("g1", "+", {"t1": [(1_000, 1_500), (1_700, 2_300)]})
    gene("g2", "-", {"t2": [(10_000, 12_000)]})
    gene("g3", "+", {"t3a": [(30_000, 30_600), (31_000, 33_000)], "t3b": [(30_000, 30_600), (32_000, 33_000)]})
    if bad_line is not None:
        rows.append(bad_line)
    (folder / "annotation.gff3").write_text("\n".join(rows) + "\n")
    return folder


# --- GFF3 validation ---------------------------------------------------------------------------


GT = shutil.which("gt")


def assert_gt_valid(path: Path) -> None:
    """`gt gff3validator` accepts the file (skip when genometools is not installed)."""
    if GT is None:
        pytest.skip("genometools (`gt`) is not installed; `apt-get install genometools`")
    run = subprocess.run([GT, "gff3validator", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
