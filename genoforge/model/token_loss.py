"""The decoder's loss sums over a batch's label tokens, in fp32 (shared by the model's own loss,
the trainer and validation).

Label tokens are scored by the token head, except the coordinate digits the coordinate pointer
scores (:mod:`genoforge.model.pointer`): their terms come from the pointer instead, so a sum
still has one term per label token and the mean stays comparable with a model without one.
"""

from __future__ import annotations

from torch import Tensor

from genoforge.model.pointer import IGNORE_INDEX, PointerSums


def token_loss_sums(logits_BTV: Tensor, labels_BT: Tensor, label_smoothing: float) -> tuple[Tensor, Tensor, Tensor]:
    """(label-smoothed sum, plain CE sum, label count) over the labelled positions, in fp32.

    The smoothed loss is PyTorch's: ``(1 - e) * nll + e * mean over classes of -log p``.
    """
    import torch

    logp = torch.log_softmax(logits_BTV.float(), dim=-1)
    valid = labels_BT != IGNORE_INDEX
    safe = torch.where(valid, labels_BT, torch.zeros_like(labels_BT))
    nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    mask = valid.to(logp.dtype)
    nll_sum = (nll * mask).sum()
    if label_smoothing > 0:
        uniform = -logp.mean(dim=-1)
        smoothed_sum = ((1.0 - label_smoothing) * nll + label_smoothing * uniform).mul(mask).sum()
    else:
        smoothed_sum = nll_sum
    return smoothed_sum, nll_sum, mask.sum()


def decoder_loss_sums(logits_BTV: Tensor, pointer: PointerSums | None, labels_BT: Tensor,
                      label_smoothing: float) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`token_loss_sums` over every label token, the pointer's terms at the digits it
    scored (``pointer`` None: all from the token head)."""
    if pointer is None:
        return token_loss_sums(logits_BTV, labels_BT, label_smoothing)
    token_labels = labels_BT.masked_fill(pointer.scored_BT, IGNORE_INDEX)
    smoothed, nll, _ = token_loss_sums(logits_BTV, token_labels, label_smoothing)
    count = (labels_BT != IGNORE_INDEX).sum().float()
    return smoothed + pointer.smoothed_sum, nll + pointer.nll_sum, count
