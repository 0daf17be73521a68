"""Coding content: a three-periodic Markov chain of coding DNA against a non-coding one.

The strong HMM gene finders (GeneMark, AUGUSTUS, SNAP) score coding potential with a
fifth-order Markov chain whose tables depend on the codon position, estimated from the training
genes, against a homogeneous chain of non-coding DNA. It is cheap and species-specific, and
complements a per-base network where that network is weak (few training steps, a new species).
Here it is an optional term of the structure decoder's emissions
(:func:`genoforge.inference.structure_predict.decode_contig`, ``--content_weight``).

Counts (additive, kept in :class:`genoforge.genes.structure.StructureCounts`; flat lists so that
merging species is an element-wise sum):

* ``coding``: ``3 * 4 ** (ORDER + 1)`` counts, index ``(k * 4 ** ORDER + context) * 4 + base``:
  ``base`` at codon position ``k`` (0, 1, 2) of a complete ORF read 5'->3' on its strand (the
  spliced CDS), after the ``ORDER`` bases before it (``context`` in base 4, oldest base most
  significant);
* ``noncoding``: ``4 ** (ORDER + 1)`` counts of the same over intergenic and intron bases, on both
  strands.

The table (:func:`log_odds_table`) is ``log P_coding(base | context, k) - log P_noncoding(base |
context)`` with a pseudocount of ``PSEUDOCOUNT`` per entry spread by the lower-order frequency, so
empty counts give 0 everywhere (no say). :func:`strand_log_odds` reads it along a contig: for each
base and codon position the score of that base being at that position of a CDS on ``+`` and on
``-`` (the ``-`` scores read on the reverse complement), 0 where the base or its context holds a
base other than A/C/G/T. The chain reads the unspliced genome, so within ``ORDER`` bases after a
splice site the context is intronic: a small approximation.
"""

from __future__ import annotations

import numpy as np

ORDER = 5  # bases of context (a hexamer model)
N_CONTEXTS = 4**ORDER
CODING_SIZE = 3 * N_CONTEXTS * 4
NONCODING_SIZE = N_CONTEXTS * 4
PSEUDOCOUNT = 4.0  # per context, spread over the 4 bases by the context-free frequency
_COMPLEMENT = np.array([3, 2, 1, 0, 4], dtype=np.uint8)


def _contexts(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of each base's ``ORDER``-base context, whether the base and its context are all
    A/C/G/T); the first ``ORDER`` bases have no context (invalid)."""
    n = codes.size
    valid = np.zeros(n, dtype=bool)
    context = np.zeros(n, dtype=np.int64)
    if n <= ORDER:
        return context, valid
    clean = (codes < 4).astype(np.int64)
    # a base is scored when it and the ORDER bases before it are A/C/G/T
    window = np.convolve(clean, np.ones(ORDER + 1, dtype=np.int64))[ORDER:n]
    valid[ORDER:] = window[: n - ORDER] == ORDER + 1
    digits = np.where(codes < 4, codes, 0).astype(np.int64)
    for m in range(ORDER):  # context of base i: codes[i - ORDER .. i - 1]
        context[ORDER:] = context[ORDER:] * 4 + digits[m : n - ORDER + m]
    return context, valid


def count_coding(counts: list[int], orf: np.ndarray) -> None:
    """Add a complete ORF's bases (codes, read 5'->3' on its strand) to ``coding`` counts."""
    context, valid = _contexts(orf)
    position = np.arange(orf.size) % 3
    index = ((position * N_CONTEXTS + context) * 4 + np.minimum(orf, 3))[valid]
    for i, c in zip(*np.unique(index, return_counts=True)):
        counts[int(i)] += int(c)


def count_noncoding(counts: list[int], codes: np.ndarray, noncoding: np.ndarray) -> None:
    """Add the bases of ``codes`` marked ``noncoding`` (bool per base) to ``noncoding`` counts,
    read on both strands."""
    for seq, mask in ((codes, noncoding), (_COMPLEMENT[codes[::-1]], noncoding[::-1])):
        context, valid = _contexts(seq)
        index = (context * 4 + np.minimum(seq, 3))[valid & mask]
        for i, c in zip(*np.unique(index, return_counts=True)):
            counts[int(i)] += int(c)


def log_odds_table(coding: list[int], noncoding: list[int]) -> np.ndarray:
    """[3, N_CONTEXTS, 4] float32: ``log P_coding(base | context, k) - log P_noncoding(base |
    context)`` (module docstring); all 0 when either count table is empty."""
    coding_n = np.asarray(coding, dtype=np.float64).reshape(3, N_CONTEXTS, 4)
    noncoding_n = np.asarray(noncoding, dtype=np.float64).reshape(N_CONTEXTS, 4)
    if coding_n.sum() == 0 or noncoding_n.sum() == 0:
        return np.zeros((3, N_CONTEXTS, 4), dtype=np.float32)

    def conditional(table: np.ndarray) -> np.ndarray:
        # P(base | context) with PSEUDOCOUNT spread by the table's own base frequency
        base = table.sum(axis=-2, keepdims=True) + 1.0
        base = base / base.sum(axis=-1, keepdims=True)
        return (table + PSEUDOCOUNT * base) / (table.sum(axis=-1, keepdims=True) + PSEUDOCOUNT)

    return (np.log(conditional(coding_n)) - np.log(conditional(noncoding_n))[None]).astype(np.float32)


def strand_log_odds(codes: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([L, 3] on ``+``, [L, 3] on ``-``): the table's score of each base at codon position k of
    a CDS on each strand (``-``: the position counted 5'->3' on that strand)."""
    codes = np.asarray(codes, dtype=np.uint8)

    def one(seq: np.ndarray) -> np.ndarray:
        context, valid = _contexts(seq)
        scores = table[:, context, np.minimum(seq, 3)].T  # [L, 3]
        scores[~valid] = 0.0
        return scores

    plus = one(codes)
    minus = one(_COMPLEMENT[codes[::-1]])[::-1]
    return plus, np.ascontiguousarray(minus)
