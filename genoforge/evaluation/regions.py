"""Evaluation regions: a stretch of one chromosome cut out as its own genome + reference GFF3.

A gene finder (genoforge's or a peer such as AUGUSTUS or SNAP) is scored on a region it never
trained on: :func:`validation_regions` names the regions ``bake`` held out (the same rule, species
names, seqids, fraction and seed, :func:`genoforge.genes.split.validation_region`), and
:func:`write_region` writes one region as

- ``{name}.fa``: one record ``>{name} {seqid}:{start + 1}-{end}``, coordinates starting at 1, so
  any predictor can run on it as on a small genome;
- ``{name}.reference.gff3``: ``##gff-version 3``, ``##sequence-region {name} 1 {length}``, then
  the annotation's models clipped to the region exactly as bake clips them into a window
  (:func:`genoforge.genes.target.window_annotation`): exons and CDS cut at the region ends, the
  CDS phase recomputed at a cut 5' end, models leaving the region marked
  ``partial=left|right|both``; noncoding models and stand-alone features are kept too (``genoforge
  eval`` scores only the coding ones). IDs are ``{name}.g{k}`` / ``{name}.g{k}.t{j}``, the source column ``reference``.

Both files are written atomically. The default ``name`` is ``{seqid}_{start + 1}-{end}`` (GFF3's
1-based closed coordinates of the region on the chromosome).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genoforge.errors import ConfigError, InputError

FASTA_LINE = 80  # bases per FASTA line


@dataclass(frozen=True)
class HeldOutRegion:
    """One region bake held out for validation: ``[start, end)`` (0-based) of ``seqid``.

    ``fasta`` and ``annotation`` are the species' input files (the paths bake reads).
    """

    species: str
    seqid: str
    start: int
    end: int
    fasta: Path
    annotation: Path

    @property
    def name(self) -> str:
        """The region's default record name, ``{seqid}_{start + 1}-{end}``."""
        return region_name(self.seqid, self.start, self.end)

    @property
    def length(self) -> int:
        return self.end - self.start


def region_name(seqid: str, start: int, end: int) -> str:
    """``{seqid}_{start + 1}-{end}``: the region ``[start, end)`` in 1-based closed coordinates."""
    return f"{seqid}_{start + 1}-{end}"


def validation_regions(
    raw_dir: str | Path, species: str, val_fraction: float, seed: int
) -> list[HeldOutRegion]:
    """The regions ``bake`` holds out of ``raw_dir/<species>/`` with this fraction and seed.

    One region per FASTA record, in file order; records too short to hold one out (the region
    rounds to 0 bases) have none. Only the FASTA is read (sequence lengths), one record at a time.

    Args:
        raw_dir: bake's ``--raw_dir`` (folders of ``<species>/`` with one FASTA and one GFF3).
        species: the species folder name (bake's species name: it seeds the region's position).
        val_fraction: bake's ``--val_fraction`` (default 0.05).
        seed: bake's ``--seed`` (default 42).

    Raises:
        InputError: no such species folder, or it lacks (or has several) FASTA / GFF3 files.
        ConfigError: ``val_fraction`` is outside [0, 1).
    """
    from genoforge.genes.discovery import discover_species, find_species_files
    from genoforge.genes.fasta_lengths import quick_fasta_lengths
    from genoforge.genes.split import validation_region

    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}; use bake's value (default 0.05)")
    folder = discover_species(raw_dir, [species])[0]
    files = find_species_files(folder)
    regions = []
    for seqid, length in quick_fasta_lengths(files.fasta).items():
        region = validation_region(files.name, seqid, length, val_fraction, seed)
        if region is not None:
            regions.append(HeldOutRegion(files.name, seqid, region[0], region[1], files.fasta, files.annotation))
    return regions


def write_region(
    fasta_path: str | Path,
    gff_path: str | Path,
    seqid: str,
    start: int,
    end: int,
    out_dir: str | Path,
    name: str | None = None,
) -> tuple[Path, Path]:
    """Write ``[start, end)`` of ``seqid`` as a one-record FASTA and its clipped reference GFF3.

    See the module docstring for what the files hold.

    Args:
        fasta_path: the genome (plain, gzip or bgzip); only ``seqid`` is kept in memory.
        gff_path: its annotation.
        seqid: the chromosome (first word of its FASTA header).
        start, end: the region, 0-based half-open.
        out_dir: folder for the two files (created if missing).
        name: record name and file stem; default ``{seqid}_{start + 1}-{end}``.

    Returns:
        ``(region_fasta, region_reference_gff3)``.

    Raises:
        InputError: ``seqid`` is not in the FASTA, or the region is empty or runs past its end.
        ConfigError: the region is longer than 999,999 bp or holds more than 1000 genes (the
            clipping works in target-format coordinates; cut a shorter region).
        FastaFormatError, GffFormatError: a malformed input, with file and line.
    """
    from genoforge.genes.annotation import load_annotation
    from genoforge.genes.fasta import read_fasta
    from genoforge.genes.target_gff3 import to_gff3_rows
    from genoforge.genes.window_models import MAX_COORD, window_annotation
    from genoforge.io import atomic_write

    sequence = next((r.sequence for r in read_fasta(fasta_path) if r.seqid == seqid), None)
    if sequence is None:
        raise InputError(f"no record {seqid!r}; pass a seqid that is the first word of a header", fasta_path)
    if not 0 <= start < end <= len(sequence):
        raise InputError(
            f"region [{start}, {end}) is empty or outside {seqid} (length {len(sequence):,}); "
            "pass 0 <= start < end <= length (0-based, end exclusive)",
            fasta_path,
        )
    if end - start > MAX_COORD:
        raise ConfigError(
            f"region {seqid}:{start + 1}-{end} is {end - start:,} bp, longer than the {MAX_COORD:,} bp "
            "a reference can be clipped to; cut a shorter region (e.g. a smaller --val_fraction)"
        )
    name = name if name is not None else region_name(seqid, start, end)
    if not name or any(c.isspace() for c in name) or name.startswith(">"):
        raise ConfigError(f"region name {name!r} must be one word (it becomes the FASTA seqid)")
    out_dir = Path(out_dir)
    region_fasta = out_dir / f"{name}.fa"
    region_gff = out_dir / f"{name}.reference.gff3"

    annotation = load_annotation(gff_path, {seqid: len(sequence)})
    wa = window_annotation(annotation, seqid, start, end)
    rows = to_gff3_rows(wa, name, 0, source="reference", id_prefix=name)
    with atomic_write(region_gff) as handle:
        handle.write("##gff-version 3\n")
        handle.write(f"##sequence-region {name} 1 {end - start}\n")
        handle.writelines(row + "\n" for row in rows)
    with atomic_write(region_fasta) as handle:
        handle.write(f">{name} {seqid}:{start + 1}-{end}\n")
        for offset in range(start, end, FASTA_LINE):
            handle.write(sequence[offset : min(offset + FASTA_LINE, end)] + "\n")
    return region_fasta, region_gff
