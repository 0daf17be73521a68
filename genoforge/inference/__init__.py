"""Prediction: genome FASTA -> windows -> constrained decoding -> stitching -> GFF3.

Modules: ``windows`` (tiling, streaming), ``decode`` (batched greedy decoding under the target
grammar, with the model's KV cache), ``stitch`` (window annotations -> one contig annotation),
``gff_writer`` (GFF3 output) and ``predict`` (the library entry point, :func:`predict_genome`),
with its settings (``predict_config``: :class:`PredictConfig`, no torch), device/dtype/batch
resolution (``device``), the generative ``predictor`` and the run record for ``--resume``
(``resume``).
"""
