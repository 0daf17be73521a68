"""Rows of whole samples -> the model batch (docs/architecture.md, "Model batch").

Shapes: B rows, S = encoder_row_len, T = decoder_row_len. Per row, documents are numbered 0.. in
placement order, the same numbering in both streams:

* ``input_ids`` long [B, S]: the samples' input ids back to back, ``pad_id`` after them;
* ``input_doc`` int32 [B, S]: document index, -1 on padding;
* ``input_bp`` int32 [B, S]: bases of the document before the token (its first base's
  window-relative offset), from the tokenizer's bases-per-id table;
* ``decoder_ids`` long [B, T]: per document ``<bos>`` t1 .. t(n-1), ``pad_id`` after;
* ``decoder_doc`` int32 [B, T]: document index, -1 on padding;
* ``labels`` long [B, T]: t1 .. ``<eos>`` per document, -100 on padding.

Besides the model fields the batch carries ``enc_tokens`` / ``dec_tokens`` (real positions) and
``docs_per_row`` (the most documents in one row: the model's latent slots per row), all ints.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE_INDEX = -100
MODEL_FIELDS = ("input_ids", "input_doc", "input_bp", "decoder_ids", "decoder_doc", "labels")


def collate_rows(shard, rows: Sequence[np.ndarray], shape, *, pad_id: int, bp_lengths: np.ndarray) -> dict:
    """Build one micro-batch from ``rows`` (sample indices per row) of a PackedShard.

    Args:
        shard: a :class:`genoforge.baking.packed.PackedShard` (anything with ``array(name)``).
        rows: at most ``shape.rows_per_batch`` rows; missing rows are all padding.
        shape: the :class:`genoforge.training.data.RowShape` of the run.
        pad_id: the tokenizer's pad id.
        bp_lengths: bases per token id (int array over the vocabulary).
    """
    import torch

    B, S, T = shape.rows_per_batch, shape.encoder_row_len, shape.decoder_row_len
    input_ids = np.full((B, S), pad_id, dtype=np.int64)
    input_doc = np.full((B, S), -1, dtype=np.int32)
    input_bp = np.zeros((B, S), dtype=np.int32)
    decoder_ids = np.full((B, T), pad_id, dtype=np.int64)
    decoder_doc = np.full((B, T), -1, dtype=np.int32)
    labels = np.full((B, T), IGNORE_INDEX, dtype=np.int64)
    in_tokens = shard.array("input_tokens")
    in_offsets = shard.array("input_offsets")
    tgt_tokens = shard.array("target_tokens")
    tgt_offsets = shard.array("target_offsets")
    enc_total = dec_total = 0
    for b, row in enumerate(rows):
        s = t = 0
        for doc, sample in enumerate(np.asarray(row).tolist()):
            ids = np.asarray(in_tokens[in_offsets[sample] : in_offsets[sample + 1]], dtype=np.int64)
            n = ids.size
            if s + n > S:
                raise ValueError(f"row {b} overflows the encoder row ({s + n} > {S})")
            input_ids[b, s : s + n] = ids
            input_doc[b, s : s + n] = doc
            bases = bp_lengths[ids]
            input_bp[b, s + 1 : s + n] = np.cumsum(bases[:-1]) if n > 1 else 0
            s += n
            target = np.asarray(tgt_tokens[tgt_offsets[sample] : tgt_offsets[sample + 1]], dtype=np.int64)
            m = max(target.size - 1, 0)
            if t + m > T:
                raise ValueError(f"row {b} overflows the decoder row ({t + m} > {T})")
            decoder_ids[b, t : t + m] = target[:-1]
            labels[b, t : t + m] = target[1:]
            decoder_doc[b, t : t + m] = doc
            t += m
        enc_total += s
        dec_total += t
    return {
        "input_ids": torch.from_numpy(input_ids),
        "input_doc": torch.from_numpy(input_doc),
        "input_bp": torch.from_numpy(input_bp),
        "decoder_ids": torch.from_numpy(decoder_ids),
        "decoder_doc": torch.from_numpy(decoder_doc),
        "labels": torch.from_numpy(labels),
        "enc_tokens": enc_total,
        "dec_tokens": dec_total,
        "docs_per_row": max((len(row) for row in rows), default=1),
    }


def model_batch(batch: dict, device) -> dict:
    """The model fields of a collated batch, moved to ``device`` (non-blocking from pinned memory)."""
    return {name: batch[name].to(device, non_blocking=True) for name in MODEL_FIELDS}
