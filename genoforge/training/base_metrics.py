"""The per-base head's class weights and validation scores.

Class weights: the head's classes are very unequal (intergenic and introns dominate most genomes,
each CDS frame class is a few percent), so the per-base CE weights class c by ``f_c ** -0.5`` (f_c
its share of the labelled training bases, floored at 1e-4), normalised so that the
frequency-weighted mean weight is 1: rare classes count more without the noise of full inverse
frequency. Classes absent from the training data get the largest weight present.

Validation scores: a [K, K] confusion matrix (truth x argmax prediction) over labelled bases,
summed over the validation micro-batches (and ranks), and from it base-level F1 per class and per
coarse group (``genoforge.genes.classes.CLASS_GROUPS``: a base counts as correct for a group when
truth and prediction are both in the group, e.g. CDS in any frame on either strand).
"""

from __future__ import annotations

import numpy as np

from genoforge.genes.classes import CLASS_GROUPS, CLASS_NAMES, IGNORE_LABEL, N_CLASSES, class_weights


def class_frequencies(labels: np.ndarray, chunk: int = 1 << 24) -> np.ndarray:
    """Counts per class of a uint8 label array (255 = unlabelled, left out), in chunks."""
    counts = np.zeros(256, dtype=np.int64)
    for begin in range(0, labels.size, chunk):
        counts += np.bincount(np.asarray(labels[begin : begin + chunk]), minlength=256)
    counts[IGNORE_LABEL] = 0
    return counts[:N_CLASSES]


def base_class_weights(shard):
    """Per-class weights (float32 tensor [K]) from a shard's training labels; None when unlabelled."""
    import torch

    weights = class_weights(class_frequencies(shard.array("base_labels")))
    return None if weights is None else torch.tensor(weights, dtype=torch.float32)


def base_confusion(base_logits_WLK, base_labels_WL):
    """[K, K] float64 counts of (true class, predicted class) over labelled bases (device tensor)."""
    import torch

    labels = base_labels_WL.reshape(-1)
    predicted = base_logits_WLK.reshape(-1, base_logits_WLK.shape[-1]).argmax(-1)
    keep = labels >= 0
    index = labels[keep] * N_CLASSES + predicted[keep]
    return torch.bincount(index, minlength=N_CLASSES * N_CLASSES).reshape(N_CLASSES, N_CLASSES).double()


def _f1(tp: float, fp: float, fn: float) -> float | None:
    if tp + fp + fn == 0:
        return None
    return 2 * tp / (2 * tp + fp + fn)


def base_f1_scores(confusion: np.ndarray) -> dict[str, float | None]:
    """``base_<group>_f1`` per coarse group and ``base_f1_<class>`` per class (None: undefined)."""
    scores: dict[str, float | None] = {}
    for group, members in CLASS_GROUPS.items():
        idx = list(members)
        inside = confusion[np.ix_(idx, idx)].sum()
        truth = confusion[idx, :].sum()
        predicted = confusion[:, idx].sum()
        scores[f"base_{group}_f1"] = _f1(inside, predicted - inside, truth - inside)
    for c, name in enumerate(CLASS_NAMES):
        tp = confusion[c, c]
        scores[f"base_f1_{name}"] = _f1(tp, confusion[:, c].sum() - tp, confusion[c, :].sum() - tp)
    return scores


SELECTION_GROUPS = ("cds", "intron", "intergenic")


def base_structure_error(scores: dict) -> float:
    """1 - the mean base-level F1 of the CDS, intron and intergenic groups (absent ones skipped).

    What picks ``best/`` and drives early stopping for the per-base head. Not the class-weighted
    CE: on the shared data that CE bottoms out within a few epochs (the head grows confident on
    the rare classes it gets wrong) while every F1 the decoder depends on keeps rising.
    """
    values = [scores.get(f"base_{group}_f1") for group in SELECTION_GROUPS]
    values = [v for v in values if v is not None]
    return 1.0 - (sum(values) / len(values) if values else 0.0)
