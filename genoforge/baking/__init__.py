"""Baking: raw genomes + annotations -> windows -> target token sequences -> packed shards.

This package only bakes (``genoforge bake``, :func:`genoforge.baking.bake.bake` runs it); no stage
imports it. The formats and domain types it reads and writes (FASTA, GFF3/GTF and gene models, the
target codec, the shard format and the manifest, the split, species folders) are in
:mod:`genoforge.genes`.

Settings (:mod:`~genoforge.baking.config`, the taxa table in :mod:`~genoforge.baking.taxa`), one
species (:mod:`~genoforge.baking.species`, chunks of windows in workers:
:mod:`~genoforge.baking.chunks`; the windows in :mod:`~genoforge.baking.windows`, intron hints in
:mod:`~genoforge.baking.hints`, reverse-complement copies in :mod:`~genoforge.baking.reverse`), the
process pool (:mod:`~genoforge.baking.pool`), the outputs (:mod:`~genoforge.baking.outputs`:
``.packed`` shards written by :mod:`~genoforge.baking.packed_writer`, and the manifest), and
``genoforge bake inspect`` (:mod:`~genoforge.baking.inspect`).
"""
