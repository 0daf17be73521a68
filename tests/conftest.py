"""Shared pytest fixtures. Real data lives in ../shared/data beside the repository (never the network).

Fixtures that need it skip, with a reason, when it is absent (e.g. on a bare CI checkout).
Add your own fixtures below; keep each one small and documented.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# typer reads TERMINAL_WIDTH once, when typer.rich_utils is first imported: were that first import
# inside a CliRunner.invoke(env={"TERMINAL_WIDTH": "200"}), every later help text would be 200
# columns wide. Import it here, without the variable, so each test's COLUMNS decides its width.
import os as _os

_saved_width = _os.environ.pop("TERMINAL_WIDTH", None)
import typer.rich_utils  # noqa: E402,F401

if _saved_width is not None:
    _os.environ["TERMINAL_WIDTH"] = _saved_width

if TYPE_CHECKING:
    import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
SHARED_DATA_DIR = SHARED_DIR / "data"
DNABERT2_TOKENIZER_JSON = SHARED_DIR / "reference" / "dnabert2" / "tokenizer.json"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (one folder per species: genome.fa.gz + annotation.gff3.gz)."""
    if not SHARED_DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA_DIR} (real-genome tests need it)")
    return SHARED_DATA_DIR


@pytest.fixture(scope="session")
def dnabert2_tokenizer_json() -> Path:
    """DNABERT-2's original tokenizer.json in ../shared/reference (read-only: copy before editing)."""
    if not DNABERT2_TOKENIZER_JSON.is_file():
        pytest.skip(f"DNABERT-2 tokenizer not found at {DNABERT2_TOKENIZER_JSON}")
    return DNABERT2_TOKENIZER_JSON


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread for the test, restored after: deterministic, and on a shared
    2-core machine torch's thread pool can run 50x slower. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def baking_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer folder bake can use: the bundled DNABERT-2 BPE plus the built-in inventory
    (what `genoforge model init` gives). Built once per session; treat it as read-only."""
    import shutil

    from genoforge.tokenizer.core import dnabert2_tokenizer_path
    from genoforge.tokenizer.edit import ensure_builtin_tokens

    directory = tmp_path_factory.mktemp("baking_tokenizer")
    shutil.copy(dnabert2_tokenizer_path(), directory / "tokenizer.json")
    ensure_builtin_tokens(directory)
    return directory


def document_ids(lengths: list[int], total: int) -> torch.Tensor:
    """One packed row's document ids: documents 0, 1, ... of ``lengths`` tokens, then -1 padding."""
    import torch  # here: conftest stays importable without loading torch

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


@pytest.fixture
def tiny_raw_dir(tmp_path: Path) -> Path:
    """raw_dir/ with two small written species (tiny_a, tiny_b; see write_tiny_species)."""
    raw = tmp_path / "raw"
    write_tiny_species(raw / "tiny_a", seed=1)
    write_tiny_species(raw / "tiny_b", seed=2)
    return raw
