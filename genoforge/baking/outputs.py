"""The outputs of a bake: where they may go, and writing them.

A bake writes into a temporary folder that :func:`genoforge.io.atomic_dir` renames into place at
the end: the species' part shards merged, species in the order given (sorted by name), into
:data:`OUTPUT_FILES` (:mod:`~genoforge.genes.packed_format`); the gene-structure counts of the training
regions (:mod:`genoforge.genes.structure_set`); then ``manifest.json``
(:mod:`~genoforge.genes.manifest`). Temporary files are created 0700/0600, so the finished folder
is given the permissions of a normal mkdir/open. An existing ``output_dir`` is replaced only with
``overwrite``, and only if it is empty or a previous bake (holds ``manifest.json``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from genoforge.baking.species import SpeciesResult
from genoforge.errors import InputError
from genoforge.genes.manifest import MANIFEST_FILE
from genoforge.genes.split import SPLITS

OUTPUT_FILES = ("training.packed", "validation.packed")


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuse an ``output_dir`` that a bake may not replace.

    Raises:
        InputError: it exists and ``overwrite`` is off, or it is not a folder, or it is neither
            empty nor a previous bake.
    """
    if not output_dir.exists():
        return
    if not overwrite:
        raise InputError(
            "already exists; pass --overwrite to replace it or choose another --output_dir", output_dir
        )
    if not output_dir.is_dir():
        raise InputError("exists and is not a directory; choose another --output_dir", output_dir)
    if any(output_dir.iterdir()) and not (output_dir / MANIFEST_FILE).is_file():
        raise InputError(
            "exists, is not empty and holds no manifest.json, so it is not a previous bake; "
            "--overwrite only replaces bakes: choose another --output_dir",
            output_dir,
        )


def merge_parts(
    directory: Path, results: list[SpeciesResult], *, tokenizer_hash: str, token_dtype: str
) -> dict[str, dict[str, Any]]:
    """Merge the part shards of ``results``, in that order, into :data:`OUTPUT_FILES` under
    ``directory``; warns about an output that holds no sample.

    Returns:
        file name -> ``sha256``, ``bytes`` and ``samples`` of that output (the manifest's
        ``outputs``).
    """
    from genoforge.baking.packed_writer import PackedWriter
    from genoforge.console import warn
    from genoforge.genes.manifest import file_sha256
    from genoforge.genes.packed_reader import PackedShard

    outputs: dict[str, dict[str, Any]] = {}
    for split, file_name in zip(SPLITS, OUTPUT_FILES):
        path = directory / file_name
        with PackedWriter(path, tokenizer_hash=tokenizer_hash, token_dtype=token_dtype) as writer:
            for result in results:
                writer.add_shard(PackedShard(result.parts[split]))
        n_samples = len(PackedShard(path))
        outputs[file_name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size, "samples": n_samples}
        if n_samples == 0:
            warn(f"{file_name} holds no sample (inputs too small for a {split} window?)")
    return outputs


def write_gene_structures(directory: Path, results: list[SpeciesResult]) -> None:
    """Save the training regions' gene-structure counts of ``results``, species by species."""
    from genoforge.genes.structure_set import GENE_STRUCTURE_FILE, GeneStructureSet

    structures = GeneStructureSet()
    for result in results:
        structures.add(result.report.name, result.report.taxon, result.structure)
    structures.save(directory / GENE_STRUCTURE_FILE)


def default_permissions(directory: Path) -> None:
    """Give the output the permissions of a normal mkdir/open (temp files are created 0700/0600)."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for path in directory.iterdir():
        path.chmod(0o666 & ~umask)


__all__ = ["OUTPUT_FILES", "check_output_dir", "default_permissions", "merge_parts", "write_gene_structures"]
