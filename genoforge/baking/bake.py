"""The bake pipeline: ``raw_dir/<species>/`` genomes + annotations -> packed shards + manifest.

:func:`bake` runs it; each stage lives in its own module (which holds its rules):

1. Settings (:mod:`~genoforge.baking.config`): :class:`BakeConfig`, defaults < config file < flags.
2. Discovery (:mod:`~genoforge.genes.discovery`): every non-hidden folder of ``raw_dir`` is a
   species; it must hold exactly one FASTA (``.fa .fasta .fna``) and one annotation (``.gff3 .gff
   .gtf``), each plain, gzip or bgzip (an extra ``.gz``/``.bgz`` suffix is allowed; compression is
   read from the magic bytes). ``--species a,b`` restricts the bake to those folders. A file named
   ``taxon`` may name the species' taxon (:mod:`~genoforge.baking.taxa`).
3. Per species (:mod:`~genoforge.baking.species`): FASTA lengths
   (:mod:`~genoforge.genes.fasta_lengths`), then the gene models
   (:func:`genoforge.genes.annotation.load_annotation`), then one chromosome at a time: the split
   (:mod:`~genoforge.genes.split`), the windows (:mod:`~genoforge.baking.windows`), and per window
   (:mod:`~genoforge.baking.chunks`, in worker processes) the DNA tokens (+ hints,
   :mod:`~genoforge.baking.hints`) and the target tokens (:mod:`~genoforge.genes.target`). Each
   species writes its own part shards.
4. Merge (:mod:`~genoforge.baking.outputs`): the parts are appended, species in sorted order, into
   ``training.packed`` and ``validation.packed`` (:mod:`~genoforge.genes.packed_format`), then
   ``manifest.json`` (:mod:`~genoforge.genes.manifest`) records counts and checksums.

Order and determinism. Samples are written species by species (sorted by name), chromosome by
chromosome (FASTA order), window by window (by start). Windows are independent of one another and
every random choice is a hash of the seed and the window's names, so the output is byte-identical
whatever ``n_workers`` and ``species_parallel`` are: workers only change who computes a window,
never what is computed or where it is written.

Parallelism (:mod:`~genoforge.baking.pool`). ``species_parallel`` species run at once, each in its
own process; inside a species, ``n_workers`` processes (a ``ProcessPoolExecutor``) turn chunks of
about :data:`~genoforge.baking.species.CHUNK_BASES` bases of windows into samples. At most
``species_parallel * n_workers`` worker processes compute, and each species process holds one
chromosome (plus the chunks in flight), so memory is bounded by the longest chromosome times
``species_parallel``, not by genome size times workers.

Atomicity. Everything is written under a temporary folder beside ``output_dir`` and renamed into
place at the end (:func:`genoforge.io.atomic_dir`): an interrupted or failed bake leaves nothing that
looks like a baked directory. An existing ``output_dir`` is replaced only with ``overwrite``, and
only if it is empty or a previous bake (holds ``manifest.json``).

Names that moved to those modules are re-exported here, so ``from genoforge.baking.bake import
BakeConfig`` and the other old import paths keep working.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genoforge.baking.chunks import (
    ChunkResult,
    ChunkTask,
    WindowSettings,
    bake_chunk,
    share_tokenizer,
)
from genoforge.baking.config import EXECUTION_ONLY, BakeConfig, resolve_bake_config
from genoforge.baking.outputs import (
    OUTPUT_FILES,
    check_output_dir,
    default_permissions,
    merge_parts,
    write_gene_structures,
)
from genoforge.baking.pool import run_species
from genoforge.baking.species import (
    CHUNK_BASES,
    Reporter,
    SpeciesJob,
    SpeciesResult,
    bake_species,
)
from genoforge.baking.taxa import load_taxa, parse_taxa_assignments
from genoforge.baking.windows import overlap_of
from genoforge.errors import GenoforgeError, InputError, TokenizerError
from genoforge.genes.discovery import discover_species, find_species_files
from genoforge.genes.manifest import build_manifest, write_manifest


@dataclass
class BakeSummary:
    """What :func:`bake` made: the output folder and its manifest."""

    output_dir: Path
    manifest: dict[str, Any]
    seconds: float

    @property
    def failed_species(self) -> dict[str, str]:
        return dict(self.manifest["failed_species"])


def _load_tokenizer(config: BakeConfig) -> Any:
    from genoforge.genes.inventory import builtin_tokens
    from genoforge.tokenizer.core import GenoTokenizer

    tok = GenoTokenizer.load(config.tokenizer)
    missing = [token for token in builtin_tokens() if token not in tok]
    if missing:
        from genoforge.genes.inventory import escape_token

        shown = " ".join(escape_token(t) for t in missing[:5])
        raise TokenizerError(
            f"lacks {len(missing)} built-in token(s) ({shown}{' ...' if len(missing) > 5 else ''}); run "
            "`genoforge tokens init TOKENS.txt` and `genoforge tokens append TOKENS.txt TOKENIZER`, or bake "
            "with the model dir from `genoforge model init`",
            tok.source,
        )
    return tok


def bake(config: BakeConfig) -> BakeSummary:
    """Run a whole bake (see the module docstring).

    Raises:
        ConfigError: bad settings.
        GenoforgeError: bad input (unless ``keep_going`` skips the species); nothing is written.
    """
    from genoforge.console import info, warn
    from genoforge.genes.packed_format import token_dtype_for
    from genoforge.io import atomic_dir

    began = time.monotonic()
    config.validate()
    output_dir = Path(config.output_dir)
    check_output_dir(output_dir, config.overwrite)
    taxa = load_taxa(config.taxa).with_assignments(parse_taxa_assignments(config.species_taxa))
    tok = _load_tokenizer(config)
    # Our own processes are the parallelism; the tokenizer's thread pool would oversubscribe the
    # cores and is unsafe across fork.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    share_tokenizer(str(config.tokenizer), tok)  # inherited by forked workers: no reload there
    tokenizer_hash = tok.content_hash()
    token_dtype = token_dtype_for(tok.vocab_size)
    folders = discover_species(config.raw_dir, config.species)

    failed: dict[str, str] = {}
    jobs: list[SpeciesJob] = []
    with atomic_dir(output_dir, overwrite=config.overwrite) as tmp:
        parts_dir = tmp / "parts"
        parts_dir.mkdir()
        for folder in folders:
            try:
                species_input = find_species_files(folder)
                taxa = taxa.with_taxon_file(folder)
            except GenoforgeError as exc:
                if not config.keep_going:
                    raise
                failed[folder.name] = str(exc)
                warn(f"skipping species {folder.name}: {exc}")
                continue
            window_size = taxa.window_size_of(folder.name, config.window_size)
            jobs.append(
                SpeciesJob(
                    species=species_input,
                    raw_dir=str(config.raw_dir),
                    taxon=taxa.taxon_of(folder.name),
                    window_size=window_size,
                    overlap=overlap_of(window_size, config.overlap_fraction),
                    val_fraction=config.val_fraction,
                    settings=WindowSettings(
                        species=folder.name,
                        tokenizer=str(config.tokenizer),
                        token_dtype=token_dtype,
                        seed=config.seed,
                        max_n_ratio=config.max_n_ratio,
                        intergenic_rate=config.intergenic_rate,
                        hint_ratio=config.hint_ratio,
                        reverse_complement=config.reverse_complement,
                    ),
                    tokenizer_hash=tokenizer_hash,
                    parts_dir=str(parts_dir),
                    n_workers=config.n_workers,
                    strict=config.strict,
                )
            )
        results = run_species(jobs, config, failed)
        if not results:
            raise InputError(
                "nothing was baked: every species failed (see the warnings above); fix the inputs", config.raw_dir
            )
        ordered = [results[name] for name in sorted(results)]
        outputs = merge_parts(tmp, ordered, tokenizer_hash=tokenizer_hash, token_dtype=token_dtype)
        shutil.rmtree(parts_dir)
        write_gene_structures(tmp, ordered)
        manifest = build_manifest(
            config=config.manifest_view(),
            tokenizer={"hash": tokenizer_hash, "vocab_size": tok.vocab_size, "token_dtype": token_dtype},
            reports=[result.report for result in ordered],
            failed_species=failed,
            outputs=outputs,
        )
        write_manifest(tmp, manifest)
        default_permissions(tmp)
    seconds = time.monotonic() - began
    totals = manifest["totals"]
    info(
        f"baked {len(results)} species in {seconds:,.1f}s: {totals['training']['windows']:,} training and "
        f"{totals['validation']['windows']:,} validation windows -> {output_dir}"
    )
    return BakeSummary(output_dir, manifest, seconds)


__all__ = [
    "CHUNK_BASES",
    "EXECUTION_ONLY",
    "OUTPUT_FILES",
    "BakeConfig",
    "BakeSummary",
    "ChunkResult",
    "ChunkTask",
    "Reporter",
    "SpeciesJob",
    "SpeciesResult",
    "WindowSettings",
    "bake",
    "bake_chunk",
    "bake_species",
    "resolve_bake_config",
]
