"""Baking: raw genomes + annotations -> windows -> target token sequences -> packed shards.

Parsing half (this package's foundation, usable on its own):

- :mod:`genoforge.genes.fasta`   ``read_fasta()`` / ``fasta_lengths()``: streaming FASTA records.
- :mod:`genoforge.genes.gff3`    ``parse_gff3()``: strict streaming GFF3 rows (0-based half-open).
- :mod:`genoforge.genes.gtf`     ``parse_annotation()``: GFF3 or GTF (told apart by content), as
  GFF3 rows.
- :mod:`genoforge.genes.annotation`   ``load_annotation()``: gene models per seqid (Transcript,
  RegionFeature) plus counts of what was skipped and why; the models themselves are in
  :mod:`~genoforge.genes.gene_models`, the rules in :mod:`~genoforge.genes.gene_types`,
  :mod:`~genoforge.genes.gene_builder` and :mod:`~genoforge.genes.transcript_build`.
- :mod:`genoforge.genes.target`  one window's annotation <-> target tokens <-> target text
  (the format is specified in docs/target-format.md); the window records in
  :mod:`~genoforge.genes.window_models`, their GFF3 rows in genome coordinates in
  :mod:`~genoforge.genes.target_gff3`.
- :mod:`genoforge.genes.grammar` the target grammar as an automaton for constrained decoding.

Bake half (``genoforge bake``, :mod:`genoforge.baking.bake` runs it): settings
(:mod:`~genoforge.baking.config`), species folders (:mod:`~genoforge.genes.discovery`), one
species (:mod:`~genoforge.baking.species`, chunks of windows in workers:
:mod:`~genoforge.baking.chunks`), the process pool (:mod:`~genoforge.baking.pool`), the outputs
(:mod:`~genoforge.baking.outputs`): ``.packed`` shards (:mod:`~genoforge.genes.packed_format`: format,
reader, writer) and the manifest (:mod:`~genoforge.genes.manifest`).
"""
