"""The domain layer: the formats and domain types every stage shares.

FASTA (:mod:`~genoforge.genes.fasta`, :mod:`~genoforge.genes.fasta_lengths`); GFF3 and GTF rows
(:mod:`~genoforge.genes.gff3`, :mod:`~genoforge.genes.gtf`) and the gene models built from them
(:func:`genoforge.genes.annotation.load_annotation`, :mod:`~genoforge.genes.gene_models`); the token
inventory (:mod:`~genoforge.genes.inventory`); the target codec and grammar
(:mod:`~genoforge.genes.target`, :mod:`~genoforge.genes.window_models`,
:mod:`~genoforge.genes.target_gff3`, :mod:`~genoforge.genes.grammar`); packed shards and the bake
manifest (:mod:`~genoforge.genes.packed_format`, :mod:`~genoforge.genes.packed_reader`,
:mod:`~genoforge.genes.manifest`); the training/validation split and species folders
(:mod:`~genoforge.genes.split`, :mod:`~genoforge.genes.discovery`); per-base classes and the
gene-structure model (:mod:`~genoforge.genes.classes`, :mod:`~genoforge.genes.structure`).

Every stage may import this package; it imports no stage (only ``genoforge.errors``,
``genoforge.io`` and the package version).
"""
