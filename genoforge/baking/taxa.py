"""The taxa table: window limits per taxon and the taxon of each species.

Accepted TOML (``configs/taxa.toml``; a copy ships as ``genoforge/data/taxa.toml``, the default)::

    [taxa.prokaryotes]
    window_size = 10000        # int, 1..999999 (two base-1000 coordinate tokens)
    why = "~P99 gene length"   # optional note

    [species]
    fly_chr2R = "invertebrates"  # species folder name -> a taxon defined above

Any other top-level key, an unknown key inside a taxon, a species pointing at an undefined taxon,
or a window size outside 1..999999 is a :class:`~genoforge.errors.ConfigError` naming the file.
A species absent from ``[species]`` belongs to :data:`UNASSIGNED` and uses the bake's
``--window_size``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from genoforge.errors import ConfigError

UNASSIGNED = "unassigned"
MAX_WINDOW_SIZE = 999_999  # coordinates are two tokens "0".."999" (DESIGN.md, target text)
DEFAULT_TAXA_RESOURCE = "taxa.toml"


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

    def taxon_of(self, species: str) -> str:
        """The taxon of ``species``, or :data:`UNASSIGNED`."""
        return self.species.get(species, UNASSIGNED)

    def window_size_of(self, species: str, default: int) -> int:
        """The species' taxon window, else ``default`` (the bake's ``--window_size``)."""
        taxon = self.species.get(species)
        return self.taxa[taxon].window_size if taxon is not None else default


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
