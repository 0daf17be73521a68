"""``gene_structure.json``: the gene-structure counts of every baked species, and their params.

Bake writes one beside its shards; tune copies it into every model directory it exports, and
``predict --decoder hmm`` reads it there. It holds the additive :class:`StructureCounts` of each
species' *training* region (validation regions are never counted) and the species' taxon, so a
decoder can be parameterised per species, per taxon (counts summed over the taxon's species) or
pooled over everything baked:

.. code-block:: json

    {"format_version": 1,
     "species": {"fly_chr2R": {"taxon": "invertebrates", "counts": {...StructureCounts...}}, ...}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from genoforge.errors import ConfigError
from genoforge.genes.classes import network_class_log_prior
from genoforge.genes.structure import GeneStructureParams, StructureCounts

GENE_STRUCTURE_FILE = "gene_structure.json"
SET_FORMAT_VERSION = 1


@dataclass
class GeneStructureSet:
    """Per-species structure counts with their taxa (see the module docstring)."""

    counts: dict[str, StructureCounts] = field(default_factory=dict)
    taxa: dict[str, str | None] = field(default_factory=dict)

    def add(self, species: str, taxon: str | None, counts: StructureCounts) -> None:
        self.counts[species] = counts
        self.taxa[species] = taxon

    def pooled(self, species: str | None = None, taxon: str | None = None) -> StructureCounts:
        """Counts of one species, of every species of ``taxon``, or (neither) of all of them.

        Raises:
            ConfigError: an unknown species or taxon, naming the ones known.
        """
        if species is not None:
            if species not in self.counts:
                raise ConfigError(f"no gene-structure counts for species {species!r}; known: "
                                  f"{', '.join(sorted(self.counts)) or 'none'}")
            return self.counts[species]
        names = sorted(self.counts)
        if taxon is not None:
            names = [n for n in names if self.taxa.get(n) == taxon]
            if not names:
                known = sorted({t for t in self.taxa.values() if t})
                raise ConfigError(f"no baked species of taxon {taxon!r}; known taxa: {', '.join(known) or 'none'}")
        total = StructureCounts()
        for name in names:
            total = total.merge(self.counts[name])
        return total

    def params(self, species: str | None = None, taxon: str | None = None) -> GeneStructureParams:
        return self.pooled(species, taxon).to_params()

    def decoder_params(self, species: str | None = None, taxon: str | None = None) -> GeneStructureParams:
        """What ``predict --decoder hmm`` decodes with: the structure (lengths, signals) of the
        species, taxon or pool, and as class prior the one the per-base head learnt from all
        baked species (:func:`~genoforge.genes.classes.network_class_log_prior`)."""
        params = self.params(species, taxon)
        trained_on = self.pooled().class_counts
        params.class_log_prior = [float(x) for x in network_class_log_prior(trained_on)]
        return params

    def to_json(self) -> str:
        data = {
            "format_version": SET_FORMAT_VERSION,
            "species": {name: {"taxon": self.taxa.get(name), "counts": asdict(self.counts[name])}
                        for name in sorted(self.counts)},
        }
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str) -> GeneStructureSet:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{source}: not JSON ({exc.msg} at line {exc.lineno}); re-run genoforge bake") from exc
        if not isinstance(data, dict) or data.get("format_version") != SET_FORMAT_VERSION:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise ConfigError(f"{source}: gene-structure format {version!r}, this genoforge reads "
                              f"{SET_FORMAT_VERSION}; re-run genoforge bake (and tune) to rewrite it")
        result = cls()
        for name, entry in data.get("species", {}).items():
            counts = StructureCounts.from_json(json.dumps(entry["counts"]), f"{source} (species {name})")
            result.add(name, entry.get("taxon"), counts)
        return result

    def save(self, path: str | Path) -> None:
        from genoforge.io import atomic_write

        with atomic_write(Path(path)) as handle:
            handle.write(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> GeneStructureSet:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror or exc}); re-run genoforge bake") from exc
        return cls.from_json(text, str(path))
