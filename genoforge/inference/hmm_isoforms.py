"""Alternative transcripts from the structure decoder: for each gene of the Viterbi parse, the best
parse that uses a splice site the gene skips, kept as an isoform of that gene where it scores
within ``max_loss`` nats of the best parse.

Shape legend: L bases of a contig, C classes, S the head's signals (``N_SIGNALS``), K the copies of
a gene's span decoded together (the best parse's, then one per candidate site), W a copy's width.

For a gene of the parse (strand s, span [a, b)):

1. **Candidates.** The boundaries inside [a, b) where the head's donor or acceptor log-odds on s
   is at least ``min_site`` (the track's signal columns; a track without them offers none), best
   first, at most ``candidates``.
2. **Forced parses.** The span padded by ``ISOFORM_PAD`` bases each side is decoded once as it is
   and once per candidate with the candidate's site log-odds raised by ``_FORCE`` nats: the best
   path through that site, if the grammar has one (its start, stop, frame and introns all valid:
   the alternative is a complete ORF as every gene of the decoder is). All copies of a gene run in
   one batched Viterbi, each between runs of N so that no copy reads its neighbour's bases.
3. **Kept.** A forced path's loss is the unforced best score minus its own score without the
   bonus (0 for the best path itself; ``_FORCE`` where the site could not be used). The gene of
   the forced path that overlaps the original on its strand is kept as another transcript of it
   when the loss is at most ``max_loss`` and its CDS chain is new, up to ``isoforms - 1`` of them,
   the smallest losses first.

Costs: one Viterbi pass over (1 + candidates) x the gene's padded span per gene, batched; with the
defaults about 9 passes over the genic bases, so several times ``--decoder hmm``'s decoding time
on a gene-dense contig. Off unless ``predict --isoforms`` asks for more than one transcript.
"""

from __future__ import annotations

import numpy as np

from genoforge.genes.classes import N_CLASSES, N_CODE, SIGNAL_NAMES
from genoforge.genes.gene_models import cds_pieces
from genoforge.genes.structure import GeneStructureParams
from genoforge.inference.hmm import _genes, _shift, _viterbi, close_gaps
from genoforge.inference.hmm_graph import build_graph
from genoforge.inference.hmm_signals import SIGNAL_CONTEXT, Signals
from genoforge.inference.stitch import ContigAnnotation, ContigTranscript

ISOFORM_PAD = 300  # bases of context each side of a gene's span in its forced parses
ISOFORM_CANDIDATES = 8  # skipped sites tried per gene, highest head log-odds first
ISOFORM_MIN_SITE = 0.0  # head log-odds (natural log) a skipped site needs to be tried
ISOFORM_MAX_LOSS = 2.0  # nats below the best parse an alternative may score and still be kept
_FORCE = 1e3  # nats added to a candidate site: the best path uses it wherever the grammar can
_SPACER = 2 * SIGNAL_CONTEXT  # N bases between copies: no signal window reads the next copy
_SITE_COLUMNS = {strand: (SIGNAL_NAMES.index(f"donor{strand}"), SIGNAL_NAMES.index(f"acceptor{strand}"))
                 for strand in "+-"}


def add_isoforms(
    annotation: ContigAnnotation,
    codes_L: np.ndarray,
    log_probs_LC: np.ndarray,
    params: GeneStructureParams,
    *,
    isoforms: int,
    emission_weight: float,
    signal_weight: float,
    head_signal_weight: float,
    min_site: float = ISOFORM_MIN_SITE,
    max_loss: float = ISOFORM_MAX_LOSS,
    candidates: int = ISOFORM_CANDIDATES,
) -> ContigAnnotation:
    """``annotation`` (a :func:`~genoforge.inference.hmm.decode_genes` parse of the contig) with up
    to ``isoforms - 1`` alternative transcripts per gene (module docstring), same gene numbers.

    ``log_probs_LC`` is the track ``decode_genes`` read ([L, C] or [L, C + S]); the weights are
    the ones it used. A track without signal columns, or ``isoforms`` <= 1, adds nothing.
    """
    if isoforms <= 1 or log_probs_LC.shape[1] <= N_CLASSES or not annotation.transcripts:
        return annotation
    codes_L = np.asarray(codes_L, dtype=np.uint8)
    length = codes_L.size
    head_LS = log_probs_LC[:, N_CLASSES:]
    classes_LC = close_gaps(codes_L, log_probs_LC[:, :N_CLASSES])
    graph = build_graph(params)
    signals = Signals(params, signal_weight)
    prior_C = np.asarray(params.class_log_prior, dtype=np.float64)
    out: list[ContigTranscript] = []
    for gene in annotation.transcripts:
        out.append(gene)
        lo, hi = max(0, gene.start - ISOFORM_PAD), min(length, gene.end + ISOFORM_PAD)
        sites = _candidate_sites(head_LS, gene, min_site, candidates)
        if not sites:
            continue
        losses_K, genes_K = _forced_parses(
            graph, signals, prior_C, codes_L, classes_LC, head_LS, lo, hi, sites,
            emission_weight=emission_weight, head_signal_weight=head_signal_weight,
            contig_start=lo == 0, contig_end=hi == length, strand=gene.strand)
        chains = {_chain(gene)}
        ranked = sorted(((loss, alt) for loss, alt in zip(losses_K, genes_K, strict=True)
                         if alt is not None and loss <= max_loss), key=lambda x: x[0])
        for _, alt in ranked:
            if len(chains) >= isoforms:
                break
            candidate = ContigTranscript(strand=alt.strand, biotype=gene.biotype, gene=gene.gene,
                                         exons=alt.exons, cds=alt.cds, cds_phase=0)
            if _chain(candidate) in chains:
                continue
            chains.add(_chain(candidate))
            out.append(candidate)
    out.sort(key=lambda t: (t.gene, t.start, t.end))
    return ContigAnnotation(annotation.seqid, annotation.length, out, list(annotation.features))


def _chain(transcript) -> tuple[tuple[int, int], ...]:
    return tuple(cds_pieces(transcript.exons, transcript.cds))


def _candidate_sites(head_LS: np.ndarray, gene: ContigTranscript, min_site: float,
                     limit: int) -> list[tuple[int, int]]:
    """(boundary, signal column) of the gene's strand's donors and acceptors inside its span with
    head log-odds >= ``min_site``, highest first, at most ``limit``."""
    found: list[tuple[float, int, int]] = []
    for column in _SITE_COLUMNS[gene.strand]:
        values = head_LS[gene.start : gene.end, column].astype(np.float64)
        for offset in np.flatnonzero(values >= min_site):
            found.append((float(values[offset]), gene.start + int(offset), column))
    found.sort(key=lambda x: (-x[0], x[1], x[2]))
    return [(boundary, column) for _, boundary, column in found[:limit]]


def _forced_parses(graph, signals, prior_C, codes_L, classes_LC, head_LS, lo: int, hi: int,
                   sites: list[tuple[int, int]], *, emission_weight: float, head_signal_weight: float,
                   contig_start: bool, contig_end: bool, strand: str):
    """Per candidate site: (loss in nats, the forced path's gene overlapping [lo, hi)'s gene on
    ``strand``, or None). Copy 0 is the span as it is; copy k its k-th site forced."""
    width = hi - lo
    n_copies = 1 + len(sites)
    stride = width + _SPACER
    total = _SPACER + n_copies * stride
    codes = np.full(total, N_CODE, dtype=np.uint8)
    classes = np.zeros((total, classes_LC.shape[1]), dtype=np.float32)  # spacers: never decoded
    head = np.zeros((total, head_LS.shape[1]), dtype=np.float64)
    starts = [_SPACER + k * stride for k in range(n_copies)]
    for k, start in enumerate(starts):
        codes[start : start + width] = codes_L[lo:hi]
        classes[start : start + width] = classes_LC[lo:hi]
        head[start : start + width] = head_signal_weight * head_LS[lo:hi]
        if k:
            boundary, column = sites[k - 1]
            head[start + boundary - lo, column] += _FORCE
    scores = np.empty(n_copies)
    paths = _viterbi(graph, signals, codes, classes, prior_C, emission_weight, starts, width, head, 1.0,
                     scores_out=scores)
    # Copy 0 is the span unforced: only its score is used (the loss of each forced copy k).
    losses, alternatives = [], []
    for k in range(1, n_copies):
        loss = scores[0] - (scores[k] - _FORCE)
        genes = [g for g in _genes(graph, paths[k], codes_L[lo:hi], contig_start, contig_end)
                 if g.strand == strand]
        boundary = sites[k - 1][0] - lo
        holding = [g for g in genes if g.start < boundary <= g.end]
        losses.append(float(loss))
        alternatives.append(_shift(holding[0], lo) if holding else None)
    return losses, alternatives
