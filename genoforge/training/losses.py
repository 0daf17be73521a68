"""The training objective's pieces, and the per-micro-batch seeds.

The loss of an optimizer step is ``sum over its micro-batches (all ranks) of the label-smoothed
token losses / the step's label tokens`` plus the MoE terms (see ``genoforge.training.loop``);
:func:`decoder_loss_sums` (:mod:`genoforge.model.token_loss`) gives the sums that formula
needs, in fp32, the coordinate pointer's terms included.
"""

from __future__ import annotations

import numpy as np

from genoforge.model.token_loss import decoder_loss_sums, token_loss_sums

IGNORE_INDEX = -100
__all__ = ["IGNORE_INDEX", "decoder_loss_sums", "micro_batch_seed", "token_loss_sums"]


def micro_batch_seed(seed: int, epoch: int, index: int) -> int:
    """The torch seed set before micro-batch ``index`` of ``epoch`` (independent streams)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)
