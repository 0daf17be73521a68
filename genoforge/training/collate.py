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

When the shard has bases (packed schema 2) the batch also carries the per-base head's fields, one
row per document in placement order (``genoforge.model.base_inputs``): ``base_codes``,
``base_token``, ``base_offset``, ``base_mask``, ``base_labels``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

IGNORE_INDEX = -100
MODEL_FIELDS = ("input_ids", "input_doc", "input_bp", "decoder_ids", "decoder_doc", "labels")
BASE_BATCH_FIELDS = ("base_codes", "base_token", "base_offset", "base_mask", "base_labels")


def collate_rows(shard, rows: Sequence[np.ndarray], shape, *, pad_id: int, bp_lengths: np.ndarray) -> dict:
    """Build one micro-batch from ``rows`` (sample indices per row) of a PackedShard.

    Args:
        shard: a :class:`genoforge.genes.packed_reader.PackedShard` (anything with ``array(name)``).
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
    doc_bases, doc_labels, doc_tokens, doc_starts = [], [], [], []
    # Test doubles of a shard may lack the base arrays: the batch then has no base fields.
    has_bases = "bases" in getattr(shard, "header", {}).get("arrays", {})
    if has_bases:
        all_bases, all_labels, base_offsets = shard.array("bases"), shard.array("base_labels"), shard.array("base_offsets")
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
            if has_bases:
                lo, hi = base_offsets[sample], base_offsets[sample + 1]
                doc_bases.append(np.asarray(all_bases[lo:hi]))
                doc_labels.append(np.asarray(all_labels[lo:hi]))
                doc_tokens.append(ids)
                doc_starts.append(b * S + s)
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
    extra = {}
    if has_bases:
        from genoforge.model.base_inputs import base_fields

        fields = base_fields(doc_bases, doc_tokens, doc_starts, bp_lengths, labels=doc_labels)
        extra = {name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in fields.items()}
    return {
        **extra,
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
    names = MODEL_FIELDS + tuple(name for name in BASE_BATCH_FIELDS if name in batch)
    return {name: batch[name].to(device, non_blocking=True) for name in names}
