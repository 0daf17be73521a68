"""A decoder step biased towards spliced protein-coding transcripts with a cds line.

A random decoder rarely writes them on its own (it mostly writes features), so tests of the
grammar's coding rules, head guidance and beam search decode through this bias.
"""

from __future__ import annotations

from genoforge.genes import inventory as inv
from genoforge.inference.stream import row_step

BIAS = {inv.LINE_TRANSCRIPT: 4.0, inv.PROTEIN_CODING: 8.0, inv.LINE_EXON: 6.5, inv.LINE_CDS: 6.0, inv.DOT: 8.0}


def coding_step(tokenizer, inner=row_step):
    """``inner`` (a decode step: :func:`row_step`, a FullPrefixStep, ...) with :data:`BIAS` added
    to its logits; an ``inner`` with a ``reorder`` method (beam search) keeps it."""
    ids = {tokenizer.token_to_id(token): value for token, value in BIAS.items()}

    def step(model, token_ids_B, cache, active_B):
        logits = inner(model, token_ids_B, cache, active_B).float()
        for token_id, value in ids.items():
            logits[:, token_id] += value
        return logits

    if hasattr(inner, "reorder"):
        step.reorder = inner.reorder
    return step
