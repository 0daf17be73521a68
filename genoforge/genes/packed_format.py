"""The ``.packed`` shard format: baked samples as flat, memory-mappable typed arrays.

This module is the format's spec and holds the constants of its layout.

Layout (docs/architecture.md, "Packed shards"), all integers little-endian:

- bytes 0..8: the magic ``GFPACK01``;
- bytes 8..16: uint64 length ``H`` of the header;
- bytes 16..16+H: the header, UTF-8 JSON (keys sorted, so equal shards are equal bytes);
- zero padding to a 64-byte boundary, then the arrays, each starting on a 64-byte boundary and
  followed by zero padding.

The header holds ``schema_version``, ``n_samples``, ``tokenizer_hash``, the string tables
``species`` and ``seqids``, ``token_dtype``, and ``arrays``: for every array its absolute byte
``offset``, numpy ``dtype`` string and ``shape``. The arrays, n = number of samples:

==================  ========  =====  ==============================================================
name                dtype     shape  meaning
==================  ========  =====  ==============================================================
input_offsets       int64     n+1    sample i's input is input_tokens[offsets[i]:offsets[i+1]]
target_offsets      int64     n+1    likewise for target_tokens
input_tokens        uint16*   total  encoder ids (DNA tokens, then [HIT] + hints when hints are on)
target_tokens       uint16*   total  target ids, <bos> ... <eos> included
species_index       uint16    n      index into header ``species``
seqid_index         uint32    n      index into header ``seqids``
window_start        int64     n      window in 0-based half-open sequence coordinates
window_end          int64     n
base_offsets        int64     n+1    sample i's bases are bases[base_offsets[i]:base_offsets[i+1]]
bases               uint8     total  the window's DNA, one code per base (A0 C1 G2 T3, other 4)
base_labels         uint8     total  per-base gene-structure class (``genoforge.genes.classes``)
==================  ========  =====  ==============================================================

Schema 2 added the three base arrays (the per-base head's input and labels); a schema-1 shard
is refused with the fix (re-bake).

(*) uint32 when the tokenizer's vocabulary exceeds 65,535 ids.

A reader refuses (``ShardFormatError``) a wrong magic, an unknown schema version, a header that is
not JSON or lacks a field, an array that lies outside the file (truncation), and offsets that do not
run from 0 to the token count without decreasing.

Reading is :class:`~genoforge.genes.packed_reader.PackedShard`. Writing is streaming:
:class:`~genoforge.baking.packed_writer.PackedWriter` spills token ids to temporary files beside
the target as samples arrive, keeps only the per-sample metadata in memory, and assembles the shard
atomically on ``close``; its ``add_shard`` appends a whole shard in bulk (array copies, no
per-sample Python), which is how the bake merges per-species parts in canonical order.
"""

from __future__ import annotations

MAGIC = b"GFPACK01"
SCHEMA_VERSION = 2
ALIGNMENT = 64
UINT16_VOCAB_LIMIT = 65536

# The arrays in file order, with their fixed dtypes (None: the token dtype of the shard).
ARRAY_DTYPES: dict[str, str | None] = {
    "input_offsets": "<i8",
    "target_offsets": "<i8",
    "input_tokens": None,
    "target_tokens": None,
    "species_index": "<u2",
    "seqid_index": "<u4",
    "window_start": "<i8",
    "window_end": "<i8",
    "base_offsets": "<i8",
    "bases": "|u1",
    "base_labels": "|u1",
}
TOKEN_DTYPES = {"uint16": "<u2", "uint32": "<u4"}


def token_dtype_for(vocab_size: int) -> str:
    """``"uint16"`` for vocabularies that fit 16 bits, else ``"uint32"``."""
    return "uint16" if vocab_size <= UINT16_VOCAB_LIMIT else "uint32"


__all__ = [
    "ALIGNMENT",
    "ARRAY_DTYPES",
    "MAGIC",
    "SCHEMA_VERSION",
    "TOKEN_DTYPES",
    "UINT16_VOCAB_LIMIT",
    "token_dtype_for",
]
