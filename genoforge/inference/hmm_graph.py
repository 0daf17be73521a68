"""The gene-structure decoder's state machine: states, edges, delayed (minimum-intron) edges and
the signal columns its edges read (the design is in :mod:`genoforge.inference.hmm`'s docstring).

Shape legend: S decoder states, J delayed edges, K in-edges per state (padded), E signal sources.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from genoforge.genes.classes import (
    CDS_PLUS,
    INTERGENIC,
    INTRON_PLUS,
    STRAND_OFFSET,
    UTR3_PLUS,
    UTR5_PLUS,
)
from genoforge.genes.structure import GeneStructureParams

A, C, G, T = 0, 1, 2, 3
FAMILIES = ("GT", "AT")
MEMORIES = ("0", "1T", "1o", "2TA", "2TG", "2o")
# "0S": the phase-0 intron after a first exon that is the start codon alone (GT-AG only); it
# cannot lead to a stop-only exon, so the CDS is never ATG | intron | stop (6 bp).
FAMILY_MEMORIES = {"GT": MEMORIES + ("0S",), "AT": MEMORIES}
_PHASE = {"0": 0, "0S": 0, "1T": 1, "1o": 1, "2TA": 2, "2TG": 2, "2o": 2}
KIND_IG, KIND_UTR5, KIND_CODING, KIND_UTR3, KIND_INTRON = range(5)
# The young steps of an exon entered at an acceptor (no donor from them): one per base of
# ``min_internal_exon`` past the first, so the graph honours limits up to 3 bp (a longer limit
# acts as 3, as ``StructureCounts.min_internal_exon`` caps it).
YOUNG_STEPS = ("YA", "YB")


# The signal columns of one strand orientation, in row order; the graph's columns are these
# for + and the same suffixed "-" for the minus strand (checked on the reverse complement).
STRAND_COLUMNS = (
    ("start", "stop", "codon", "codon_T")
    + tuple(f"donor_{family}_{memory}" for family in FAMILIES for memory in MEMORIES)
    + tuple(f"donorT_{family}_{memory}" for family in FAMILIES for memory in ("2TA", "2TG", "2o"))
    + tuple(f"acceptor_{family}{condition}" for family in FAMILIES for condition in ("", "_TA", "_TG", "_stop"))
)
COLUMN_ROW = {name: r for r, name in enumerate(STRAND_COLUMNS)}


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


def log_or_inf(p: float) -> float:
    return math.log(p) if p > 0 else -math.inf


def build_graph(params: GeneStructureParams) -> DecoderGraph:
    """Compile the state machine of the module docstring for ``params``."""
    # Forward-strand template: (name, class, kind).
    plus: list[tuple[str, int, int]] = [("UTR5", UTR5_PLUS, KIND_UTR5)]
    plus += [(f"START{p}", CDS_PLUS[p], KIND_CODING) for p in range(3)]
    plus += [(f"E{p}", CDS_PLUS[p], KIND_CODING) for p in range(3)]
    # An exon entered at an acceptor runs through ``young = min_internal_exon - 1`` young steps
    # (YA*, then YB*: no donor from them, a stop after codon position 2 still allowed) before
    # the E* states, so no internal exon is shorter than ``min_internal_exon``; then the codon
    # position after a 1T intron is YA1_T, and E1_T (a one-base exon's state) is not built.
    young_steps = YOUNG_STEPS[: max(0, params.min_internal_exon - 1)]
    young = len(young_steps)
    for step in young_steps:
        plus += [(f"{step}{p}", CDS_PLUS[p], KIND_CODING) for p in range(3)]
    if young:
        plus += [("YA1_T", CDS_PLUS[1], KIND_CODING)]
    else:
        plus += [("E1_T", CDS_PLUS[1], KIND_CODING)]
    # Intron durations: one geometric, or a short and a long one (INTRON_X / INTRONL_X, entered
    # from ENTRY_X with the mixture's weights).
    tails = ([(1.0, max(params.mean_intron - max(1, params.min_intron - 1), 2.0))] if not params.intron_length_mix
             else [(w, max(mu, 2.0)) for w, mu in params.intron_length_mix])
    loops = ("INTRON", "INTRONL")[: len(tails)]
    for family in FAMILIES:
        for memory in FAMILY_MEMORIES[family]:
            for role in ("ENTRY", *loops):
                plus.append((f"{role}_{family}_{memory}", INTRON_PLUS[_PHASE[memory]], KIND_INTRON))
    plus += [(f"STOP{p}", CDS_PLUS[p], KIND_CODING) for p in range(3)] + [("UTR3", UTR3_PLUS, KIND_UTR3)]

    m = max(1, params.min_intron - 1)
    mean_ig = max(params.mean_intergenic, 2.0)
    exit_exon = 1.0 / max(params.mean_coding_exon, 4.0)
    terminal = 1.0 / max(params.mean_coding_exons_per_gene, 1.0)
    q_donor = exit_exon * (1.0 - terminal)
    q_stop = min(0.5, 3.0 * exit_exon * terminal)
    f5, f3 = params.utr5_fraction, params.utr3_fraction

    # Forward edges (src, dst, log p, column); "IG" is the shared intergenic state.
    edges: list[tuple[str, str, float, str]] = [
        ("IG", "UTR5", log_or_inf(0.5 / mean_ig * f5), "zero"),
        ("IG", "START0", log_or_inf(0.5 / mean_ig * (1.0 - f5)), "start"),
        ("UTR5", "UTR5", log_or_inf(1.0 - 1.0 / max(params.mean_utr5, 2.0)), "zero"),
        ("UTR5", "START0", log_or_inf(1.0 / max(params.mean_utr5, 2.0)), "start"),
        ("START0", "START1", 0.0, "zero"), ("START1", "START2", 0.0, "zero"),
        ("START2", "E0", log_or_inf(1.0 - q_donor), "zero"),
        ("E0", "E1", log_or_inf(1.0 - q_donor), "zero"),
        ("E1", "E2", log_or_inf(1.0 - q_donor), "codon"),
        ("E2", "E0", log_or_inf(1.0 - q_donor - q_stop), "zero"),
        ("E2", "STOP0", log_or_inf(q_stop), "stop"),
        ("STOP0", "STOP1", 0.0, "zero"), ("STOP1", "STOP2", 0.0, "zero"),
        ("STOP2", "UTR3", log_or_inf(f3), "zero"), ("STOP2", "IG", log_or_inf(1.0 - f3), "zero"),
        ("UTR3", "UTR3", log_or_inf(1.0 - 1.0 / max(params.mean_utr3, 2.0)), "zero"),
        ("UTR3", "IG", log_or_inf(1.0 / max(params.mean_utr3, 2.0)), "zero"),
    ]
    after = {"0": "E2", "0S": "START2", "1T": "E0", "1o": "E0", "2TA": "E1", "2TG": "E1", "2o": "E1"}
    if young:  # the young steps: each leads to the next codon position of the next step
        chain = [*young_steps, "E"]
        for step, nxt in itertools.pairwise(chain):
            edges += [(f"{step}0", f"{nxt}1", 0.0, "zero"), (f"{step}1", f"{nxt}2", 0.0, "codon"),
                      (f"{step}2", f"{nxt}0", log_or_inf(1.0 - q_stop), "zero"),
                      (f"{step}2", "STOP0", log_or_inf(q_stop), "stop")]
        edges.append(("YA1_T", f"{chain[1]}2", 0.0, "codon_T"))
    else:
        edges.append(("E1_T", "E2", log_or_inf(1.0 - q_donor), "codon_T"))
    resume = {"0": ("E0", ""), "0S": ("E0", ""), "1T": ("E1_T", ""), "1o": ("E1", ""), "2TA": ("E2", "_TA"),
              "2TG": ("E2", "_TG"), "2o": ("E2", "")}
    if young:
        resume = {memory: ("YA" + state[1:], condition) for memory, (state, condition) in resume.items()}
    delays: list[tuple[str, str, float]] = []
    for family in FAMILIES:
        for memory in FAMILY_MEMORIES[family]:
            entry = f"ENTRY_{family}_{memory}"
            donor_memory = "0" if memory == "0S" else memory  # the same donor test
            edges.append((after[memory], entry, log_or_inf(q_donor), f"donor_{family}_{donor_memory}"))
            if not young and (memory.startswith("2T") or memory == "2o"):  # a one-base exon after 1T
                edges.append(("E1_T", entry, log_or_inf(q_donor), f"donorT_{family}_{memory}"))
            for loop, (weight, intron_tail) in zip(loops, tails):
                intron = f"{loop}_{family}_{memory}"
                delays.append((entry, intron, log_or_inf(weight)))
                edges.append((intron, intron, log_or_inf(1.0 - 1.0 / intron_tail), "zero"))
                target, condition = resume[memory]
                if memory == "0":  # the next exon may be the stop codon alone
                    edges.append((intron, target, log_or_inf((1.0 - q_stop) / intron_tail), f"acceptor_{family}"))
                    edges.append((intron, "STOP0", log_or_inf(q_stop / intron_tail), f"acceptor_{family}_stop"))
                else:
                    edges.append((intron, target, log_or_inf(1.0 / intron_tail), f"acceptor_{family}{condition}"))

    # Both strands: "+name" and "-name"; minus edges reversed, columns suffixed "-".
    names = ["IG"] + [f"+{n}" for n, _, _ in plus] + [f"-{n}" for n, _, _ in plus]
    index = {n: i for i, n in enumerate(names)}
    classes = [INTERGENIC] + [c for _, c, _ in plus] + [c + STRAND_OFFSET for _, c, _ in plus]
    kinds = [KIND_IG] + [k for _, _, k in plus] * 2
    strands = [0] + [1] * len(plus) + [-1] * len(plus)

    def named(strand: str, state: str) -> str:
        return "IG" if state == "IG" else strand + state

    all_edges: list[tuple[int, int, float, str]] = [(index["IG"], index["IG"], log_or_inf(1.0 - 1.0 / mean_ig), "zero")]
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
