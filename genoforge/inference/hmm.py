"""Viterbi gene-structure decoding of a per-base class-probability track.

Shape legend: L bases of a contig, C the ``N_CLASSES`` = 17 classes, B chunks decoded together,
T positions of a chunk, N positions of a block, S decoder states, J delayed (min-intron) edges,
K in-edges per state (padded), G signal columns.

The network gives ``log P(class | base)`` for every base; :func:`decode_genes` finds the single
best path through a gene-structure state machine and writes its genes. Every CDS it writes is a
complete ORF by construction: ATG first, one stop codon last (TAA/TAG/TGA), length a multiple of
3, no in-frame stop anywhere else (within an exon or across an intron), and every intron GT-AG,
GC-AG or AT-AC, at least ``params.min_intron`` long. The constraints are hard edges of the
machine, so random weights give valid (if meaningless) genes too.

**States** (forward strand; ``X`` is an intron type = family x memory, see below):

============  =======  ==========================================================================
state         class    role
============  =======  ==========================================================================
IG            0        intergenic, shared by both strands
UTR5          utr5+    optional 5' UTR (one unspliced exon), before the start codon
START0-2      cds+0-2  the ATG; entered (from IG or UTR5) only where ``seq[t:t+3] == "ATG"``
E0, E1, E2    cds+p    coding base at codon position p
E1_T          cds+1    codon position 1 right after a phase-1 intron whose remembered base is T
                       (may itself be a one-base exon: its donors lead to the 2T* / 2o types)
YA0-2, YB0-2  cds+p    the first and second base of an exon entered at an acceptor, where
                       ``params.min_internal_exon`` is 2 (YA only) or 3: no donor leaves them,
                       so no internal exon is shorter (a stop may follow, so last exons may be);
                       then YA1_T takes E1_T's role
ENTRY_X       intron   first intron base (after the donor); then a fixed chain to INTRON_X
INTRON_X      intron   the rest of the intron (self-loop), left at the acceptor
INTRONL_X     intron   the same for long introns, where the params give two intron durations
                       (``intron_length_mix``): ENTRY_X leads to INTRON_X or INTRONL_X with the
                       mixture's weights, each loops with its own mean
STOP0-2       cds+0-2  the terminal stop codon (contiguous), entered where ``seq[t:t+3]`` is a
                       stop: from E2, or from a phase-0 intron (a last exon of the stop alone)
UTR3          utr3+    optional 3' UTR (one unspliced exon), after the stop
============  =======  ==========================================================================

Intron types remember the bases of the codon the intron splits, so that no in-frame stop can
form across it: phase 0 (``0``, after E2), phase 1 after E0 remembering whether that base was T
(``1T``, ``1o``), phase 2 after E1 remembering its two bases (``2TA``, ``2TG``, ``2o``); each in
two families: GT-AG (donor GT, or GC at the GC-AG penalty) and AT-AC (donor AT, acceptor AC).
One more GT-AG type, ``0S``, follows a first exon that is the start codon alone (START2 ->
ENTRY): it resumes at E0 only, so no CDS is ATG | intron | stop. That is 13 types, 26 intron
states per strand. A codon is checked when the state of its third
base is entered: E1 -> E2 forbids a stop ``seq[t-2:t+1]`` (after a ``1o`` intron ``seq[t-2]``
is the acceptor's G/C, so the check is void, as it should be); E1_T -> E2 forbids
``T + seq[t-1] + seq[t]``; INTRON_2TA -> E2 forbids ``seq[t]`` in A/G, INTRON_2TG -> E2 forbids A.
Not modelled: start or stop codons split by an intron, an AT-AC intron right after a start-codon
-only first exon, spliced UTRs, and two genes with no intergenic base between them (every gene
leaves and enters through IG).

Signals (``t`` = the first base of the state entered): donor exon -> ENTRY_X at ``t`` needs
``seq[t:t+2]`` = GT/GC (GT-AG family) or AT (AT-AC); acceptor INTRON_X -> exon at ``t`` needs
``seq[t-2:t]`` = AG or AC respectively. The minus strand is the mirror image: a minus state for
every forward state (class + 8, codon position and phase counted 5'->3' on the minus strand, as
in :mod:`genoforge.genes.classes`), every forward edge reversed, and every signal checked on the
reverse complement; a minus gene scores exactly what its reverse complement scores on +.

**Lengths.** Geometric durations from the params' means: IG, UTR5, UTR3 and INTRON_X loop with
``1 - 1/mean``. A coding base ends its exon with probability ``1/mean_coding_exon``, split
between a donor (``1 - 1/exons_per_gene``) and, at a codon end, the stop. Minimum intron
length: ENTRY_X leads through a chain of ``min_intron - 2`` positions into INTRON_X, which must
be entered before the acceptor, so introns are >= ``min_intron``. The chain is not a row of
states: it is one *delayed edge* ENTRY_X(t - m) -> INTRON_X(t), ``m = min_intron - 1``, whose
score is ENTRY_X's score at ``t - m`` plus the intron emissions in between (prefix sums and a
ring buffer of m values per chunk). Minimum CDS: START, one codon, STOP (9 bp). The exit
probabilities of START2, E* and a phase-0 intron are split between their edges (donor vs. the
next coding base; a stop-only exon takes ``q_stop`` of a phase-0 acceptor).

**Scores.** A state at base ``t`` emits ``emission_weight * (log_probs_LC[t, c] -
params.class_log_prior[c])`` for its class ``c``: the network's posterior over the class prior
is the scaled likelihood of a hybrid HMM (Bourlard & Morgan 1994); a log probability of -inf
or NaN counts as ``LOG_PROB_FLOOR``. Transitions add their log
probability, and signal edges add ``signal_weight`` times the PWM log-odds of the signal's
non-fixed window bases (:mod:`genoforge.genes.structure`), plus, at a donor, the log fraction of
its intron class (GC-AG and AT-AC are the non-canonical penalty; GT-AG pays log of its own
fraction, about 0). Where the track also carries the head's signal log-odds (columns ``K..K+S``),
each signal edge adds ``head_signal_weight`` times the log-odds of its signal at that boundary
(:mod:`~genoforge.inference.hmm_signals`).

**Single-exon genes** shorter than ``params.min_single_cds`` (the 1st percentile of the baked
single-exon genes' CDS lengths, 0 = no limit) are not written: the path keeps them (a Viterbi
path cannot count a gene's length), the chunk's gene list drops them.

**Chunks.** A contig is decoded in chunks of ``chunk`` bases, consecutive chunks sharing at
least ``overlap``, all of one length (the last chunk is shifted to end at the contig end), B of
them at a time. Each chunk may begin and end in any state. A gene is written from the chunk
whose *core* (the chunk up to the midpoints of its overlaps with its neighbours) holds its
midpoint; genes cut by a chunk's edge are dropped in that chunk, and genes cut by the contig's
ends are dropped too (never written as partial). A gene whose CDS begins or ends at the contig's
very first or last base (its start or stop codon there, no UTR beyond) is complete and kept. A
gene longer than about ``overlap / 2`` on either side of its midpoint may therefore be lost at a
chunk boundary. Where chunks disagree and two kept genes overlap, the one farther from its
chunk's edges wins.

Implementation (the state machine in :mod:`~genoforge.inference.hmm_graph`, the signal columns in
:mod:`~genoforge.inference.hmm_signals`, the Viterbi here): numpy, vectorised over states and chunks; a Python loop over positions only.
Every step gathers the candidate scores of all in-edges in one call (signal sources carry their
per-position signal column, built per block of positions), adds the transitions' log
probabilities, keeps each state's best and its edge index (uint8 backpointers, B x T x S bytes:
the memory bound). The step is numpy call overhead, about 12 calls (see :func:`_viterbi`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from genoforge.genes.classes import (
    INTERGENIC,
    N_CLASSES,
    N_CODE,
    N_SIGNALS,
    encode_bases,
)
from genoforge.genes.gene_models import ExonChain
from genoforge.genes.inventory import PROTEIN_CODING
from genoforge.genes.structure import GeneStructureParams
from genoforge.inference.hmm_graph import (
    KIND_CODING,
    KIND_IG,
    KIND_INTRON,
    A,
    C,
    DecoderGraph,
    G,
    T,
    build_graph,
)
from genoforge.inference.hmm_signals import Signals, block_columns
from genoforge.inference.stitch import ContigAnnotation, ContigTranscript

DEFAULT_CHUNK = 150_000
DEFAULT_OVERLAP = 40_000
DEFAULT_MAX_BATCH = 12  # chunks per pass: backpointers take max_batch * chunk * S bytes
# A run of this many N (or other non-ACGT) bases is an assembly gap: no gene model crosses it,
# since neither its length nor its sequence is known.
ASSEMBLY_GAP = 10
_GAP_LOG_PROB = -1e4  # a genic class inside a gap (finite: scaled and summed with others)


def close_gaps(codes_L: np.ndarray, log_probs_LC: np.ndarray, min_run: int = ASSEMBLY_GAP) -> np.ndarray:
    """``log_probs_LC`` with every class but intergenic ruled out inside runs of at least
    ``min_run`` unknown bases (``codes_L`` == N); the input itself when there is none."""
    unknown = np.concatenate([[False], codes_L >= N_CODE, [False]])
    edges = np.flatnonzero(unknown[1:] != unknown[:-1])
    runs = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_run]
    if not runs:
        return log_probs_LC
    closed = np.array(log_probs_LC, copy=True)
    genic = [c for c in range(log_probs_LC.shape[1]) if c != INTERGENIC]
    for a, b in runs:
        closed[a:b, genic] = _GAP_LOG_PROB
        closed[a:b, INTERGENIC] = 0.0
    return closed
BLOCK = 256  # positions whose edge scores are built at once (N x B x S x K float64)
SIGNAL_BLOCK = 8192  # positions whose signal columns are built at once (B x U x G float64)
# -inf (a posterior of exactly 0) and NaN count as this log probability: the intron prefix sums
# must stay finite (-inf - -inf is NaN), and about float32's smallest positive value is no loss.
LOG_PROB_FLOOR = -104.0

# --- decoding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Gene(ExonChain):
    strand: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[int, int]


def decode_genes(
    sequence: str | np.ndarray,
    log_probs_LC: np.ndarray,
    params: GeneStructureParams,
    *,
    seqid: str,
    emission_weight: float = 1.0,
    signal_weight: float = 1.0,
    head_signal_weight: float = 1.0,
    chunk: int = DEFAULT_CHUNK,
    overlap: int = DEFAULT_OVERLAP,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> ContigAnnotation:
    """The Viterbi gene models of one contig (the machine and rules are the module docstring).

    Args:
        sequence: the contig (str, or uint8 codes A0 C1 G2 T3 other 4 as ``encode_bases``).
        log_probs_LC: natural-log class posteriors per base, [L, N_CLASSES], float16/32/64; or
            [L, N_CLASSES + N_SIGNALS], the head's signal log-odds after the classes.
        params: gene-structure parameters (lengths, class priors, PWMs).
        seqid: the contig's name (the annotation's ``seqid``).
        emission_weight: scale of the network's scaled log-likelihoods.
        signal_weight: scale of the PWM log-odds at donors, acceptors, starts and stops.
        head_signal_weight: scale of the head's signal log-odds there (where the track has them).
        chunk: bases decoded per chunk; ``overlap``: bases shared by consecutive chunks
            (``overlap < chunk``); ``max_batch``: chunks decoded at once. Memory is about
            ``max_batch * chunk * 77`` bytes of backpointers.

    Returns:
        A :class:`ContigAnnotation`: one ``protein_coding`` transcript per gene, complete (never
        partial), genes numbered by start; exons are the decoded exons (UTR included), ``cds``
        the coding span (stop codon included), ``cds_phase`` 0.

    Raises:
        ValueError: ``log_probs_LC`` is not [len(sequence), N_CLASSES (+ N_SIGNALS)], or chunk/overlap/max_batch
            invalid.
    """
    codes_L = encode_bases(sequence) if isinstance(sequence, str) else np.asarray(sequence, dtype=np.uint8)
    length = int(codes_L.size)
    if log_probs_LC.shape not in ((length, N_CLASSES), (length, N_CLASSES + N_SIGNALS)):
        raise ValueError(f"log_probs_LC has shape {tuple(log_probs_LC.shape)}, expected ({length}, {N_CLASSES}) "
                         f"or ({length}, {N_CLASSES + N_SIGNALS}) for {seqid}")
    head_LS = log_probs_LC[:, N_CLASSES:] if log_probs_LC.shape[1] > N_CLASSES else None
    log_probs_LC = close_gaps(codes_L, log_probs_LC[:, :N_CLASSES])
    if not 0 <= overlap < chunk:
        raise ValueError(f"overlap {overlap} must be >= 0 and < chunk {chunk}")
    if max_batch < 1:
        raise ValueError(f"max_batch {max_batch} must be >= 1")
    annotation = ContigAnnotation(seqid, length)
    if length == 0:
        return annotation
    graph = build_graph(params)
    signals = Signals(params, signal_weight)
    prior_C = np.asarray(params.class_log_prior, dtype=np.float64)

    width = min(chunk, length)
    step = chunk - overlap
    starts = [0]
    while starts[-1] + width < length:
        starts.append(min(starts[-1] + step, length - width))
    cores = []
    for i, s in enumerate(starts):
        lo = 0 if i == 0 else (s + starts[i - 1] + width) // 2
        hi = length if i == len(starts) - 1 else (starts[i + 1] + s + width) // 2
        cores.append((lo, hi))

    candidates: list[tuple[int, _Gene]] = []  # (distance to the chunk edge, gene)
    for first in range(0, len(starts), max_batch):
        batch = starts[first : first + max_batch]
        paths = _viterbi(graph, signals, codes_L, log_probs_LC, prior_C, emission_weight, batch, width,
                         head_LS, head_signal_weight)
        for b, segments in enumerate(paths):
            offset = batch[b]
            lo, hi = cores[first + b]
            chunk_codes = codes_L[offset : offset + width]
            for gene in _genes(graph, segments, chunk_codes, offset == 0, offset + width == length):
                if len(gene.exons) == 1 and gene.cds[1] - gene.cds[0] < params.min_single_cds:
                    continue  # shorter than the species' shortest single-exon genes
                gene = _shift(gene, offset)
                if lo <= (gene.start + gene.end) // 2 < hi:
                    margin = min(gene.start - offset, offset + width - gene.end)
                    candidates.append((margin, gene))
    kept: list[_Gene] = []
    kept_spans: list[tuple[int, int]] = []  # sorted, disjoint
    for _, gene in sorted(candidates, key=lambda x: (-x[0], x[1].start)):
        at = bisect.bisect_left(kept_spans, (gene.start, gene.end))
        if (at > 0 and kept_spans[at - 1][1] > gene.start) or (at < len(kept_spans) and kept_spans[at][0] < gene.end):
            continue
        kept_spans.insert(at, (gene.start, gene.end))
        kept.append(gene)
    for number, gene in enumerate(sorted(kept, key=lambda g: (g.start, g.end))):
        annotation.transcripts.append(ContigTranscript(
            strand=gene.strand, biotype=PROTEIN_CODING, gene=number, exons=gene.exons,
            cds=gene.cds, cds_phase=0))
    return annotation


def _shift(gene: _Gene, offset: int) -> _Gene:
    return _Gene(gene.strand, tuple((s + offset, e + offset) for s, e in gene.exons),
                 (gene.cds[0] + offset, gene.cds[1] + offset))


def _viterbi(graph: DecoderGraph, signals: Signals, codes_L: np.ndarray, log_probs_LC: np.ndarray,
             prior_C: np.ndarray, emission_weight: float, starts: list[int], width: int,
             head_LS: np.ndarray | None = None, head_weight: float = 0.0,
             scores_out: np.ndarray | None = None) -> list[list[tuple[int, int, int]]]:
    """Best path of each chunk ``[start, start + width)``: segments (start, end, state), in order;
    ``scores_out`` ([B], where given) receives each chunk's best path score.

    Everything is chunk-minor ([..., B]). The states come in three in-degree groups (one edge,
    two, more; contiguous, in that order) whose candidates share one buffer, so a step is one
    gather and one add of the edges' log probabilities for all of them; then a group of one edge
    is a sum, of two a ``maximum`` and a ``greater``, the wide one a ``max`` and an ``argmax``
    over its slot-major [K, N, B] block. The per-step cost is numpy call overhead (the arrays
    hold about a thousand values), so the step makes as few calls as it can (12), in the same
    arithmetic order as ever: ((source + signal) + log p), best, + emission.
    """
    n_chunks, n_states, n_delays = len(starts), graph.n_states, graph.delay_src_J.size
    m = graph.delay
    class_S, delay_src, delay_dst = graph.class_S, graph.delay_src_J, graph.delay_dst_J
    sig_src, sig_col = graph.sig_src_E, graph.sig_col_E
    n_sig = sig_src.size
    # The step's sources: [state scores, delayed sources, signal sources] (see DecoderGraph).
    ext_XB = np.full((n_states + n_delays + n_sig, n_chunks), -np.inf)
    v_SB = ext_XB[:n_states]
    delayed_JB = ext_XB[n_states : n_states + n_delays]
    signal_EB = ext_XB[n_states + n_delays :]
    ring_MJB = np.full((m, n_delays, n_chunks), -np.inf)  # delayed source's score minus prefix
    rings = list(ring_MJB)
    # The next step's signal sources and this step's delayed sources, gathered in one call.
    back_src = np.concatenate([sig_src, delay_src])
    back_XB = np.empty((back_src.size, n_chunks))
    back_sig, back_delay = back_XB[:n_sig], back_XB[n_sig:]
    bp_TSB = np.zeros((width, n_states, n_chunks), dtype=np.uint8)  # one-edge states stay 0

    assert [k for _, _, k in graph.groups][:2] == [1, 2] and len(graph.groups) == 3
    (lo1, hi1, _), (lo2, hi2, _), (lo3, hi3, k3) = graph.groups
    n1, n2, n3 = hi1 - lo1, hi2 - lo2, hi3 - lo3
    in_src, in_lp = graph.in_src_SK, graph.in_lp_SK
    src_all = np.concatenate([in_src[lo1:hi1, 0], in_src[lo2:hi2, :2].T.ravel(), in_src[lo3:hi3, :k3].T.ravel()])
    lp_all = np.concatenate([in_lp[lo1:hi1, 0], in_lp[lo2:hi2, :2].T.ravel(), in_lp[lo3:hi3, :k3].T.ravel()])[:, None]
    cand_XB = np.empty((src_all.size, n_chunks))
    c_one = cand_XB[:n1]
    c_two0, c_two1 = cand_XB[n1 : n1 + n2], cand_XB[n1 + n2 : n1 + 2 * n2]
    c_wide = cand_XB[n1 + 2 * n2 :].reshape(k3, n3, n_chunks)
    arg_NNB = np.empty((BLOCK, n3, n_chunks), dtype=np.intp)  # the wide group's backpointers
    v_one, v_two, v_wide, v_many = v_SB[lo1:hi1], v_SB[lo2:hi2], v_SB[lo3:hi3], v_SB[lo2:hi3]
    bp_two_TNB, bp_wide_TNB = bp_TSB[:, lo2:hi2], bp_TSB[:, lo3:hi3]

    prefix_JB = np.zeros((n_delays, n_chunks))  # delayed edges' intron emissions summed through t
    prior_C1 = prior_C[:, None]
    delay_class_J = class_S[delay_dst]
    add, subtract, maximum, greater = np.add, np.subtract, np.maximum, np.greater
    take_ext, take_v = ext_XB.take, v_SB.take
    wide_max, wide_argmax = c_wide.max, c_wide.argmax

    for u0 in range(0, width, SIGNAL_BLOCK):
        un = min(SIGNAL_BLOCK, width - u0)
        sig_UEB = np.empty((un, n_sig, n_chunks))
        for b, s in enumerate(starts):
            sig_UEB[:, :, b] = block_columns(signals, codes_L, s + u0, s + u0 + un, head_LS, head_weight)[sig_col].T
        for t0 in range(u0, u0 + un, BLOCK):
            n = min(BLOCK, u0 + un - t0)
            em_NCB = np.stack([log_probs_LC[s + t0 : s + t0 + n] for s in starts], axis=2).astype(np.float64)
            np.fmax(em_NCB, LOG_PROB_FLOOR, out=em_NCB)
            em_NCB -= prior_C1
            em_NCB *= emission_weight
            em_NSB = em_NCB.take(class_S, axis=1)
            em_one_NNB, em_many_NNB = em_NSB[:, lo1:hi1], em_NSB[:, lo2:hi3]
            sig_NEB = sig_UEB[t0 - u0 : t0 - u0 + n]
            prefix_NJB = np.empty((n + 1, n_delays, n_chunks))
            prefix_NJB[0] = prefix_JB
            np.cumsum(em_NCB[:, delay_class_J], axis=0, out=prefix_NJB[1:])
            prefix_NJB[1:] += prefix_JB
            prefix_JB = prefix_NJB[n].copy()
            if t0 == 0:
                v_SB[:] = em_NSB[0]
                arg_NNB[0] = 0
            # Per-step views come from iterating the block arrays (cheaper than indexing them).
            steps = zip(range(t0, t0 + n), prefix_NJB[:-1], prefix_NJB[1:], sig_NEB, em_one_NNB, em_many_NNB,
                        bp_two_TNB[t0 : t0 + n], arg_NNB)
            for t, prefix_before, prefix_after, sig_EB, em_one, em_many, bp_two, arg_wide in steps:
                ring = rings[t % m]  # holds t - m before the write below, t after it
                if t:
                    add(ring, prefix_before, out=delayed_JB)
                    add(back_sig, sig_EB, out=signal_EB)
                    # the gather reads the previous step's scores, before any is overwritten
                    take_ext(src_all, axis=0, out=cand_XB)
                    cand_XB += lp_all
                    add(c_one, em_one, out=v_one)
                    maximum(c_two0, c_two1, out=v_two)
                    greater(c_two1, c_two0, out=bp_two)
                    wide_max(axis=0, out=v_wide)
                    wide_argmax(axis=0, out=arg_wide)
                    v_many += em_many
                take_v(back_src, axis=0, out=back_XB)
                subtract(back_delay, prefix_after, out=ring)
            bp_wide_TNB[t0 : t0 + n] = arg_NNB[:n]
    final = v_SB.argmax(axis=0)
    if scores_out is not None:
        scores_out[:] = v_SB.max(axis=0)
    return [_traceback(graph, bp_TSB[:, :, b], int(final[b])) for b in range(n_chunks)]


def _traceback(graph: DecoderGraph, bp_TS: np.ndarray, state: int) -> list[tuple[int, int, int]]:
    """Segments (start, end, state) of the best path ending in ``state`` at the last position.

    Self-loop runs are skipped in one step: a looping state stays itself back to the last
    position whose backpointer is not its self edge.
    """
    width, n_states = bp_TS.shape
    bp_TS = np.ascontiguousarray(bp_TS)  # a chunk's column of [T, S, B]: strided S * B apart
    flat = bp_TS.tobytes()
    in_src = graph.in_src_SK.tolist()
    self_k = graph.self_k_S.tolist()
    delay_src = graph.delay_src_J.tolist()
    n_direct = n_states + len(delay_src)
    # A signal source is its state one step back: fold it into in_src.
    sig_src = graph.sig_src_E.tolist()
    in_src = [[sig_src[x - n_direct] if x >= n_direct else x for x in row] for row in in_src]
    m = graph.delay
    breaks: dict[int, list[int]] = {}
    segments: list[tuple[int, int, int]] = []
    t = width - 1
    while True:
        if self_k[state] >= 0:
            if state not in breaks:
                breaks[state] = (np.flatnonzero(bp_TS[1:, state] != self_k[state]) + 1).tolist()
            at = bisect.bisect_right(breaks[state], t) - 1
            run_start = breaks[state][at] if at >= 0 else 0
            segments.append((run_start, t + 1, state))
            t = run_start
        else:
            segments.append((t, t + 1, state))
        if t == 0:
            break
        src = in_src[state][flat[t * n_states + state]]
        if src < n_states:
            state, t = src, t - 1
        else:  # the delayed edge: the chain's positions are intron of the same type
            if m > 1:
                segments.append((t - m + 1, t, state))
            state, t = delay_src[src - n_states], t - m
    segments.reverse()
    return segments


_ATG_CODES = (A, T, G)
_CAT_CODES = (C, A, T)  # ATG read on the - strand


def _genes(graph: DecoderGraph, segments: list[tuple[int, int, int]], codes_T: np.ndarray,
           contig_start: bool, contig_end: bool) -> list[_Gene]:
    """Complete genes of one chunk's path: runs of non-IG states not touching the chunk's edges.

    A run touching the chunk's edge is kept only where that edge is the contig's end and the
    run's CDS ends there (a start or stop codon, not a UTR): the path may begin and end in any
    state, so a start codon at the very edge, whose edge check never ran, is checked here.
    """
    width = codes_T.size
    genes = []
    kind_S, strand_S, names = graph.kind_S, graph.strand_S, graph.names_S
    i = 0
    while i < len(segments):
        if kind_S[segments[i][2]] == KIND_IG:
            i += 1
            continue
        j = i
        while j < len(segments) and kind_S[segments[j][2]] != KIND_IG:
            j += 1
        run = segments[i:j]
        i = j
        if run[0][0] == 0 and not (contig_start and (
                names[run[0][2]] == "-STOP2"
                or (names[run[0][2]] == "+START0" and tuple(codes_T[:3].tolist()) == _ATG_CODES))):
            continue  # cut by the chunk's edge
        if run[-1][1] == width and not (contig_end and (
                names[run[-1][2]] == "+STOP2"
                or (names[run[-1][2]] == "-START0" and tuple(codes_T[-3:].tolist()) == _CAT_CODES))):
            continue
        exons: list[list[int]] = []
        cds_start, cds_end = width, -1
        for start, end, state in run:
            kind = kind_S[state]
            if kind == KIND_INTRON:
                continue
            if exons and exons[-1][1] == start:
                exons[-1][1] = end
            else:
                exons.append([start, end])
            if kind == KIND_CODING:
                cds_start, cds_end = min(cds_start, start), max(cds_end, end)
        strand = "+" if strand_S[run[0][2]] > 0 else "-"
        genes.append(_Gene(strand, tuple((s, e) for s, e in exons), (cds_start, cds_end)))
    return genes
