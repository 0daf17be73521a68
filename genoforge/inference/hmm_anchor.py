"""HMM anchors: the structure decoder's best parse of each window, as the generative decoder's guide.

Shape legend: W windows, L bases (padded), K the head's outputs (classes, then signals), C the
``N_CLASSES`` classes, S the ``N_SIGNALS`` signals.

Why: head guidance (:mod:`genoforge.inference.head_guide`) scores each coordinate the decoder
writes by the head's raw per-base view, and a head that is right about bases can still be
unsure at the edges: its exon probability dips below one half inside short exons, its site
outputs are flat, and the guided decoder then writes 3-bp exons or wrong-frame ORFs (measured,
``benchmarks/RESULTS.md``). The HMM decoder reads the same head through a gene-structure machine
that admits only complete ORFs with canonical splice sites. Here that machine's Viterbi path
through each window (:func:`genoforge.inference.hmm._viterbi`, the window decoded alone, starting
and ending in any state, so genes cut by the window's edges are kept as the parts it holds) is
turned back into the head's form: each base's class is the path's with probability
``ANCHOR_CONFIDENCE``, and each site the path has (donor, acceptor, start, stop, from the
path's classes as the head's training targets read them) has log-odds ``ANCHOR_SITE``, every
other base ``-ANCHOR_SITE``. The guide terms are then built from that view exactly as from the
head's (:func:`~genoforge.inference.head_guide.structure_tracks`), so the decoder still writes
every token and chooses every coordinate, with the parse's boundaries the best-scored ones.

The parse is a host computation (numpy), about the HMM decoder's own cost per base: windows of
one length are decoded together, a run of ``N`` between them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from genoforge.genes.classes import (
    CDS_MINUS,
    CDS_PLUS,
    INTERGENIC,
    INTRON_MINUS,
    INTRON_PLUS,
    N_CLASSES,
    encode_bases,
    pool_intron_phases,
    window_labels,
)
from genoforge.genes.structure import GeneStructureParams
from genoforge.inference.hmm import ASSEMBLY_GAP, _viterbi, close_gaps
from genoforge.inference.hmm_graph import build_graph
from genoforge.inference.hmm_signals import Signals
from genoforge.model.base_signals import calibrated_log_odds, signal_targets

ANCHOR_CONFIDENCE = 0.9999  # the probability of the parse's class at each base
# Evidence of coding bases in a parse (StructureGuide.coding_min / coding_scale): a gene there
# needs only the shortest CDS (ATG, a codon, a stop); the rest of a window adds ~0.
ANCHOR_CODING_MIN = 9.0
ANCHOR_CODING_SCALE = 3.0
ANCHOR_BARRIER_RUN = 1  # a segment stops at the parse's first base of another kind
ANCHOR_SITE = 8.0  # log-odds of a site the parse has (its negative: every other base)
_GAP = ASSEMBLY_GAP + 6  # N bases between windows decoded together (an assembly gap)
_N_CODE = 4
_CODING = np.array(CDS_PLUS + CDS_MINUS)
_INTRON = np.array(INTRON_PLUS + INTRON_MINUS)
_GENIC = np.array([c for c in range(N_CLASSES) if c != INTERGENIC])


@dataclasses.dataclass
class ViterbiAnchor:
    """The structure decoder's parse of windows (module docstring), built once per predict run.

    ``params``: the model directory's gene-structure parameters (as ``--decoder hmm`` uses
    them); the weights are the HMM decoder's (``--emission_weight`` and so on).
    """

    params: GeneStructureParams
    emission_weight: float = 1.0
    signal_weight: float = 1.0
    head_signal_weight: float = 1.0
    content_weight: float = 0.0

    # each contig's parse as class labels (uint8), while its windows are being decoded
    contig_labels: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        # the decoder's machine, with each strand's intron phases pooled in the prior (as
        # ``--decoder hmm`` decodes: structure_predict.decode_contig)
        _, prior = pool_intron_phases(np.zeros((0, N_CLASSES), dtype=np.float32), self.params.class_log_prior)
        self._prior_C = np.asarray(prior, dtype=np.float64)
        self._graph = build_graph(dataclasses.replace(self.params, class_log_prior=prior))
        self._signals = Signals(self.params, self.signal_weight)

    def path_labels(self, head_logits_WLK: Tensor, lengths: Sequence[int], bases: Sequence[str]) -> np.ndarray:
        """[W, L] int64: each window's Viterbi path as class labels (-1 beyond its length)."""
        logits = head_logits_WLK.float()
        log_probs = torch.log_softmax(logits[..., :N_CLASSES], dim=-1)
        parts = [log_probs]
        if logits.shape[-1] > N_CLASSES:
            parts.append(calibrated_log_odds(logits[..., N_CLASSES:]))
        track_WLK = torch.cat(parts, dim=-1).cpu().numpy()
        W, L = head_logits_WLK.shape[:2]
        labels = np.full((W, L), -1, dtype=np.int64)
        by_length: dict[int, list[int]] = {}
        for w, n in enumerate(lengths):
            if n > 0:
                by_length.setdefault(int(n), []).append(w)
        for width, group in by_length.items():
            for w, segments in zip(group, self._paths(track_WLK, group, width, bases)):
                for start, end, state in segments:
                    labels[w, start:end] = self._graph.class_S[state]
                _drop_edge_fragments(labels[w, :width])
        return labels

    def parse_contig(self, seqid: str, sequence: str, track_LK: np.ndarray) -> None:
        """Decode a whole contig from its head track, as ``--decoder hmm`` does
        (:func:`~genoforge.inference.structure_predict.decode_contig`), and keep its class labels
        for the windows of ``seqid`` (:meth:`guide_inputs`) until :meth:`release`."""
        from genoforge.inference.structure_predict import decode_contig

        annotation = decode_contig(sequence, track_LK, self.params, seqid=seqid,
                                   emission_weight=self.emission_weight, signal_weight=self.signal_weight,
                                   head_signal_weight=self.head_signal_weight,
                                   content_weight=self.content_weight)
        self.contig_labels[seqid] = window_labels(annotation.transcripts, 0, len(sequence))

    def release(self, seqid: str) -> None:
        self.contig_labels.pop(seqid, None)

    def cut_labels(self, keys: Sequence, lengths: Sequence[int], width: int) -> np.ndarray | None:
        """[W, width] labels of windows cut from their contigs' parses (``keys`` with ``seqid``
        and ``start``, as :class:`~genoforge.inference.windows.GenomeWindow`), edge fragments
        dropped; None unless every window's contig was parsed."""
        if not keys or not all(getattr(key, "seqid", None) in self.contig_labels for key in keys):
            return None
        labels = np.full((len(keys), width), -1, dtype=np.int64)
        for w, (key, n) in enumerate(zip(keys, lengths)):
            labels[w, :n] = self.contig_labels[key.seqid][key.start : key.start + n]
            _drop_edge_fragments(labels[w, :n], of_contig=True)
        return labels

    def guide_inputs(self, head_logits_WLK: Tensor, lengths: Sequence[int], bases: Sequence[str],
                     keys: Sequence | None = None) -> tuple[Tensor, Tensor]:
        """(class probabilities [W, L, C], site log-odds [W, L, S]) of the windows' parses, in
        the form :func:`~genoforge.inference.head_guide.structure_tracks` takes: cut from their
        contigs' parses where :meth:`parse_contig` made them, else each window parsed alone."""
        labels = None if keys is None else self.cut_labels(keys, lengths, head_logits_WLK.shape[1])
        if labels is None:
            labels = self.path_labels(head_logits_WLK, lengths, bases)
        return anchor_view(torch.from_numpy(labels).to(head_logits_WLK.device))

    def _paths(self, track_WLK: np.ndarray, group: list[int], width: int,
               bases: Sequence[str]) -> list[list[tuple[int, int, int]]]:
        """The Viterbi segments of the windows ``group`` (all ``width`` long), decoded together."""
        stride = width + _GAP
        total = stride * len(group)
        codes = np.full(total, _N_CODE, dtype=np.uint8)
        track = np.zeros((total, track_WLK.shape[2]), dtype=np.float32)
        for i, w in enumerate(group):
            codes[i * stride : i * stride + width] = encode_bases(bases[w][:width])
            track[i * stride : i * stride + width] = track_WLK[w, :width]
        log_probs, _ = pool_intron_phases(track[:, :N_CLASSES], self.params.class_log_prior)
        log_probs = close_gaps(codes, log_probs)  # no gene crosses from one window to the next
        head = track[:, N_CLASSES:] if track.shape[1] > N_CLASSES else None
        return _viterbi(self._graph, self._signals, codes, log_probs, self._prior_C, self.emission_weight,
                        [i * stride for i in range(len(group))], width, head, self.head_signal_weight)


def _drop_edge_fragments(labels_L: np.ndarray, *, of_contig: bool = False) -> None:
    """Make intergenic, in place, a gene cut by a window edge whose part inside holds fewer than
    ``ANCHOR_CODING_MIN`` coding bases (too little for the decoder to place), or that the edge
    cuts inside an intron (the signal grammar clips a partial CDS only at the window's edge, so
    no cds line could be written for it). The windows beside this one hold the rest of the gene;
    a gene longer than a window's overlap may therefore lose the piece cut here.

    ``of_contig``: the labels are cut from the contig's parse, which every window shares, and
    the decoder's grammar clips a CDS at an intron cut by the edge (``clip_in_introns``): every
    piece with an exonic base is kept, so stitching joins the pieces of a gene longer than a
    window; only a piece that is intron alone (nothing a transcript could be written with) goes."""
    genic = np.isin(labels_L, _GENIC)
    n = labels_L.size
    if not genic.any():
        return
    outside = np.flatnonzero(~genic)
    spans = []
    if genic[0]:
        spans.append((0, int(outside[0]) if outside.size else n))
    if genic[-1] and outside.size:
        spans.append((int(outside[-1]) + 1, n))
    for start, end in spans:
        if of_contig:
            if np.isin(labels_L[start:end], _INTRON).all():
                labels_L[start:end] = INTERGENIC
            continue
        edge = labels_L[0] if start == 0 else labels_L[-1]
        if np.isin(edge, _INTRON) or np.isin(labels_L[start:end], _CODING).sum() < ANCHOR_CODING_MIN:
            labels_L[start:end] = INTERGENIC


def anchor_view(labels_WL: Tensor) -> tuple[Tensor, Tensor]:
    """(class probabilities [W, L, C], site log-odds [W, L, S]) of a class-label track: the
    label's class at ``ANCHOR_CONFIDENCE``, the rest shared evenly; a site of the labels
    (:func:`~genoforge.model.base_signals.signal_targets`) ``+ANCHOR_SITE``, else
    ``-ANCHOR_SITE``. Negative labels (padding) give uniform probabilities."""
    labelled = labels_WL >= 0
    rest = (1.0 - ANCHOR_CONFIDENCE) / (N_CLASSES - 1)
    probs = torch.full((*labels_WL.shape, N_CLASSES), rest, device=labels_WL.device)
    probs.scatter_(-1, labels_WL.clamp(min=0).unsqueeze(-1), ANCHOR_CONFIDENCE)
    probs = torch.where(labelled.unsqueeze(-1), probs, torch.full_like(probs, 1.0 / N_CLASSES))
    targets, _ = signal_targets(labels_WL)
    return probs, (2.0 * targets - 1.0) * ANCHOR_SITE
