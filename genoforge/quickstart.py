"""The quickstart: the whole recipe, tiny preset, on the embedded example genome, on a CPU.

Each step calls the same library function as its command, so the quickstart is an executable copy
of the recipe in the README. Steps are added here as the commands they exercise land.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from genoforge.console import info

EXAMPLE_SPECIES = "yeast_chrI"


@dataclass
class QuickstartResult:
    """Where each artifact went and how long each step took."""

    workdir: Path
    artifacts: dict[str, Path] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def example_files() -> tuple[Path, Path]:
    """The embedded example genome FASTA and GFF3 (S. cerevisiae chrI, see PROVENANCE.md)."""
    root = resources.files("genoforge.data") / "example"
    return Path(str(root / "yeast_chrI.fa.gz")), Path(str(root / "yeast_chrI.gff3.gz"))


def stage_raw_dir(workdir: Path) -> Path:
    """Lay the example out in bake's input layout: raw/<species>/genome.fa.gz + annotation.gff3.gz."""
    fasta, gff = example_files()
    species_dir = workdir / "raw" / EXAMPLE_SPECIES
    species_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(fasta, species_dir / "genome.fa.gz")
    shutil.copyfile(gff, species_dir / "annotation.gff3.gz")
    return workdir / "raw"


def run_quickstart(workdir: Path, vocab_size: int = 4096, seed: int = 42) -> QuickstartResult:
    """Run every recipe step that exists, in the recipe's order, under ``workdir``."""
    from genoforge.io import atomic_dir
    from genoforge.tokenizer.core import GenoTokenizer
    from genoforge.tokenizer.edit import append_tokens, write_tokens_file
    from genoforge.tokenizer.inventory import builtin_tokens
    from genoforge.tokenizer.train import train_dna_bpe

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    result = QuickstartResult(workdir=workdir)

    def step(name: str, artifact: str, body: Callable[[], Path]) -> None:
        info(f"[{len(result.seconds) + 1}] {name}")
        started = time.monotonic()
        path = body()
        result.seconds[name] = time.monotonic() - started
        result.artifacts[artifact] = path
        info(f"    -> {path} ({result.seconds[name]:.1f} s)")

    raw_dir = stage_raw_dir(workdir)
    result.artifacts["raw data"] = raw_dir
    fasta = raw_dir / EXAMPLE_SPECIES / "genome.fa.gz"

    def tokens_train() -> Path:
        out = workdir / "tokenizer"
        trained = GenoTokenizer(train_dna_bpe([fasta], vocab_size=vocab_size, seed=seed))
        with atomic_dir(out, overwrite=True) as tmp:
            trained.save(tmp)
        return out

    step("tokens train (offline DNA BPE tokenizer)", "tokenizer", tokens_train)

    def tokens_init() -> Path:
        path = workdir / "data" / "new_tokens.txt"
        write_tokens_file(path, builtin_tokens())
        return path

    step("tokens init", "token inventory", tokens_init)

    def tokens_append() -> Path:
        append_tokens(workdir / "tokenizer", builtin_tokens())
        return workdir / "tokenizer" / "tokenizer.json"

    step("tokens append", "tokenizer with targets", tokens_append)
    return result
