"""Evaluation: score a predicted gene annotation against a reference (``genoforge eval``).

- :mod:`genoforge.evaluation.compare`  ``evaluate()``: the four levels, their exact definitions
  and how they differ from gffcompare and ``gt eval`` (module docstring).
- :mod:`genoforge.evaluation.metrics`  ``LevelScore`` and the per-level computations.
- :mod:`genoforge.evaluation.stops`    stop-codon normalisation against the genome.
"""

from genoforge.evaluation.compare import LEVELS, EvalResult, compare_transcripts, evaluate
from genoforge.evaluation.metrics import LevelScore

__all__ = ["LEVELS", "EvalResult", "LevelScore", "compare_transcripts", "evaluate"]
