"""Discovery: which species folders a bake reads, and the one genome and one annotation of each.

Every non-hidden folder of ``raw_dir`` is a species (``--species a,b`` restricts the bake to those
folders). A species folder must hold exactly one FASTA (``.fa .fasta .fna``) and one annotation
(``.gff3 .gff .gtf``; GFF3 and GTF are told apart by content, :func:`genoforge.genes.gtf.sniff_format`),
each plain, gzip or bgzip: an extra ``.gz``/``.bgz``/``.gzip`` suffix is allowed and the compression
is read from the magic bytes. Hidden files and other names are ignored; bzip2, xz and zstd files are
refused by name here rather than failing as binary garbage later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genoforge.errors import InputError

FASTA_SUFFIXES = (".fa", ".fasta", ".fna")
GFF_SUFFIXES = (".gff3", ".gff")
COMPRESSION_SUFFIXES = (".gz", ".bgz", ".gzip")
# Magic bytes of compressions open_text cannot read, so we can name them instead of failing on
# binary garbage later: bzip2, xz, zstd.
UNSUPPORTED_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


@dataclass(frozen=True)
class SpeciesInput:
    """One species folder: its FASTA and annotation files."""

    name: str
    fasta: Path
    annotation: Path


def _data_kind(path: Path) -> str | None:
    """``"fasta"``, ``"gff"`` (a GFF3 or GTF annotation) or None, from the file name (an extra
    compression suffix allowed). Which of GFF3 and GTF a file holds is read from its content
    (:func:`genoforge.genes.gtf.sniff_format`), so ``.gtf`` is one more annotation suffix."""
    name = path.name.lower()
    for suffix in COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name.endswith(FASTA_SUFFIXES):
        return "fasta"
    if name.endswith((*GFF_SUFFIXES, ".gtf")):
        return "gff"
    return None


def _check_compression(path: Path) -> None:
    """Refuse a compression that open_text cannot read, by its magic bytes.

    Raises:
        InputError: the file cannot be read (permissions) or is bzip2/xz/zstd-compressed.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except PermissionError as exc:
        raise InputError(f"cannot be read ({exc.strerror}); check its permissions", path) from None
    except OSError as exc:
        raise InputError(f"cannot be read ({exc.strerror or exc}); check the file", path) from None
    for magic, name in UNSUPPORTED_MAGIC.items():
        if head.startswith(magic):
            raise InputError(
                f"is {name}-compressed; genoforge reads plain, gzip or bgzip: recompress it with bgzip", path
            )


def find_species_files(folder: Path) -> SpeciesInput:
    """The one FASTA and one annotation (GFF3 or GTF) of a species folder.

    Raises:
        InputError: none or several of either kind, naming the folder and the fix; a file that
            cannot be read or is in an unsupported compression, naming the file.
    """
    found: dict[str, list[Path]] = {"fasta": [], "gff": []}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        kind = _data_kind(path)
        if kind is not None:
            found[kind].append(path)
    kinds = (
        ("fasta", "genome FASTA", FASTA_SUFFIXES),
        ("gff", "GFF3 annotation or GTF", (*GFF_SUFFIXES, ".gtf")),  # the suffixes _data_kind reads
    )
    for kind, what, suffixes in kinds:
        paths = found[kind]
        if not paths:
            raise InputError(
                f"no {what} ({' '.join(suffixes)}, optionally .gz) in this species folder; add one "
                "or remove the folder from --raw_dir",
                folder,
            )
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            raise InputError(f"several {what} files ({names}); keep exactly one per species folder", folder)
        _check_compression(paths[0])
    return SpeciesInput(folder.name, found["fasta"][0], found["gff"][0])


def discover_species(raw_dir: str | Path, selected: list[str] | None = None) -> list[Path]:
    """Species folders of ``raw_dir``, sorted by name (only ``selected`` ones when given).

    Raises:
        InputError: ``raw_dir`` is missing or empty, or a selected species has no folder.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise InputError("--raw_dir is not a directory; point it at a folder of <species>/ folders", raw_dir)
    folders = sorted(
        (p for p in raw_dir.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name
    )
    if selected is not None:
        by_name = {p.name: p for p in folders}
        missing = [name for name in selected if name not in by_name]
        if missing:
            raise InputError(
                f"--species {','.join(missing)}: no such folder; available: {', '.join(by_name) or 'none'}",
                raw_dir,
            )
        folders = [by_name[name] for name in sorted(set(selected))]
    if not folders:
        raise InputError("no species folders; expected raw_dir/<species>/ with a FASTA and a GFF3 each", raw_dir)
    return folders


__all__ = [
    "COMPRESSION_SUFFIXES",
    "FASTA_SUFFIXES",
    "GFF_SUFFIXES",
    "UNSUPPORTED_MAGIC",
    "SpeciesInput",
    "discover_species",
    "find_species_files",
]
