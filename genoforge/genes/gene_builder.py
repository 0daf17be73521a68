"""Relations between the rows of gene models, and the models they form.

:class:`GeneModelBuilder` indexes the gene-model rows of one file (IDs, children, Parents that no
row defines, IDs used by rows of different features), refuses Parent cycles, and yields each
model in file order: a :class:`~genoforge.genes.gene_models.Transcript` (built by
:func:`~genoforge.genes.transcript_build.build_transcript`) or a
:class:`~genoforge.genes.gene_models.RegionFeature`, recording every skip on the
:class:`~genoforge.genes.gene_models.Annotation`. The rules are in :mod:`genoforge.genes.annotation`.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from genoforge.errors import GffFormatError
from genoforge.genes import inventory as inv
from genoforge.genes.gene_models import (
    SKIP_DUPLICATE_ID,
    SKIP_ORPHAN,
    Annotation,
    RegionFeature,
    Transcript,
)
from genoforge.genes.gene_types import (
    GENE_TYPES,
    IMPLIED_TYPES,
    NON_PART_TYPES,
    PART_TYPES,
    RNA_BIOTYPES,
    STANDALONE_TYPES,
    TRANSCRIPT_TYPES,
    biotype_attribute,
)
from genoforge.genes.gff3 import Feature
from genoforge.genes.transcript_build import ModelSkip, build_transcript, check_inside


def _same_feature(first: Feature, row: Feature) -> bool:
    """Whether two rows with one ID are parts of one feature: a discontinuous part (CDS over
    several rows) agrees on type, seqid, strand and Parent; a gene, transcript or stand-alone
    feature must be the same row again (two of them at other coordinates are two features)."""
    if (row.type.lower(), row.seqid, row.strand, row.parents) != (
        first.type.lower(),
        first.seqid,
        first.strand,
        first.parents,
    ):
        return False
    return row.type.lower() in PART_TYPES or (row.start, row.end) == (first.start, first.end)


class GeneModelBuilder:
    """Relations between the rows of gene models: ID index, children, and the models they form.

    Only gene-model rows (gene, transcript, part and stand-alone types; parts only under a
    Parent) take part; every other row is counted as ignored before any ID is looked at, so
    evidence rows can reuse IDs freely. Skips go to ``annotation.record_skip``.
    """

    def __init__(self, path: str | Path, rows: list[Feature], annotation: Annotation):
        self.path = path
        self.annotation = annotation
        all_ids = {row.id for row in rows if row.id is not None}
        # IDs that a gene model can hang from: genes, transcripts, stand-alone features.
        model_ids = {
            row.id for row in rows if row.id is not None and row.type.lower() in NON_PART_TYPES
        }
        self.model_rows: list[Feature] = []
        for row in rows:
            kind = row.type.lower()
            if kind in NON_PART_TYPES:
                self.model_rows.append(row)
            elif kind in PART_TYPES:
                if not row.parents:
                    annotation.record_skip(
                        f"{row.type} without Parent", row.line,
                        f"{row.type} without Parent belongs to no gene model; add Parent=TRANSCRIPT",
                    )
                elif any(p in model_ids or p not in all_ids for p in row.parents):
                    self.model_rows.append(row)
                # else: a part of rows genoforge does not model (a miRNA's exon): counted there
            elif kind not in IMPLIED_TYPES:
                annotation.record_skip(
                    f"unsupported type {row.type}", row.line,
                    f"{row.type} rows are not part of a gene model genoforge writes",
                )
        self.by_id: dict[str, list[Feature]] = {}
        # ID -> (first row, a later row that is not part of the same feature)
        self.duplicates: dict[str, tuple[Feature, Feature]] = {}
        for row in self.model_rows:
            if row.id is None:
                continue
            same = self.by_id.setdefault(row.id, [])
            if same and row.id not in self.duplicates and not _same_feature(same[0], row):
                self.duplicates[row.id] = (same[0], row)
            same.append(row)
        self.children: dict[str, list[Feature]] = defaultdict(list)
        # Keyed by id(row), not by line: a GTF transcript or gene row that the file left out is
        # made up with the line of its first part (genoforge.genes.gtf), so lines can repeat.
        self.model_parents: dict[int, tuple[str, ...]] = {}  # row -> Parents that are models
        self.orphan_of: dict[int, str] = {}  # row -> its first Parent that no row defines
        for row in self.model_rows:
            parents = []
            for parent in row.parents:
                if parent in self.by_id:
                    parents.append(parent)
                    self.children[parent].append(row)
                elif parent not in all_ids:
                    self.orphan_of.setdefault(id(row), parent)
                # else: a Parent that is a row of no gene model (a TAIR protein row): dropped
            self.model_parents[id(row)] = tuple(parents)
        self._check_cycles()

    # -- relations ---------------------------------------------------------------------------

    def _check_cycles(self) -> None:
        """A Parent chain that comes back to itself is an error (no model can be built from it)."""
        parents_of: dict[str, set[str]] = defaultdict(set)
        line_of: dict[tuple[str, str], int] = {}
        for row in self.model_rows:
            if row.id is None or row.id in self.duplicates:
                continue
            for parent in self.model_parents[id(row)]:
                if parent in self.duplicates:
                    continue
                parents_of[row.id].add(parent)
                line_of.setdefault((row.id, parent), row.line)
        done: set[str] = set()
        for start in sorted(parents_of):
            if start in done:
                continue
            path: list[str] = []
            on_path: set[str] = set()
            stack: list[tuple[str, list[str]]] = [(start, sorted(parents_of[start]))]
            path.append(start)
            on_path.add(start)
            while stack:
                node, pending = stack[-1]
                if not pending:
                    stack.pop()
                    path.pop()
                    on_path.discard(node)
                    done.add(node)
                    continue
                parent = pending.pop()
                if parent in on_path:
                    cycle = path[path.index(parent):] + [parent]
                    raise GffFormatError(
                        f"Parent cycle {' -> '.join(repr(c) for c in cycle)}: a feature cannot "
                        "be its own ancestor; fix the Parent attributes",
                        self.path,
                        line_of[(node, parent)],
                    )
                if parent in done or parent not in parents_of:
                    continue
                stack.append((parent, sorted(parents_of[parent])))
                path.append(parent)
                on_path.add(parent)

    def _duplicate(self, feature_id: str) -> ModelSkip:
        first, other = self.duplicates[feature_id]
        return ModelSkip(
            SKIP_DUPLICATE_ID,
            other.line,
            f"duplicate ID {feature_id!r} (first used on line {first.line} by a {first.type} at "
            f"{first.seqid}:{first.start + 1}-{first.end}, here a {other.type} at "
            f"{other.seqid}:{other.start + 1}-{other.end}); give each feature its own ID (rows of "
            "one discontinuous feature must agree on type, seqid, strand and Parent)",
        )

    def _orphan(self, row: Feature) -> ModelSkip | None:
        parent = self.orphan_of.get(id(row))
        if parent is None:
            return None
        return ModelSkip(
            SKIP_ORPHAN,
            row.line,
            f"orphan Parent {parent!r}: no row has ID={parent}; add the parent row or fix the "
            "Parent attribute",
        )

    def models(self):
        """Yield Transcript and RegionFeature models in file order; record what is skipped."""
        seen_ids: set[str] = set()
        counted_orphans: set[str] = set()
        record = self.annotation.record_skip
        for row in self.model_rows:
            if row.id is not None and row.id not in self.duplicates:
                if row.id in seen_ids:
                    continue  # a later row of a multi-row feature: handled with its first row
                seen_ids.add(row.id)
            kind = row.type.lower()
            try:
                if kind in TRANSCRIPT_TYPES:
                    yield self._transcript(row, kind)
                elif kind in GENE_TYPES:
                    yield from self._gene(row, kind)
                elif kind in STANDALONE_TYPES:
                    if row.id in self.duplicates:
                        raise self._duplicate(row.id)
                    strand = row.strand if row.strand in ("+", "-") else "."
                    yield RegionFeature(
                        row.seqid, STANDALONE_TYPES[kind], strand, row.start, row.end, row.line
                    )
                else:  # a part: only its missing parent is counted here (once per missing ID)
                    parent = self.orphan_of.get(id(row))
                    if parent is not None and parent not in counted_orphans:
                        counted_orphans.add(parent)
                        skip = self._orphan(row)
                        assert skip is not None
                        raise skip
            except ModelSkip as skip:
                record(skip.reason, skip.line, skip.message)

    # -- transcripts ---------------------------------------------------------------------------

    def _parts(self, row: Feature) -> list[Feature]:
        if row.id is None:
            return []
        parts = [c for c in self.children.get(row.id, ()) if c.type.lower() in PART_TYPES]
        for part in parts:
            if part.id is not None and part.id in self.duplicates:
                raise self._duplicate(part.id)
        return parts

    def _gene(self, row: Feature, kind: str):
        has_transcripts = row.id is not None and any(
            c.type.lower() in TRANSCRIPT_TYPES for c in self.children.get(row.id, ())
        )
        has_parts = row.id is not None and any(
            c.type.lower() in PART_TYPES for c in self.children.get(row.id, ())
        )
        if has_transcripts and not has_parts:
            return  # its transcripts are built from their own rows
        if row.id in self.duplicates:
            raise self._duplicate(row.id)
        orphan = self._orphan(row)
        if orphan is not None:
            raise orphan
        parts = self._parts(row)
        gene_biotype = GENE_TYPES[kind]
        if parts:
            has_cds = any(p.type.lower() == "cds" for p in parts)
            biotype = gene_biotype or (inv.PROTEIN_CODING if has_cds else biotype_attribute(row))
            if biotype is None:
                raise ModelSkip(f"{row.type} with exons but no CDS or known biotype", row.line)
            yield build_transcript(row, parts, biotype, gene_id=row.id or f"line{row.line}")
            return
        if gene_biotype == inv.PSEUDOGENE:
            yield build_transcript(row, [], inv.PSEUDOGENE, gene_id=row.id or f"line{row.line}")
            return
        raise ModelSkip(f"{row.type} without transcripts or parts", row.line)

    def _transcript(self, row: Feature, kind: str) -> Transcript:
        if row.id is not None and row.id in self.duplicates:
            raise self._duplicate(row.id)
        orphan = self._orphan(row)
        if orphan is not None:
            raise orphan
        parents = self.model_parents[id(row)]
        for parent in parents:
            if parent in self.duplicates:
                raise self._duplicate(parent)
        parent_rows = [self.by_id[p][0] for p in parents]
        gene_id = parents[0] if parents else (row.id or f"line{row.line}")
        imposed = None
        for parent in parent_rows:
            imposed = imposed or GENE_TYPES.get(parent.type.lower())
            check_inside(row, parent)
        parts = self._parts(row)
        has_cds = any(p.type.lower() == "cds" for p in parts)
        if kind in RNA_BIOTYPES:
            biotype = RNA_BIOTYPES[kind]
        elif kind == "pseudogenic_transcript":
            biotype = inv.PSEUDOGENE
        elif imposed is not None:
            biotype = imposed
        elif kind == "mrna" or has_cds:
            biotype = inv.PROTEIN_CODING
        else:
            biotype = biotype_attribute(row)
            if biotype is None:
                raise ModelSkip(f"{row.type} without CDS or known biotype", row.line)
        if not parts and biotype not in RNA_BIOTYPES.values() and biotype != inv.PSEUDOGENE:
            raise ModelSkip(f"{row.type} without exons or CDS", row.line)
        return build_transcript(row, parts, biotype, gene_id)


__all__ = ["GeneModelBuilder"]
