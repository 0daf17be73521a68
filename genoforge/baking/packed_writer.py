"""Writing ``.packed`` shards (format: :mod:`~genoforge.genes.packed_format`): :class:`PackedWriter`.

Token ids, bases and labels are spilled to temporary files beside the target as samples arrive;
only the per-sample metadata stays in memory; the shard is assembled, aligned, on ``close`` and
appears atomically (:func:`genoforge.io.atomic_write`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from genoforge.errors import ShardFormatError
from genoforge.genes.packed_format import (
    ALIGNMENT,
    ARRAY_DTYPES,
    MAGIC,
    SCHEMA_VERSION,
    TOKEN_DTYPES,
)
from genoforge.genes.packed_reader import PackedShard
from genoforge.io import atomic_write

# Arrays streamed to spill files while samples arrive (the rest is per-sample metadata).
_SPILLED = ("input_tokens", "target_tokens", "bases", "base_labels")
# The writer's per-sample metadata (lengths become the offsets arrays on close).
_META_DTYPES = {
    "input_lengths": "<i8",
    "target_lengths": "<i8",
    "species_index": "<u2",
    "seqid_index": "<u4",
    "window_start": "<i8",
    "window_end": "<i8",
    "base_lengths": "<i8",
}
_COPY_CHUNK = 1 << 24  # bytes per copy step when assembling a shard; bounds writer memory


def _pad(n: int) -> int:
    return (-n) % ALIGNMENT


class PackedWriter:
    """Write one ``.packed`` shard, streaming; the file appears (atomically) only on close.

    Args:
        path: the shard to create.
        tokenizer_hash: the content hash of the tokenizer the ids come from.
        token_dtype: ``"uint16"`` or ``"uint32"`` (see :func:`token_dtype_for`).

    Use as a context manager: an exception inside the block discards everything written.
    """

    def __init__(self, path: str | Path, *, tokenizer_hash: str, token_dtype: str = "uint16"):
        if token_dtype not in TOKEN_DTYPES:
            raise ValueError(f"token_dtype must be one of {sorted(TOKEN_DTYPES)}, not {token_dtype!r}")
        self.path = Path(path)
        self.tokenizer_hash = tokenizer_hash
        self.token_dtype = token_dtype
        self._np_token_dtype = np.dtype(TOKEN_DTYPES[token_dtype])
        self._max_token = np.iinfo(self._np_token_dtype).max
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._spill_dir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self._spills = {name: open(self._spill_dir / name, "wb") for name in _SPILLED}
        self._spilled = {name: 0 for name in _SPILLED}  # elements written per spilled array
        # Per-sample metadata: bulk-added arrays in ``_meta``; single adds gather in ``_pending``
        # (plain ints, cheap to append) and are flushed to an array before the next bulk add.
        self._meta: dict[str, list[np.ndarray]] = {name: [] for name in _META_DTYPES}
        self._pending: dict[str, list[int]] = {name: [] for name in _META_DTYPES}
        self._species: dict[str, int] = {}
        self._seqids: dict[str, int] = {}
        self._closed = False

    # -- adding samples ----------------------------------------------------------------------

    @property
    def n_samples(self) -> int:
        return sum(a.size for a in self._meta["window_start"]) + len(self._pending["window_start"])

    def _flush_pending(self) -> None:
        for name, values in self._pending.items():
            if values:
                self._meta[name].append(np.array(values, dtype=_META_DTYPES[name]))
                values.clear()

    def _intern(self, table: dict[str, int], value: str, limit: int, what: str) -> int:
        index = table.get(value)
        if index is None:
            index = len(table)
            if index > limit:
                raise ShardFormatError(f"more than {limit + 1} distinct {what} in one shard", self.path)
            table[value] = index
        return index

    def _tokens(self, ids: Sequence[int] | np.ndarray, what: str) -> np.ndarray:
        array = np.asarray(ids)
        if array.ndim != 1:
            raise ValueError(f"{what} must be one-dimensional")
        if array.size and (int(array.min()) < 0 or int(array.max()) > self._max_token):
            raise ValueError(f"{what} hold an id outside {self.token_dtype}")
        return array.astype(self._np_token_dtype, copy=False)

    def add(
        self,
        input_ids: Sequence[int] | np.ndarray,
        target_ids: Sequence[int] | np.ndarray,
        *,
        species: str,
        seqid: str,
        window_start: int,
        window_end: int,
        bases: np.ndarray | None = None,
        base_labels: np.ndarray | None = None,
    ) -> None:
        """Append one sample (ids must fit the shard's token dtype; ``bases`` and ``base_labels``
        are uint8 arrays of the window's length; left out: all N, unlabelled (255), which the
        per-base loss ignores)."""
        self._check_open()
        if not 0 <= window_start <= window_end:
            raise ValueError(f"bad window [{window_start}, {window_end})")
        inputs = self._tokens(input_ids, "input ids")
        targets = self._tokens(target_ids, "target ids")
        length = window_end - window_start
        base_array = np.full(length, 4, np.uint8) if bases is None else np.asarray(bases, dtype=np.uint8)
        label_array = (np.full(length, 255, np.uint8) if base_labels is None
                       else np.asarray(base_labels, dtype=np.uint8))
        if base_array.shape != (window_end - window_start,) or label_array.shape != base_array.shape:
            raise ValueError("bases and base labels must have one entry per base of the window")
        for name, array in (("input_tokens", inputs), ("target_tokens", targets),
                            ("bases", base_array), ("base_labels", label_array)):
            self._spills[name].write(array.tobytes())
            self._spilled[name] += array.size
        pending = self._pending
        pending["input_lengths"].append(int(inputs.size))
        pending["target_lengths"].append(int(targets.size))
        pending["base_lengths"].append(int(base_array.size))
        pending["species_index"].append(self._intern(self._species, species, 0xFFFF, "species"))
        pending["seqid_index"].append(self._intern(self._seqids, seqid, 0xFFFFFFFF, "seqids"))
        pending["window_start"].append(int(window_start))
        pending["window_end"].append(int(window_end))

    def add_shard(self, shard: PackedShard) -> None:
        """Append every sample of ``shard`` in order, copying its arrays in bulk.

        Raises:
            ShardFormatError: the shard was baked with another tokenizer or wider token ids.
        """
        self._check_open()
        if shard.tokenizer_hash != self.tokenizer_hash:
            raise ShardFormatError(
                f"baked with tokenizer {shard.tokenizer_hash[:12]}, expected "
                f"{self.tokenizer_hash[:12]}; bake all parts with one tokenizer",
                shard.path,
            )
        for name in ("input_tokens", "target_tokens"):
            if shard.array(name).dtype.itemsize > self._np_token_dtype.itemsize:
                raise ShardFormatError(f"{name} wider than {self.token_dtype}", shard.path)
        n = len(shard)
        if n == 0:
            return
        species_map = np.array(
            [self._intern(self._species, s, 0xFFFF, "species") for s in shard.species], dtype=np.uint16
        )
        seqid_map = np.array(
            [self._intern(self._seqids, s, 0xFFFFFFFF, "seqids") for s in shard.seqids], dtype=np.uint32
        )
        for name in _SPILLED:
            values = shard.array(name)
            dtype = self._np_token_dtype if name.endswith("tokens") else np.uint8
            for begin in range(0, values.size, _COPY_CHUNK // 4):
                self._spills[name].write(values[begin : begin + _COPY_CHUNK // 4].astype(dtype).tobytes())
            self._spilled[name] += int(values.size)
        self._flush_pending()
        meta = self._meta
        meta["input_lengths"].append(np.asarray(shard.input_lengths(), dtype=np.int64))
        meta["target_lengths"].append(np.asarray(shard.target_lengths(), dtype=np.int64))
        meta["base_lengths"].append(np.diff(shard.array("base_offsets")).astype(np.int64))
        meta["species_index"].append(species_map[shard.array("species_index")])
        meta["seqid_index"].append(seqid_map[shard.array("seqid_index")])
        meta["window_start"].append(np.array(shard.array("window_start"), dtype=np.int64))
        meta["window_end"].append(np.array(shard.array("window_end"), dtype=np.int64))

    # -- finishing -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("PackedWriter is closed")

    @staticmethod
    def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    def close(self) -> Path:
        """Assemble the shard at ``path`` (temp file + rename) and remove the spill files."""
        self._check_open()
        self._closed = True
        try:
            for spill in self._spills.values():
                spill.close()
            self._assemble()
        finally:
            shutil.rmtree(self._spill_dir, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Discard everything; no file is created."""
        if self._closed:
            return
        self._closed = True
        for spill in self._spills.values():
            spill.close()
        shutil.rmtree(self._spill_dir, ignore_errors=True)

    def __enter__(self) -> PackedWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()

    def _assemble(self) -> None:
        token_dtype = TOKEN_DTYPES[self.token_dtype]
        self._flush_pending()
        meta = {name: self._cat(parts, _META_DTYPES[name]) for name, parts in self._meta.items()}
        n = int(meta["window_start"].size)
        small: dict[str, np.ndarray] = {
            "input_offsets": np.concatenate([[0], np.cumsum(meta["input_lengths"])]).astype("<i8"),
            "target_offsets": np.concatenate([[0], np.cumsum(meta["target_lengths"])]).astype("<i8"),
            "species_index": meta["species_index"],
            "seqid_index": meta["seqid_index"],
            "window_start": meta["window_start"],
            "window_end": meta["window_end"],
            "base_offsets": np.concatenate([[0], np.cumsum(meta["base_lengths"])]).astype("<i8"),
        }
        shapes = {name: int(array.size) for name, array in small.items()}
        shapes.update(self._spilled)
        dtypes = {name: (dt or token_dtype) for name, dt in ARRAY_DTYPES.items()}

        def header_bytes(arrays: dict[str, dict[str, Any]]) -> bytes:
            header = {
                "schema_version": SCHEMA_VERSION,
                "n_samples": n,
                "tokenizer_hash": self.tokenizer_hash,
                "token_dtype": self.token_dtype,
                "species": list(self._species),
                "seqids": list(self._seqids),
                "arrays": arrays,
            }
            return json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")

        # The array offsets depend on the header length, which depends on the offsets' digits:
        # lay out with a guess, then again until the header length stops changing (2 rounds).
        header_len = 0
        while True:
            position = len(MAGIC) + 8 + header_len
            position += _pad(position)
            arrays: dict[str, dict[str, Any]] = {}
            for name in ARRAY_DTYPES:
                arrays[name] = {"offset": position, "dtype": dtypes[name], "shape": [shapes[name]]}
                position += shapes[name] * np.dtype(dtypes[name]).itemsize
                position += _pad(position)
            header = header_bytes(arrays)
            if len(header) == header_len:
                break
            header_len = len(header)

        with atomic_write(self.path, "wb") as out:
            out.write(MAGIC)
            out.write(np.uint64(len(header)).astype("<u8").tobytes())
            out.write(header)
            written = len(MAGIC) + 8 + len(header)
            for name in ARRAY_DTYPES:
                out.write(b"\0" * _pad(written))
                written += _pad(written)
                assert written == arrays[name]["offset"], "layout and writes disagree"
                if name in small:
                    data = small[name].tobytes()
                    out.write(data)
                    written += len(data)
                else:
                    with open(self._spill_dir / name, "rb") as spill:
                        while chunk := spill.read(_COPY_CHUNK):
                            out.write(chunk)
                            written += len(chunk)
            out.write(b"\0" * _pad(written))


__all__ = ["PackedWriter"]
