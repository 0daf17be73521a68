"""The settings of ``genoforge bake``: :class:`BakeConfig` (the one source of their defaults) and
how a config file and flags resolve into one (:func:`resolve_bake_config`).

Which settings reach the manifest: all but :data:`EXECUTION_ONLY`, the ones that change how a bake
runs but not one byte of what it writes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from genoforge.baking.taxa import MAX_WINDOW_SIZE, parse_taxa_assignments
from genoforge.errors import ConfigError

# Settings that change how a bake runs but not one byte of what it writes; left out of the manifest.
# strict only decides whether a bake with a broken gene model fails.
EXECUTION_ONLY = frozenset({"output_dir", "n_workers", "species_parallel", "overwrite", "strict"})


@dataclass(kw_only=True)
class BakeConfig:
    """Every setting of ``genoforge bake``; the one source of its defaults.

    Precedence: these defaults < ``--config FILE.toml`` (top-level keys or a ``[bake]`` table) <
    flags. ``taxa = None`` uses the packaged copy of ``configs/taxa.toml``; ``species_taxa``
    (``--taxa NAME=TAXON``) gives species folders a taxon, over the table and a folder's ``taxon``
    file (:mod:`~genoforge.baking.taxa`); ``species = None`` bakes every folder of ``raw_dir``.
    ``strict`` makes a broken gene model an error instead of a skip (genes.BROKEN_MODEL_REASONS).
    """

    raw_dir: str = ""
    output_dir: str = ""
    tokenizer: str = ""
    window_size: int = 10000
    overlap_fraction: float = 0.25
    taxa: str | None = None
    species_taxa: list[str] | None = None
    species: list[str] | None = None
    n_workers: int = 1
    species_parallel: int = 1
    val_fraction: float = 0.05
    seed: int = 42
    hint_ratio: float = 0.0
    max_n_ratio: float = 0.1
    intergenic_rate: float = 0.25
    reverse_complement: bool = False
    keep_going: bool = False
    strict: bool = False
    overwrite: bool = False

    def validate(self) -> BakeConfig:
        """Check every value; returns self.

        Raises:
            ConfigError: a missing required path or a value out of range, naming the flag.
        """
        for name in ("raw_dir", "output_dir", "tokenizer"):
            if not getattr(self, name):
                raise ConfigError(f"--{name} is required (as a flag or in --config)")
        if isinstance(self.species, str):
            self.species = [s for s in self.species.split(",") if s.strip()]
        if isinstance(self.species_taxa, str):
            self.species_taxa = [s for s in self.species_taxa.split(",") if s.strip()]
        if self.species_taxa is not None:
            if not all(isinstance(s, str) for s in self.species_taxa):
                raise ConfigError(f"species_taxa must be a list of NAME=TAXON, got {self.species_taxa!r}")
            parse_taxa_assignments(self.species_taxa)  # the NAME=TAXON form; taxa checked at bake
        if self.species is not None:
            if not all(isinstance(s, str) for s in self.species):
                raise ConfigError(f"species must be a list of folder names, got {self.species!r}")
            self.species = [s.strip() for s in self.species if s.strip()]
            if not self.species:
                raise ConfigError("--species names no species; pass folder names such as --species yeast,fly")
        checks: list[tuple[str, bool, str]] = [
            ("window_size", 1 <= self.window_size <= MAX_WINDOW_SIZE, f"an integer in 1..{MAX_WINDOW_SIZE}"),
            ("overlap_fraction", 0.0 <= self.overlap_fraction < 1.0, "in [0, 1)"),
            ("n_workers", self.n_workers >= 1, "at least 1"),
            ("species_parallel", self.species_parallel >= 1, "at least 1"),
            ("val_fraction", 0.0 <= self.val_fraction < 1.0, "in [0, 1)"),
            ("hint_ratio", 0.0 <= self.hint_ratio <= 1.0, "in [0, 1]"),
            ("max_n_ratio", 0.0 <= self.max_n_ratio <= 1.0, "in [0, 1]"),
            ("intergenic_rate", 0.0 <= self.intergenic_rate <= 1.0, "in [0, 1]"),
        ]
        for name, ok, wanted in checks:
            if not ok:
                raise ConfigError(f"--{name} {getattr(self, name)!r} is out of range; it must be {wanted}")
        return self

    def manifest_view(self) -> dict[str, Any]:
        """The settings that determine the output (execution-only ones left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in EXECUTION_ONLY}


def resolve_bake_config(config_file: str | Path | None, flags: dict[str, Any]) -> BakeConfig:
    """Defaults < ``config_file`` < ``flags`` (flags left at None are "not given").

    Raises:
        ConfigError: the file is unreadable, has an unknown key or a mistyped value, or a value is
            out of range.
    """
    from genoforge.config import config_section, load_toml_config, resolve_config

    file_values = config_section(load_toml_config(config_file), "bake") if config_file else {}
    config, _ = resolve_config(BakeConfig(), file_values, flags, file_path=config_file)
    return config.validate()


__all__ = ["EXECUTION_ONLY", "BakeConfig", "resolve_bake_config"]
