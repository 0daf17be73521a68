"""The training objective's pieces, and the per-micro-batch seeds.

The loss of an optimizer step is ``sum over its micro-batches (all ranks) of the label-smoothed
token losses / the step's label tokens`` plus the MoE terms (see ``genoforge.training.loop``);
:func:`token_loss_sums` gives the sums that formula needs, in fp32.
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -100


def micro_batch_seed(seed: int, epoch: int, index: int) -> int:
    """The torch seed set before micro-batch ``index`` of ``epoch`` (independent streams)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def token_loss_sums(logits_BTV, labels_BT, label_smoothing: float):
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
