"""The ``.packed`` shard format: its spec and layout in :mod:`~genoforge.baking.packed_format`,
reading in :mod:`~genoforge.baking.packed_reader` (:class:`PackedShard`, :class:`Sample`), writing in
:mod:`~genoforge.baking.packed_writer` (:class:`PackedWriter`), all re-exported here; and
:func:`file_sha256`, the checksum the bake manifest records.
"""

from __future__ import annotations

from pathlib import Path

from genoforge.baking.packed_format import (
    ALIGNMENT,
    ARRAY_DTYPES,
    MAGIC,
    SCHEMA_VERSION,
    TOKEN_DTYPES,
    UINT16_VOCAB_LIMIT,
    token_dtype_for,
)
from genoforge.baking.packed_reader import PackedShard, Sample
from genoforge.baking.packed_writer import PackedWriter


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = [
    "ALIGNMENT",
    "ARRAY_DTYPES",
    "MAGIC",
    "SCHEMA_VERSION",
    "TOKEN_DTYPES",
    "UINT16_VOCAB_LIMIT",
    "PackedShard",
    "PackedWriter",
    "Sample",
    "file_sha256",
    "token_dtype_for",
]
