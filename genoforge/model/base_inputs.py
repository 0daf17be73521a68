"""The per-base head's input fields for a batch of windows (numpy, shared by tune and predict).

For W windows with L = the longest window's bases:

* ``base_codes`` uint8 [W, L]: base codes (A0 C1 G2 T3, other 4), 4 on padding;
* ``base_token`` int64 [W, L]: index into the flattened [B * S] encoder tokens of the token
  holding the base (tokens cover the window's bases left to right, ``bp_lengths[id]`` bases each);
* ``base_offset`` int16 [W, L]: the base's offset inside its token;
* ``base_mask`` bool [W, L]: True on the window's bases;
* ``base_labels`` int64 [W, L]: the class per base, -100 on padding and unlabelled (255) bases
  (only when labels are given).

Ids that cover no bases (specials, hint tokens after ``[HIT]``) hold no base. Should the tokens
cover fewer bases than the window (a tokenizer that drops characters), the remaining bases map to
the last DNA token; more, and the extra token bases are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE_INDEX = -100
UNLABELLED = 255
PAD_CODE = 4


def base_fields(bases: Sequence[np.ndarray], token_ids: Sequence[np.ndarray], token_starts: Sequence[int],
                bp_lengths: np.ndarray, labels: Sequence[np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The fields above for windows with ``bases[w]`` whose tokens ``token_ids[w]`` start at flat
    encoder position ``token_starts[w]`` (row * S + column of the window's first token)."""
    n = len(bases)
    width = max((b.size for b in bases), default=0)
    width = max(width, 1)
    codes = np.full((n, width), PAD_CODE, dtype=np.uint8)
    token = np.zeros((n, width), dtype=np.int64)
    offset = np.zeros((n, width), dtype=np.int16)
    mask = np.zeros((n, width), dtype=bool)
    out_labels = np.full((n, width), IGNORE_INDEX, dtype=np.int64) if labels is not None else None
    for w in range(n):
        length = bases[w].size
        codes[w, :length] = bases[w]
        mask[w, :length] = True
        ids = np.asarray(token_ids[w], dtype=np.int64)
        spans = bp_lengths[ids].astype(np.int64) if ids.size else np.zeros(0, np.int64)
        holder = np.repeat(np.arange(ids.size), spans)[:length]
        starts = np.concatenate([[0], np.cumsum(spans)[:-1]]) if ids.size else np.zeros(0, np.int64)
        if holder.size < length:  # pad the tail with the last DNA token
            dna = np.flatnonzero(spans)
            last = int(dna[-1]) if dna.size else 0
            holder = np.concatenate([holder, np.full(length - holder.size, last)])
        within = np.arange(length) - (starts[holder] if starts.size else 0)
        token[w, :length] = token_starts[w] + holder
        offset[w, :length] = np.clip(within, 0, np.iinfo(np.int16).max)
        if out_labels is not None:
            row = np.asarray(labels[w][:length], dtype=np.int64)
            out_labels[w, :length] = np.where(row == UNLABELLED, IGNORE_INDEX, row)
    fields = {"base_codes": codes, "base_token": token, "base_offset": offset, "base_mask": mask}
    if out_labels is not None:
        fields["base_labels"] = out_labels
    return fields
