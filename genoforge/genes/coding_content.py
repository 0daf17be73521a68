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
* ``noncoding``: ``4 ** (ORDER + 1)`` counts of the same over intergenic and intron bases, read on
  the ``+`` strand; the table adds each hexamer's reverse complement's count to its own, so the
  non-coding chain is that of both strands (up to the hexamers that straddle a gene's edge).

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
    context = np.zeros(n, dtype=np.int32)
    if n <= ORDER:
        return context, valid
    clean = codes < 4
    run = np.concatenate(([0], np.cumsum(clean, dtype=np.int32)))
    valid[ORDER:] = (run[ORDER + 1 :] - run[: n - ORDER]) == ORDER + 1  # bases i - ORDER .. i
    digits = np.where(clean, codes, 0).astype(np.int32)
    tail = context[ORDER:]
    for m in range(ORDER):  # context of base i: codes[i - ORDER .. i - 1], oldest first
        tail *= 4
        tail += digits[m : n - ORDER + m]
    return context, valid


def _add(counts: list[int], index: np.ndarray) -> None:
    """``counts[i] += `` the occurrences of ``i`` in ``index`` (in place)."""
    if index.size:
        added = np.bincount(index, minlength=len(counts))
        for i in np.flatnonzero(added):
            counts[int(i)] += int(added[i])


def count_coding(counts: list[int], orf: np.ndarray) -> None:
    """Add a complete ORF's bases (codes, read 5'->3' on its strand) to ``coding`` counts."""
    context, valid = _contexts(orf)
    position = np.arange(orf.size) % 3
    _add(counts, ((position * N_CONTEXTS + context) * 4 + np.minimum(orf, 3).astype(np.int32))[valid])


def count_noncoding(counts: list[int], codes: np.ndarray, noncoding: np.ndarray) -> None:
    """Add the bases of ``codes`` marked ``noncoding`` (bool per base) to ``noncoding`` counts
    (read on ``+``; :func:`log_odds_table` makes them strand-symmetric)."""
    context, valid = _contexts(codes)
    _add(counts, (context * 4 + np.minimum(codes, 3).astype(np.int32))[valid & noncoding])


def _reverse_complement_ids() -> np.ndarray:
    """For each hexamer id (``context * 4 + base``, oldest base most significant), the id of its
    reverse complement."""
    ids = np.arange(4 ** (ORDER + 1))
    out = np.zeros_like(ids)
    for j in range(ORDER + 1):  # digit j of the hexamer becomes digit ORDER - j, complemented
        digit = (ids // 4 ** (ORDER - j)) % 4
        out += (3 - digit) * 4**j
    return out


def log_odds_table(coding: list[int], noncoding: list[int]) -> np.ndarray:
    """[3, N_CONTEXTS, 4] float32: ``log P_coding(base | context, k) - log P_noncoding(base |
    context)`` (module docstring); all 0 when either count table is empty."""
    coding_n = np.asarray(coding, dtype=np.float64).reshape(3, N_CONTEXTS, 4)
    forward = np.asarray(noncoding, dtype=np.float64)
    noncoding_n = (forward + forward[_reverse_complement_ids()]).reshape(N_CONTEXTS, 4)
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
