"""The taxa table: window limits per taxon and the taxon of each species.

Accepted TOML (``configs/taxa.toml``; a copy ships as ``genoforge/data/taxa.toml``, the default)::

    [taxa.prokaryotes]
    window_size = 10000        # int, 1..999999 (two base-1000 coordinate tokens)
    why = "~P99 gene length"   # optional note

    [species]
    fly_chr2R = "invertebrates"  # species folder name -> a taxon defined above

Any other top-level key, an unknown key inside a taxon, a species pointing at an undefined taxon,
or a window size outside 1..999999 is a :class:`~genoforge.errors.ConfigError` naming the file.

A species' taxon comes from, later ones winning: the table's ``[species]``; a file named
``taxon`` inside the species folder holding one taxon name (e.g. ``plants``; ``#`` comment lines
allowed), so a folder can declare its own; ``bake --taxa NAME=TAXON``. Each must name a taxon of
the table. A species with none belongs to :data:`UNASSIGNED` and uses the bake's ``--window_size``.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from genoforge.errors import ConfigError, InputError

UNASSIGNED = "unassigned"
MAX_WINDOW_SIZE = 999_999  # coordinates are two tokens "0".."999" (DESIGN.md, target text)
DEFAULT_TAXA_RESOURCE = "taxa.toml"
TAXON_FILE = "taxon"  # inside a species folder: the folder's taxon
FLAG_ORIGIN = "--taxa"
_WORD = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Taxon:
    name: str
    window_size: int
    why: str = ""


@dataclass(frozen=True)
class TaxaTable:
    """Taxa by name and the taxon name of each listed species."""

    taxa: dict[str, Taxon] = field(default_factory=dict)
    species: dict[str, str] = field(default_factory=dict)
    source: str = "<built-in>"
    # species -> where its taxon was declared (the table, a taxon file, --taxa)
    origins: dict[str, str] = field(default_factory=dict)

    def taxon_of(self, species: str) -> str:
        """The taxon of ``species``, or :data:`UNASSIGNED`."""
        return self.species.get(species, UNASSIGNED)

    def window_size_of(self, species: str, default: int) -> int:
        """The species' taxon window, else ``default`` (the bake's ``--window_size``)."""
        taxon = self.species.get(species)
        return self.taxa[taxon].window_size if taxon is not None else default

    def origin_of(self, species: str) -> str | None:
        """Where the taxon of ``species`` was declared (None: unassigned)."""
        if species not in self.species:
            return None
        return self.origins.get(species, self.source)

    def with_assignments(self, assignments: Mapping[str, str], origin: str = FLAG_ORIGIN) -> TaxaTable:
        """A copy where each species of ``assignments`` has that taxon (``--taxa NAME=TAXON``).

        Raises:
            ConfigError: a taxon the table does not define.
        """
        for name, taxon in assignments.items():
            if taxon not in self.taxa:
                raise ConfigError(
                    f"{origin} {name}={taxon}: no taxon {taxon!r} in {self.source}; use one of "
                    f"{', '.join(sorted(self.taxa))}"
                )
        return dataclasses.replace(
            self,
            species={**self.species, **assignments},
            origins={**self.origins, **{name: origin for name in assignments}},
        )

    def with_taxon_file(self, folder: str | Path) -> TaxaTable:
        """A copy where the species of ``folder`` takes the taxon its ``taxon`` file names, unless
        ``--taxa`` assigned it; the table itself when the folder has no such file.

        Raises:
            InputError: the file is unreadable, names no taxon or several words, or a taxon the
                table does not define (``file:line: what; fix``).
        """
        folder = Path(folder)
        path = folder / TAXON_FILE
        if self.origins.get(folder.name) == FLAG_ORIGIN or not path.is_file():
            return self
        return self.with_assignments({folder.name: read_taxon_file(path, self)}, origin=str(path))


def read_taxon_file(path: str | Path, table: TaxaTable) -> str:
    """The taxon named by a species folder's ``taxon`` file (one word; ``#`` lines are comments).

    Raises:
        InputError: unreadable, empty, more than one word, or not a taxon of ``table``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read this taxon file ({exc}); write one taxon name in it", path) from None
    words = [
        (line_no, line.strip())
        for line_no, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    choices = ", ".join(sorted(table.taxa))
    if not words:
        raise InputError(f"empty taxon file; write one taxon name in it ({choices})", path, 1)
    line_no, word = words[0]
    if len(words) > 1 or not _WORD.fullmatch(word):
        bad_line = words[1][0] if len(words) > 1 else line_no
        raise InputError(
            f"a taxon file holds one word, found {' '.join(w for _, w in words)!r}; keep one of "
            f"{choices}",
            path,
            bad_line,
        )
    if word not in table.taxa:
        raise InputError(
            f"no taxon {word!r} in {table.source}; write one of {choices} (or add [taxa.{word}] to "
            "a --taxa table)",
            path,
            line_no,
        )
    return word


def parse_taxa_assignments(items: Iterable[str] | None) -> dict[str, str]:
    """``["fly=invertebrates", ...]`` (``--taxa NAME=TAXON``, repeatable) as species -> taxon.

    Raises:
        ConfigError: an item that is not NAME=TAXON, or one species given two taxa.
    """
    assignments: dict[str, str] = {}
    for item in items or ():
        name, sep, taxon = (part.strip() for part in str(item).partition("="))
        if not sep or not name or not taxon:
            raise ConfigError(
                f"--taxa {item!r}: expected NAME=TAXON (a species folder and a taxon, e.g. "
                "--taxa athal_snap_segments=plants), or the path of a taxa table"
            )
        if assignments.get(name, taxon) != taxon:
            raise ConfigError(f"--taxa gives {name} two taxa ({assignments[name]}, {taxon}); keep one")
        assignments[name] = taxon
    return assignments


def default_taxa_path() -> Path:
    """The packaged copy of ``configs/taxa.toml``."""
    return Path(str(resources.files("genoforge.data").joinpath(DEFAULT_TAXA_RESOURCE)))


def check_window_size(value: object, where: str) -> int:
    """``value`` as a window size, or a ConfigError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_WINDOW_SIZE:
        raise ConfigError(f"{where}: window_size must be an integer in 1..{MAX_WINDOW_SIZE}, got {value!r}")
    return value


def load_taxa(path: str | Path | None = None) -> TaxaTable:
    """Read a taxa TOML file (None: the packaged default).

    Raises:
        ConfigError: the file is missing, not TOML, or breaks the schema in the module docstring.
    """
    path = Path(path) if path is not None else default_taxa_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: taxa file not found; pass --taxa configs/taxa.toml or omit it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the taxa file ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax") from exc
    unknown = set(data) - {"taxa", "species"}
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {sorted(unknown)}; only [taxa.*] and [species] are read")
    taxa: dict[str, Taxon] = {}
    for name, entry in data.get("taxa", {}).items():
        where = f"{path}: [taxa.{name}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table with window_size")
        extra = set(entry) - {"window_size", "why"}
        if extra:
            raise ConfigError(f"{where}: unknown key(s) {sorted(extra)}; allowed: window_size, why")
        if "window_size" not in entry:
            raise ConfigError(f"{where}: window_size is missing")
        taxa[name] = Taxon(name, check_window_size(entry["window_size"], where), str(entry.get("why", "")))
    species: dict[str, str] = {}
    for name, taxon in data.get("species", {}).items():
        if taxon not in taxa:
            raise ConfigError(
                f"{path}: [species] {name} = {taxon!r} names no taxon; define [taxa.{taxon}] or use one "
                f"of {sorted(taxa)}"
            )
        species[name] = taxon
    return TaxaTable(taxa=taxa, species=species, source=str(path))
