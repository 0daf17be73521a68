"""Head guidance: the per-base head's view of a window added to the generative decoder's choices.

Shape legend: W windows, L bases (padded), K the head's outputs (classes, then signals), R guide
tracks (``N_GUIDE_TRACKS``), B decoder rows.

Why: trained on a few thousand windows the decoder's own coordinate scores do not carry over to
new DNA (its validation cross-entropy rises from the first evaluation while the per-base head
trained beside it reaches a held-out CDS base F1 of ~0.95). The head's class probabilities and
site log-odds are what the HMM decoder builds gene models from; here they score the boundaries
the decoder's pointer chooses between, so the decoder keeps writing the structure (strand, which
lines, how many exons, isoforms) while each coordinate lands where the head puts the edge.

**Segment terms.** Writing coordinate b after the previous coordinate p closes a segment [p, b)
whose kind the grammar knows: an exon end closes an exon, an exon start after an intron closes
the intron, a first exon's start the stretch outside the transcript. Its score is the sum over
the segment's bases of the head's log-odds that the base is of that kind against any other,
``D[b] - D[p]`` with ``D`` a cumulative sum; only ``D[b]`` varies among a row's choices, and it
is largest where the kind stops being the likelier one: the edge. The CDS line's start and end
use the coding-against-UTR log-odds of exonic bases (weighted by the head's exon probability):
its start is largest where coding begins, its end where it stops.

**Site terms.** The head's calibrated signal log-odds (:mod:`genoforge.model.base_signals`) at
the same boundary: an acceptor (``+``) or donor (``-``) where an exon starts after an intron; a
start or stop codon at the CDS's ends.

**Structure term.** Between lines right after an exon, the decoder chooses whether another exon
follows; the ``exon`` token gains the log-odds of a splice site at that exon's end (a donor on
``+``, an acceptor on ``-``).

Tracks are scaled by the guide weight once per window; the decoder's step gathers each row's
track by the role of the coordinate it writes (no host sync: CUDA-graph safe).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genoforge.genes.classes import (
    CDS_MINUS,
    CDS_PLUS,
    INTRON_MINUS,
    INTRON_PLUS,
    N_CLASSES,
    UTR3_MINUS,
    UTR3_PLUS,
    UTR5_MINUS,
    UTR5_PLUS,
)
from genoforge.genes.grammar import ROLE_NONE
from genoforge.model.base_signals import calibrated_log_odds

N_ROLES = 5  # ROLE_FIRST_START .. ROLE_CDS_END
N_GUIDE_TRACKS = 1 + 2 * N_ROLES  # track 0: no guidance (zeros), then the roles on +, on -
_EPS = 1e-6
# signal columns (genoforge.genes.classes.SIGNAL_NAMES): donor, acceptor, start, stop per strand
_DONOR, _ACCEPTOR, _START, _STOP = range(4)


def guide_track(role: int, strand: str) -> int:
    """The track index of a coordinate of ``role`` on ``strand`` (0 for none or no strand)."""
    if role == ROLE_NONE or strand not in ("+", "-"):
        return 0
    return role + (N_ROLES if strand == "-" else 0)


def _log_odds(p: Tensor) -> Tensor:
    p = p.clamp(_EPS, 1 - _EPS)
    return torch.log(p) - torch.log1p(-p)


def _cumulative(per_base_WL: Tensor) -> Tensor:
    """[W, L + 1]: entry b is the sum over bases 0 .. b - 1."""
    return F.pad(torch.cumsum(per_base_WL, dim=1), (1, 0))


def _boundary(per_base_WL: Tensor, shift: int = 0) -> Tensor:
    """[W, L + 1]: entry b is ``per_base[b + shift]`` (0 outside the window)."""
    padded = F.pad(per_base_WL, (0, 1))  # boundary L has no base of its own
    if shift > 0:
        return F.pad(padded[:, shift:], (0, shift))
    if shift < 0:
        return F.pad(padded[:, :shift], (-shift, 0))
    return padded


def guide_tracks(head_logits_WLK: Tensor, mask_WL: Tensor) -> tuple[Tensor, Tensor]:
    """(tracks [W, R, L + 1], splice [W, 2, L + 1]) float32, unscaled (module docstring).

    ``splice[:, s, b]`` is the log-odds of a splice site at the end of an exon ending at boundary
    b on strand s (0 ``+``, 1 ``-``): the structure term. Without signal outputs (K = classes
    only) the site terms are 0. Padding bases add nothing.
    """
    logits = head_logits_WLK.float()
    keep = mask_WL.to(logits.dtype)
    probs = torch.softmax(logits[..., :N_CLASSES], dim=-1)
    has_signals = logits.shape[-1] > N_CLASSES
    sites = calibrated_log_odds(logits[..., N_CLASSES:]) * keep.unsqueeze(-1) if has_signals else None
    W, L = mask_WL.shape
    tracks = logits.new_zeros(W, N_GUIDE_TRACKS, L + 1)
    splice = logits.new_zeros(W, 2, L + 1)
    strands = ((CDS_PLUS, INTRON_PLUS, (UTR5_PLUS, UTR3_PLUS)), (CDS_MINUS, INTRON_MINUS, (UTR5_MINUS, UTR3_MINUS)))
    for s, (cds, intron, utr) in enumerate(strands):
        p_cds = probs[..., list(cds)].sum(-1)
        p_utr = probs[..., list(utr)].sum(-1)
        p_exon = p_cds + p_utr
        p_intron = probs[..., list(intron)].sum(-1)
        p_out = 1 - p_exon - p_intron
        coding = p_exon * (torch.log(p_cds.clamp(min=_EPS)) - torch.log(p_utr.clamp(min=_EPS)))
        first = 1 + s * N_ROLES  # ROLE_FIRST_START's track on this strand
        tracks[:, first] = _cumulative(_log_odds(p_out) * keep)
        tracks[:, first + 1] = _cumulative(_log_odds(p_intron) * keep)
        tracks[:, first + 2] = _cumulative(_log_odds(p_exon) * keep)
        tracks[:, first + 3] = -_cumulative(coding * keep)
        tracks[:, first + 4] = _cumulative(coding * keep)
        if sites is None:
            continue
        site = sites[..., 4 * s: 4 * s + 4]
        if s == 0:  # + : acceptor at the exon start, start at the CDS start, stop codon ends the CDS
            tracks[:, first + 1] += _boundary(site[..., _ACCEPTOR])
            tracks[:, first + 3] += _boundary(site[..., _START])
            tracks[:, first + 4] += _boundary(site[..., _STOP], -3)
            splice[:, 0] = _boundary(site[..., _DONOR])
        else:  # - : a donor at the exon's low end, the stop codon is the CDS's first 3 bases
            tracks[:, first + 1] += _boundary(site[..., _DONOR])
            tracks[:, first + 3] += _boundary(site[..., _STOP], 3)
            tracks[:, first + 4] += _boundary(site[..., _START])
            splice[:, 1] = _boundary(site[..., _ACCEPTOR])
    return tracks, splice
