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
fraction, about 0).

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

Implementation: numpy, vectorised over states and chunks; a Python loop over positions only.
Every step gathers the candidate scores of all in-edges in one call (signal sources carry their
per-position signal column, built per block of positions), adds the transitions' log
probabilities, keeps each state's best and its edge index (uint8 backpointers, B x T x S bytes:
the memory bound). The step is numpy call overhead, about 12 calls (see :func:`_viterbi`).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from genoforge.baking.genes import ExonChain
from genoforge.genes.classes import (
    CDS_PLUS,
    INTERGENIC,
    INTRON_PLUS,
    N_CLASSES,
    N_CODE,
    STRAND_OFFSET,
    UTR3_PLUS,
    UTR5_PLUS,
    encode_bases,
)
from genoforge.genes.structure import (
    ACCEPTOR_FIXED,
    ACCEPTOR_FLANK,
    DONOR_FIXED,
    DONOR_FLANK,
    START_FIXED,
    START_FLANK,
    STOP_FIXED,
    STOP_FLANK,
    GeneStructureParams,
)
from genoforge.inference.stitch import ContigAnnotation, ContigTranscript
from genoforge.tokenizer.inventory import PROTEIN_CODING

DEFAULT_CHUNK = 150_000
DEFAULT_OVERLAP = 40_000
DEFAULT_MAX_BATCH = 12  # chunks per pass: backpointers take max_batch * chunk * S bytes
BLOCK = 256  # positions whose edge scores are built at once (N x B x S x K float64)
SIGNAL_BLOCK = 8192  # positions whose signal columns are built at once (B x U x G float64)
# -inf (a posterior of exactly 0) and NaN count as this log probability: the intron prefix sums
# must stay finite (-inf - -inf is NaN), and about float32's smallest positive value is no loss.
LOG_PROB_FLOOR = -104.0
_FLANK = 32  # bases of context each side of a block for the signal windows (>= 20 + 3)

A, C, G, T = 0, 1, 2, 3
_FAMILIES = ("GT", "AT")
_MEMORIES = ("0", "1T", "1o", "2TA", "2TG", "2o")
# "0S": the phase-0 intron after a first exon that is the start codon alone (GT-AG only); it
# cannot lead to a stop-only exon, so the CDS is never ATG | intron | stop (6 bp).
_FAMILY_MEMORIES = {"GT": _MEMORIES + ("0S",), "AT": _MEMORIES}
_PHASE = {"0": 0, "0S": 0, "1T": 1, "1o": 1, "2TA": 2, "2TG": 2, "2o": 2}
_KIND_IG, _KIND_UTR5, _KIND_CODING, _KIND_UTR3, _KIND_INTRON = range(5)


# --- the state machine -----------------------------------------------------------------------


@dataclass(frozen=True)
class DecoderGraph:
    """The compiled state machine (both strands) for one set of parameters.

    ``names_S``/``class_S``/``kind_S``/``strand_S`` describe the states (``strand`` 0 for IG,
    +1, -1). ``in_src_SK`` indexes the step's source vector ``[state scores (S), delayed
    sources (J), signal sources (E)]`` and ``in_lp_SK`` holds the transition log probabilities
    (-inf pads); ``self_k_S`` is the in-edge slot of the state's self-loop (-1: none). Delayed
    edge j runs from ``delay_src_J[j]`` at ``t - delay`` to ``delay_dst_J[j]`` at ``t``; signal
    source e is state ``sig_src_E[e]``'s score plus signal column ``sig_col_E[e]`` (a name in
    ``columns``; "-" suffix: checked on the reverse complement) at the step. ``groups``: the
    state slices ``(start, end, K)`` whose states have ``K`` in-edges or fewer (1, 2, more).
    """

    names_S: tuple[str, ...]
    class_S: np.ndarray
    kind_S: np.ndarray
    strand_S: np.ndarray
    in_src_SK: np.ndarray
    in_lp_SK: np.ndarray
    self_k_S: np.ndarray
    delay_src_J: np.ndarray
    delay_dst_J: np.ndarray
    delay: int
    sig_src_E: np.ndarray
    sig_col_E: np.ndarray
    columns: tuple[str, ...]
    groups: tuple[tuple[int, int, int], ...]

    @property
    def n_states(self) -> int:
        return len(self.names_S)


def _log(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def build_graph(params: GeneStructureParams) -> DecoderGraph:
    """Compile the state machine of the module docstring for ``params``."""
    # Forward-strand template: (name, class, kind).
    plus: list[tuple[str, int, int]] = [("UTR5", UTR5_PLUS, _KIND_UTR5)]
    plus += [(f"START{p}", CDS_PLUS[p], _KIND_CODING) for p in range(3)]
    plus += [(f"E{p}", CDS_PLUS[p], _KIND_CODING) for p in range(3)] + [("E1_T", CDS_PLUS[1], _KIND_CODING)]
    # Intron durations: one geometric, or a short and a long one (INTRON_X / INTRONL_X, entered
    # from ENTRY_X with the mixture's weights).
    tails = ([(1.0, max(params.mean_intron - max(1, params.min_intron - 1), 2.0))] if not params.intron_length_mix
             else [(w, max(mu, 2.0)) for w, mu in params.intron_length_mix])
    loops = ("INTRON", "INTRONL")[: len(tails)]
    for family in _FAMILIES:
        for memory in _FAMILY_MEMORIES[family]:
            for role in ("ENTRY", *loops):
                plus.append((f"{role}_{family}_{memory}", INTRON_PLUS[_PHASE[memory]], _KIND_INTRON))
    plus += [(f"STOP{p}", CDS_PLUS[p], _KIND_CODING) for p in range(3)] + [("UTR3", UTR3_PLUS, _KIND_UTR3)]

    m = max(1, params.min_intron - 1)
    mean_ig = max(params.mean_intergenic, 2.0)
    exit_exon = 1.0 / max(params.mean_coding_exon, 4.0)
    terminal = 1.0 / max(params.mean_coding_exons_per_gene, 1.0)
    q_donor = exit_exon * (1.0 - terminal)
    q_stop = min(0.5, 3.0 * exit_exon * terminal)
    f5, f3 = params.utr5_fraction, params.utr3_fraction

    # Forward edges (src, dst, log p, column); "IG" is the shared intergenic state.
    edges: list[tuple[str, str, float, str]] = [
        ("IG", "UTR5", _log(0.5 / mean_ig * f5), "zero"),
        ("IG", "START0", _log(0.5 / mean_ig * (1.0 - f5)), "start"),
        ("UTR5", "UTR5", _log(1.0 - 1.0 / max(params.mean_utr5, 2.0)), "zero"),
        ("UTR5", "START0", _log(1.0 / max(params.mean_utr5, 2.0)), "start"),
        ("START0", "START1", 0.0, "zero"), ("START1", "START2", 0.0, "zero"),
        ("START2", "E0", _log(1.0 - q_donor), "zero"),
        ("E0", "E1", _log(1.0 - q_donor), "zero"),
        ("E1", "E2", _log(1.0 - q_donor), "codon"),
        ("E1_T", "E2", _log(1.0 - q_donor), "codon_T"),
        ("E2", "E0", _log(1.0 - q_donor - q_stop), "zero"),
        ("E2", "STOP0", _log(q_stop), "stop"),
        ("STOP0", "STOP1", 0.0, "zero"), ("STOP1", "STOP2", 0.0, "zero"),
        ("STOP2", "UTR3", _log(f3), "zero"), ("STOP2", "IG", _log(1.0 - f3), "zero"),
        ("UTR3", "UTR3", _log(1.0 - 1.0 / max(params.mean_utr3, 2.0)), "zero"),
        ("UTR3", "IG", _log(1.0 / max(params.mean_utr3, 2.0)), "zero"),
    ]
    after = {"0": "E2", "0S": "START2", "1T": "E0", "1o": "E0", "2TA": "E1", "2TG": "E1", "2o": "E1"}
    resume = {"0": ("E0", ""), "0S": ("E0", ""), "1T": ("E1_T", ""), "1o": ("E1", ""), "2TA": ("E2", "_TA"),
              "2TG": ("E2", "_TG"), "2o": ("E2", "")}
    delays: list[tuple[str, str, float]] = []
    for family in _FAMILIES:
        for memory in _FAMILY_MEMORIES[family]:
            entry = f"ENTRY_{family}_{memory}"
            donor_memory = "0" if memory == "0S" else memory  # the same donor test
            edges.append((after[memory], entry, _log(q_donor), f"donor_{family}_{donor_memory}"))
            if memory.startswith("2T") or memory == "2o":  # a one-base exon after a 1T intron
                edges.append(("E1_T", entry, _log(q_donor), f"donorT_{family}_{memory}"))
            for loop, (weight, intron_tail) in zip(loops, tails):
                intron = f"{loop}_{family}_{memory}"
                delays.append((entry, intron, _log(weight)))
                edges.append((intron, intron, _log(1.0 - 1.0 / intron_tail), "zero"))
                target, condition = resume[memory]
                if memory == "0":  # the next exon may be the stop codon alone
                    edges.append((intron, target, _log((1.0 - q_stop) / intron_tail), f"acceptor_{family}"))
                    edges.append((intron, "STOP0", _log(q_stop / intron_tail), f"acceptor_{family}_stop"))
                else:
                    edges.append((intron, target, _log(1.0 / intron_tail), f"acceptor_{family}{condition}"))

    # Both strands: "+name" and "-name"; minus edges reversed, columns suffixed "-".
    names = ["IG"] + [f"+{n}" for n, _, _ in plus] + [f"-{n}" for n, _, _ in plus]
    index = {n: i for i, n in enumerate(names)}
    classes = [INTERGENIC] + [c for _, c, _ in plus] + [c + STRAND_OFFSET for _, c, _ in plus]
    kinds = [_KIND_IG] + [k for _, _, k in plus] * 2
    strands = [0] + [1] * len(plus) + [-1] * len(plus)

    def named(strand: str, state: str) -> str:
        return "IG" if state == "IG" else strand + state

    all_edges: list[tuple[int, int, float, str]] = [(index["IG"], index["IG"], _log(1.0 - 1.0 / mean_ig), "zero")]
    for src, dst, lp, column in edges:
        all_edges.append((index[named("+", src)], index[named("+", dst)], lp, column))
        all_edges.append((index[named("-", dst)], index[named("-", src)], lp,
                          column if column == "zero" else column + "-"))
    delay_src, delay_dst, delay_lp = [], [], []
    for entry, intron, lp in delays:
        delay_src += [index["+" + entry], index["-" + intron]]
        delay_dst += [index["+" + intron], index["-" + entry]]
        delay_lp += [lp, lp]
    n_states = len(names)
    for j, dst in enumerate(delay_dst):
        all_edges.append((n_states + j, dst, delay_lp[j], "zero"))

    # Order the states by in-degree group (1, 2, more), so each group is a slice the step
    # reduces with its own width (most states have one or two in-edges; padding all to the
    # widest would multiply the work by ~4).
    degree = [0] * n_states
    for _, dst, _, _ in all_edges:
        degree[dst] += 1
    group_of = [min(d, 3) for d in degree]
    order = sorted(range(n_states), key=lambda x: (group_of[x], x))
    new = {old: i for i, old in enumerate(order)}
    names, classes, kinds, strands = ([seq[o] for o in order] for seq in (names, classes, kinds, strands))
    all_edges = [(new.get(src, src), new[dst], lp, column) for src, dst, lp, column in all_edges]
    delay_src, delay_dst = [new[x] for x in delay_src], [new[x] for x in delay_dst]
    groups = []
    for g in (1, 2, 3):
        members = [i for i, o in enumerate(order) if group_of[o] == g]
        if members:
            groups.append((members[0], members[-1] + 1, max(degree[order[i]] for i in members)))

    # Signal edges gather from a per-step pseudo-source "source score + signal column" (one
    # vector of E values), so the per-position edge scores never take B x S x K memory.
    columns = STRAND_COLUMNS + tuple(c + "-" for c in STRAND_COLUMNS)
    col_index = {c: i for i, c in enumerate(columns)}
    sig_src, sig_col = [], []
    incoming: list[list[tuple[int, float]]] = [[] for _ in range(n_states)]
    for src, dst, lp, column in all_edges:
        if column != "zero":
            sig_src.append(src)
            sig_col.append(col_index[column])
            src = n_states + len(delay_dst) + len(sig_src) - 1
        incoming[dst].append((src, lp))
    k_max = max(len(x) for x in incoming)
    assert k_max <= 255  # backpointers are uint8
    in_src = np.zeros((n_states, k_max), dtype=np.intp)
    in_lp = np.full((n_states, k_max), -np.inf)
    self_k = np.full(n_states, -1, dtype=np.intp)
    for s, rows in enumerate(incoming):
        for k, (src, lp) in enumerate(rows):
            in_src[s, k], in_lp[s, k] = src, lp
            if src == s:
                self_k[s] = k
    return DecoderGraph(tuple(names), np.asarray(classes, dtype=np.intp), np.asarray(kinds, dtype=np.int8),
                        np.asarray(strands, dtype=np.int8), in_src, in_lp, self_k,
                        np.asarray(delay_src, dtype=np.intp), np.asarray(delay_dst, dtype=np.intp), m,
                        np.asarray(sig_src, dtype=np.intp), np.asarray(sig_col, dtype=np.intp), columns,
                        tuple(groups))


# --- signals ---------------------------------------------------------------------------------


# The signal columns of one strand orientation, in row order; the graph's columns are these
# for + and the same suffixed "-" for the minus strand (checked on the reverse complement).
STRAND_COLUMNS = (
    ("start", "stop", "codon", "codon_T")
    + tuple(f"donor_{family}_{memory}" for family in _FAMILIES for memory in _MEMORIES)
    + tuple(f"donorT_{family}_{memory}" for family in _FAMILIES for memory in ("2TA", "2TG", "2o"))
    + tuple(f"acceptor_{family}{condition}" for family in _FAMILIES for condition in ("", "_TA", "_TG", "_stop"))
)
_ROW = {name: r for r, name in enumerate(STRAND_COLUMNS)}


class _Signals:
    """Per-position signal columns of one strand orientation: the value at boundary ``t`` is the
    score of entering, at ``t``, the state the edge leads to (-inf where it is forbidden).

    ``start``/``stop``: ``seq[t:t+3]`` is ATG / a stop (PWM score); ``codon``: ``seq[t-2:t+1]``
    is no stop; ``codon_T``: ``T + seq[t-1:t+1]`` is no stop; ``donor_F_M``: a family-F donor
    at ``t`` (PWM score + log fraction of its dinucleotide) whose preceding exon bases fit
    memory M; ``acceptor_F[_TA|_TG]``: a family-F acceptor ending at ``t`` (PWM score), with
    ``seq[t]`` not completing a stop after a remembered TA / TG.
    """

    def __init__(self, params: GeneStructureParams, signal_weight: float):
        def scored(pwm: list[list[float]], fixed: tuple[int, ...], before: int) -> list[tuple[int, np.ndarray]]:
            rows = []
            for k, row in enumerate(pwm):
                if k not in fixed:
                    table = np.zeros(5)  # a fifth entry: N scores 0
                    table[:4] = np.asarray(row) * signal_weight
                    rows.append((k - before, table))
            return rows

        self.pwms = {
            "donor": scored(params.donor_pwm, DONOR_FIXED, DONOR_FLANK[0]),
            "acceptor": scored(params.acceptor_pwm, ACCEPTOR_FIXED, ACCEPTOR_FLANK[0]),
            "start": scored(params.start_pwm, START_FIXED, START_FLANK[0]),
            "stop": scored(params.stop_pwm, STOP_FIXED, STOP_FLANK[0]),
        }
        gtag = max(1.0 - params.gcag_fraction - params.atac_fraction, 1e-12)
        self.penalty = {"GT": math.log(gtag), "GC": _log(params.gcag_fraction), "AT": _log(params.atac_fraction)}

    def columns(self, codes: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """``STRAND_COLUMNS`` at boundaries ``lo..hi-1`` of ``codes``: float64 [len, hi - lo].

        ``codes`` must hold 20 bases of context before ``lo`` and 9 after ``hi``.
        """
        n = hi - lo
        b_2, b_1, b0, b1, b2 = (codes[lo + o : hi + o] for o in (-2, -1, 0, 1, 2))
        out = np.full((len(STRAND_COLUMNS), n), -np.inf)

        def pwm(name: str, at: np.ndarray) -> np.ndarray:
            score = np.zeros(at.size)
            where = at + lo
            for offset, table in self.pwms[name]:
                score += table[codes[where + offset]]
            return score

        at = np.flatnonzero((b0 == A) & (b1 == T) & (b2 == G))
        out[_ROW["start"], at] = pwm("start", at)
        stop = (b0 == T) & (((b1 == A) & ((b2 == A) | (b2 == G))) | ((b1 == G) & (b2 == A)))
        at = np.flatnonzero(stop)
        out[_ROW["stop"], at] = pwm("stop", at)
        # x then y completes a stop after a T: TAA, TAG, TGA
        stop_pair_10 = ((b_1 == A) & ((b0 == A) | (b0 == G))) | ((b_1 == G) & (b0 == A))
        out[_ROW["codon"]][~((b_2 == T) & stop_pair_10)] = 0.0
        out[_ROW["codon_T"]][~stop_pair_10] = 0.0

        donor = {"GT": np.flatnonzero((b0 == G) & ((b1 == T) | (b1 == C))),
                 "AT": np.flatnonzero((b0 == A) & (b1 == T))}
        for family, at in donor.items():
            score = pwm("donor", at)
            if family == "GT":
                score += np.where(b1[at] == T, self.penalty["GT"], self.penalty["GC"])
            else:
                score += self.penalty["AT"]
            p1, p2 = b_1[at], b_2[at]
            t2 = p2 == T
            memory_ok = {"0": slice(None), "1T": p1 == T, "1o": p1 != T,
                         "2TA": t2 & (p1 == A), "2TG": t2 & (p1 == G),
                         "2o": ~(t2 & ((p1 == A) | (p1 == G)))}
            for memory, ok in memory_ok.items():
                out[_ROW[f"donor_{family}_{memory}"], at[ok]] = score[ok]
            # after E1_T the codon's first base is the T remembered across the previous intron
            is_ag = (p1 == A) | (p1 == G)
            for memory, ok in (("2TA", p1 == A), ("2TG", p1 == G), ("2o", ~is_ag)):
                out[_ROW[f"donorT_{family}_{memory}"], at[ok]] = score[ok]
        for family, last in (("GT", G), ("AT", C)):
            at = np.flatnonzero((b_2 == A) & (b_1 == last))
            score = pwm("acceptor", at)
            following = b0[at]
            out[_ROW[f"acceptor_{family}"], at] = score
            ok = (following != A) & (following != G)
            out[_ROW[f"acceptor_{family}_TA"], at[ok]] = score[ok]
            ok = following != A
            out[_ROW[f"acceptor_{family}_TG"], at[ok]] = score[ok]
            ok = stop[at]
            out[_ROW[f"acceptor_{family}_stop"], at[ok]] = score[ok] + pwm("stop", at[ok])
        return out


_COMPLEMENT = np.array([T, G, C, A, N_CODE], dtype=np.uint8)


def _block_columns(signals: _Signals, codes_L: np.ndarray, start: int, end: int) -> np.ndarray:
    """The graph's signal columns (+ rows, then - rows) at contig boundaries ``start..end-1``:
    float64 [2 * len(STRAND_COLUMNS), end - start]."""
    n = end - start
    lo, hi = start - _FLANK, end + _FLANK
    padded = np.full(hi - lo, N_CODE, dtype=np.uint8)
    a, b = max(lo, 0), min(hi, codes_L.size)
    padded[a - lo : b - lo] = codes_L[a:b]
    plus = signals.columns(padded, _FLANK, _FLANK + n)
    # Boundary g on - is boundary (hi - g) of the reverse complement of ``padded``.
    minus = signals.columns(_COMPLEMENT[padded[::-1]], _FLANK + 1, _FLANK + n + 1)[:, ::-1]
    return np.concatenate([plus, minus])


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
    chunk: int = DEFAULT_CHUNK,
    overlap: int = DEFAULT_OVERLAP,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> ContigAnnotation:
    """The Viterbi gene models of one contig (the machine and rules are the module docstring).

    Args:
        sequence: the contig (str, or uint8 codes A0 C1 G2 T3 other 4 as ``encode_bases``).
        log_probs_LC: natural-log class posteriors per base, [L, N_CLASSES], float16/32/64.
        params: gene-structure parameters (lengths, class priors, PWMs).
        seqid: the contig's name (the annotation's ``seqid``).
        emission_weight: scale of the network's scaled log-likelihoods.
        signal_weight: scale of the PWM log-odds at donors, acceptors, starts and stops.
        chunk: bases decoded per chunk; ``overlap``: bases shared by consecutive chunks
            (``overlap < chunk``); ``max_batch``: chunks decoded at once. Memory is about
            ``max_batch * chunk * 77`` bytes of backpointers.

    Returns:
        A :class:`ContigAnnotation`: one ``protein_coding`` transcript per gene, complete (never
        partial), genes numbered by start; exons are the decoded exons (UTR included), ``cds``
        the coding span (stop codon included), ``cds_phase`` 0.

    Raises:
        ValueError: ``log_probs_LC`` is not [len(sequence), N_CLASSES], or chunk/overlap/max_batch
            invalid.
    """
    codes_L = encode_bases(sequence) if isinstance(sequence, str) else np.asarray(sequence, dtype=np.uint8)
    length = int(codes_L.size)
    if log_probs_LC.shape != (length, N_CLASSES):
        raise ValueError(f"log_probs_LC has shape {tuple(log_probs_LC.shape)}, expected ({length}, {N_CLASSES}) "
                         f"for {seqid}")
    if not 0 <= overlap < chunk:
        raise ValueError(f"overlap {overlap} must be >= 0 and < chunk {chunk}")
    if max_batch < 1:
        raise ValueError(f"max_batch {max_batch} must be >= 1")
    annotation = ContigAnnotation(seqid, length)
    if length == 0:
        return annotation
    graph = build_graph(params)
    signals = _Signals(params, signal_weight)
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
        paths = _viterbi(graph, signals, codes_L, log_probs_LC, prior_C, emission_weight, batch, width)
        for b, segments in enumerate(paths):
            offset = batch[b]
            lo, hi = cores[first + b]
            chunk_codes = codes_L[offset : offset + width]
            for gene in _genes(graph, segments, chunk_codes, offset == 0, offset + width == length):
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


def _viterbi(graph: DecoderGraph, signals: _Signals, codes_L: np.ndarray, log_probs_LC: np.ndarray,
             prior_C: np.ndarray, emission_weight: float, starts: list[int], width: int
             ) -> list[list[tuple[int, int, int]]]:
    """Best path of each chunk ``[start, start + width)``: segments (start, end, state), in order.

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
            sig_UEB[:, :, b] = _block_columns(signals, codes_L, s + u0, s + u0 + un)[sig_col].T
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
        if kind_S[segments[i][2]] == _KIND_IG:
            i += 1
            continue
        j = i
        while j < len(segments) and kind_S[segments[j][2]] != _KIND_IG:
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
            if kind == _KIND_INTRON:
                continue
            if exons and exons[-1][1] == start:
                exons[-1][1] = end
            else:
                exons.append([start, end])
            if kind == _KIND_CODING:
                cds_start, cds_end = min(cds_start, start), max(cds_end, end)
        strand = "+" if strand_S[run[0][2]] > 0 else "-"
        genes.append(_Gene(strand, tuple((s, e) for s, e in exons), (cds_start, cds_end)))
    return genes
