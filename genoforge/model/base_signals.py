"""The per-base head's signal outputs: their targets and their loss.

Shape legend: W windows, L bases, S the ``N_SIGNALS`` = 8 signals (``genes.classes.SIGNAL_NAMES``).

The eight signals (donor, acceptor, start, stop on each strand; positions defined in
:mod:`genoforge.genes.classes`) are read off the class labels, so old bakes need nothing new:
a donor on + is an exon base followed by an intron base, and so on. Each is a binary output
trained with a positive-weighted binary cross-entropy (sites are rare: about one base in a
thousand), so a raw logit overstates the odds by ``SIGNAL_POS_WEIGHT``;
:func:`calibrated_log_odds` removes that, giving the log-odds the structure decoder adds at a
signal edge.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genoforge.genes.classes import CDS_MINUS, CDS_PLUS, INTRON_MINUS, INTRON_PLUS, N_CLASSES, N_SIGNALS, UTR3_MINUS
from genoforge.genes.classes import UTR3_PLUS, UTR5_MINUS, UTR5_PLUS

SIGNAL_POS_WEIGHT = 20.0  # weight of a positive base in the signal BCE
SIGNAL_INIT_BIAS = -4.0  # initial signal logit: p ~ 0.02 (x the positive weight: odds ~ 0.4)
LOG_ODDS_FLOOR = -30.0  # calibrated log-odds are clipped to [floor, -floor]


def _table(classes: tuple[int, ...]) -> Tensor:
    """bool [N_CLASSES + 1]: True at ``classes``; the last entry (unlabelled) False."""
    table = torch.zeros(N_CLASSES + 1, dtype=torch.bool)
    table[list(classes)] = True
    return table


_CDS = (_table(CDS_PLUS), _table(CDS_MINUS))
_INTRON = (_table(INTRON_PLUS), _table(INTRON_MINUS))
_EXON = (_table(CDS_PLUS + (UTR5_PLUS, UTR3_PLUS)), _table(CDS_MINUS + (UTR5_MINUS, UTR3_MINUS)))
_OUTSIDE = tuple(~(cds | intron) for cds, intron in zip(_CDS, _INTRON))  # labelled, not CDS/intron
for _outside in _OUTSIDE:
    _outside[N_CLASSES] = False


def signal_targets(labels_WL: Tensor) -> tuple[Tensor, Tensor]:
    """(float targets [W, L, S], bool labelled [W, L]) from class labels (negative or >=
    ``N_CLASSES`` = unlabelled; an unlabelled neighbour makes no site)."""
    labels = labels_WL.long()
    index = torch.where((labels < 0) | (labels >= N_CLASSES), N_CLASSES, labels)
    width = labels.shape[1]

    def at(table: Tensor, shift: int) -> Tensor:
        """``table`` of the label at ``t + shift`` for every t (False beyond the window)."""
        hit = table.to(labels.device)[index]
        out = torch.zeros_like(hit)
        if shift >= 0:
            out[:, : width - shift] = hit[:, shift:]
        else:
            out[:, -shift:] = hit[:, : width + shift]
        return out

    targets = []
    for strand in (0, 1):
        cds, intron, exon, outside = _CDS[strand], _INTRON[strand], _EXON[strand], _OUTSIDE[strand]
        if strand == 0:
            donor = at(exon, -1) & at(intron, 0)
            acceptor = at(intron, -1) & at(exon, 0)
            start = at(outside, -1) & at(cds, 0)
            stop = at(cds, 0) & at(cds, 1) & at(cds, 2) & at(outside, 3)
        else:
            donor = at(intron, -1) & at(exon, 0)
            acceptor = at(exon, -1) & at(intron, 0)
            start = at(cds, -1) & at(outside, 0)
            stop = at(outside, -4) & at(cds, -3) & at(cds, -2) & at(cds, -1)
        targets += [donor, acceptor, start, stop]
    labelled = index < N_CLASSES
    return torch.stack(targets, dim=-1).float(), labelled


def signal_loss(signal_logits_WLS: Tensor, labels_WL: Tensor) -> Tensor:
    """Sum over the signals of the positive-weighted BCE, each a mean over labelled bases."""
    targets, labelled = signal_targets(labels_WL)
    weight = torch.full((N_SIGNALS,), SIGNAL_POS_WEIGHT, device=signal_logits_WLS.device)
    per_base = F.binary_cross_entropy_with_logits(signal_logits_WLS.float(), targets, pos_weight=weight,
                                                  reduction="none")
    keep = labelled.unsqueeze(-1).float()
    return (per_base * keep).sum() / keep.sum().clamp(min=1.0)


def calibrated_log_odds(signal_logits: Tensor) -> Tensor:
    """The signals' log-odds with the positive weight's bias removed, clipped to +-30."""
    return (signal_logits.float() - math.log(SIGNAL_POS_WEIGHT)).clamp(LOG_ODDS_FLOOR, -LOG_ODDS_FLOOR)
