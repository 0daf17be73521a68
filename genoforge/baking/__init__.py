"""Baking: raw genomes + annotations -> windows -> target token sequences -> packed shards.

Parsing half (this package's foundation, usable on its own):

- :mod:`genoforge.genes.fasta`   ``read_fasta()`` / ``fasta_lengths()``: streaming FASTA records.
- :mod:`genoforge.baking.gff3`    ``parse_gff3()``: strict streaming GFF3 rows (0-based half-open).
- :mod:`genoforge.baking.gtf`     ``parse_annotation()``: GFF3 or GTF (told apart by content), as
  GFF3 rows.
- :mod:`genoforge.baking.genes`   ``load_annotation()``: gene models per seqid (Transcript,
  RegionFeature) plus counts of what was skipped and why.
- :mod:`genoforge.baking.target`  one window's annotation <-> target tokens <-> target text,
  and GFF3 rows back in genome coordinates (the format is specified in docs/target-format.md).
- :mod:`genoforge.baking.grammar` the target grammar as an automaton for constrained decoding.
"""
