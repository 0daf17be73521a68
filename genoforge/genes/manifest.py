"""``manifest.json``: what a baked directory holds, how it was made, and its checksums.

Schema (version :data:`MANIFEST_SCHEMA_VERSION`), keys in this order::

    format            "genoforge-bake"
    schema_version    1
    genoforge_version the package version that baked it
    tokenizer         {hash, vocab_size, token_dtype}: ``tune`` refuses shards of another hash
    config            the resolved BakeConfig, minus execution-only settings (output_dir,
                      n_workers, species_parallel, overwrite): the manifest, like the shards, is
                      byte-identical whatever the worker counts
    species           {name: SpeciesReport}: taxon, window_size, overlap, input files (relative to
                      raw_dir) and their sha256, seqids, bases, genes, transcripts,
                      skipped_features {reason: count}, skipped_first_line {reason: "annotation
                      path:line" of the reason's first occurrence}, and per split
                      (training/validation) the window and token counts below. Reasons in
                      genoforge.genes.gene_models.BROKEN_MODEL_REASONS are broken gene models (what
                      bake --strict refuses); the others are rows genoforge does not model
    taxa              {taxon: the same counts summed over its species, plus the species list}
    totals            the same counts summed over everything baked
    failed_species    {name: error message}: species skipped under --keep_going
    outputs           {file name: {sha256, bytes, samples}} for training.packed, validation.packed

Per-split counts: ``windows`` (samples written), ``bases`` (sum of their lengths, overlaps counted
twice), ``input_tokens``, ``target_tokens``, ``intergenic_windows`` (kept windows with no record),
``hinted_windows``, and the windows not written: ``dropped_mostly_n``, ``dropped_intergenic``,
``dropped_short`` (segments too short for a window).

Nothing time- or host-dependent is recorded, so two bakes of the same input are byte-identical.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from genoforge import __version__
from genoforge.errors import ShardFormatError
from genoforge.io import atomic_write

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = "genoforge-bake"
MANIFEST_SCHEMA_VERSION = 1


@dataclass
class SplitCounts:
    """Window and token counts of one split (see the module docstring)."""

    windows: int = 0
    bases: int = 0
    input_tokens: int = 0
    target_tokens: int = 0
    intergenic_windows: int = 0
    hinted_windows: int = 0
    dropped_mostly_n: int = 0
    dropped_intergenic: int = 0
    dropped_short: int = 0

    def add(self, other: SplitCounts) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


def _splits() -> dict[str, SplitCounts]:
    return {"training": SplitCounts(), "validation": SplitCounts()}


@dataclass
class SpeciesReport:
    """What one species contributed to the bake."""

    name: str
    taxon: str
    window_size: int
    overlap: int
    fasta: str
    annotation: str
    fasta_sha256: str = ""
    annotation_sha256: str = ""
    seqids: int = 0
    bases: int = 0
    genes: int = 0
    transcripts: int = 0
    skipped_features: Counter[str] = field(default_factory=Counter)
    skipped_first_line: dict[str, str] = field(default_factory=dict)  # reason -> "file:line"
    splits: dict[str, SplitCounts] = field(default_factory=_splits)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("name")
        data["skipped_features"] = dict(sorted(self.skipped_features.items()))
        data["skipped_first_line"] = dict(sorted(self.skipped_first_line.items()))
        data.pop("splits")  # asdict already turned the counts into dicts
        data.update({split: asdict(counts) for split, counts in self.splits.items()})
        return data


@dataclass
class GroupCounts:
    """Counts summed over several species (a taxon, or everything)."""

    species: list[str] = field(default_factory=list)
    seqids: int = 0
    bases: int = 0
    genes: int = 0
    transcripts: int = 0
    skipped_features: Counter[str] = field(default_factory=Counter)
    splits: dict[str, SplitCounts] = field(default_factory=_splits)

    def add(self, report: SpeciesReport) -> None:
        self.species.append(report.name)
        self.seqids += report.seqids
        self.bases += report.bases
        self.genes += report.genes
        self.transcripts += report.transcripts
        self.skipped_features.update(report.skipped_features)
        for split, counts in report.splits.items():
            self.splits[split].add(counts)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped_features"] = dict(sorted(self.skipped_features.items()))
        data.pop("splits")
        data.update({split: asdict(counts) for split, counts in self.splits.items()})
        return data


def build_manifest(
    *,
    config: dict[str, Any],
    tokenizer: dict[str, Any],
    reports: list[SpeciesReport],
    failed_species: dict[str, str],
    outputs: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """The manifest as a JSON-ready dict; ``reports`` in canonical (sorted species) order."""
    taxa: dict[str, GroupCounts] = {}
    totals = GroupCounts()
    for report in reports:
        taxa.setdefault(report.taxon, GroupCounts()).add(report)
        totals.add(report)
    return {
        "format": MANIFEST_FORMAT,
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "genoforge_version": __version__,
        "tokenizer": tokenizer,
        "config": config,
        "species": {report.name: report.to_json() for report in reports},
        "taxa": {name: taxa[name].to_json() for name in sorted(taxa)},
        "totals": totals.to_json(),
        "failed_species": dict(sorted(failed_species.items())),
        "outputs": outputs,
    }


def write_manifest(directory: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (2-space indent, trailing newline)."""
    path = Path(directory) / MANIFEST_FILE
    with atomic_write(path) as handle:
        handle.write(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return path


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """Read and check a baked directory's manifest.

    Raises:
        ShardFormatError: no manifest, not JSON, not a bake manifest, or an unknown schema version.
    """
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise ShardFormatError(
            f"no {MANIFEST_FILE}: not a baked directory (or an interrupted bake); run genoforge bake", directory
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShardFormatError(f"unreadable manifest ({exc}); re-run genoforge bake", path) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ShardFormatError("not a genoforge bake manifest; re-run genoforge bake", path)
    version = manifest.get("schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        raise ShardFormatError(
            f"unknown manifest schema version {version!r} (this genoforge reads {MANIFEST_SCHEMA_VERSION}); "
            "re-bake with this version",
            path,
        )
    return manifest


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks: the checksum the manifest records for inputs and outputs."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
