"""Reading ``.packed`` shards (format: :mod:`~genoforge.genes.packed_format`): :class:`PackedShard`
maps one read-only and checks it, :class:`Sample` is one of its baked windows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Sample:
    """One baked window: encoder input ids, decoder target ids, where the window lies, and its
    bases with their per-base classes (uint8 views)."""

    input_ids: np.ndarray
    target_ids: np.ndarray
    species: str
    seqid: str
    window_start: int
    window_end: int
    bases: np.ndarray | None = None
    base_labels: np.ndarray | None = None


class PackedShard:
    """A ``.packed`` shard, memory-mapped read-only; nothing but the header is read on open.

    Raises:
        ShardFormatError: bad magic, unknown schema version, malformed header, truncation, or
            inconsistent offsets.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise ShardFormatError("packed shard not found; check the path or re-run genoforge bake", self.path)
        size = self.path.stat().st_size
        with open(self.path, "rb") as handle:
            prefix = handle.read(len(MAGIC) + 8)
            if len(prefix) < len(MAGIC) + 8 or prefix[: len(MAGIC)] != MAGIC:
                raise ShardFormatError(
                    f"not a genoforge packed shard (magic {prefix[:8]!r}, expected {MAGIC!r}); "
                    "re-run genoforge bake",
                    self.path,
                )
            header_len = int(np.frombuffer(prefix[len(MAGIC) :], dtype="<u8")[0])
            if len(MAGIC) + 8 + header_len > size:
                raise ShardFormatError("truncated inside the header; re-run genoforge bake", self.path)
            raw_header = handle.read(header_len)
        try:
            header = json.loads(raw_header.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ShardFormatError(f"header is not valid JSON ({exc}); re-run genoforge bake", self.path) from exc
        self.header: dict[str, Any] = header
        self._validate_header(size)
        self._raw = np.memmap(self.path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        self._arrays: dict[str, np.ndarray] = {}
        for name, spec in self.header["arrays"].items():
            dtype = np.dtype(spec["dtype"])
            count = int(spec["shape"][0])
            begin = int(spec["offset"])
            self._arrays[name] = self._raw[begin : begin + count * dtype.itemsize].view(dtype)
        self._validate_offsets()

    def _validate_header(self, size: int) -> None:
        header = self.header
        version = header.get("schema_version") if isinstance(header, dict) else None
        if version == 1:
            raise ShardFormatError(
                "baked with packed schema 1, which has no per-base bases and labels; re-run "
                "genoforge bake with this version",
                self.path,
            )
        if version != SCHEMA_VERSION:
            raise ShardFormatError(
                f"unknown packed schema version {version!r} (this genoforge reads {SCHEMA_VERSION}); "
                "re-bake with this version",
                self.path,
            )
        for key in ("n_samples", "tokenizer_hash", "species", "seqids", "arrays", "token_dtype"):
            if key not in header:
                raise ShardFormatError(f"header lacks {key!r}; re-run genoforge bake", self.path)
        arrays = header["arrays"]
        if not isinstance(arrays, dict) or set(arrays) != set(ARRAY_DTYPES):
            raise ShardFormatError(
                f"header arrays {sorted(arrays) if isinstance(arrays, dict) else arrays!r} are not "
                f"{sorted(ARRAY_DTYPES)}; re-run genoforge bake",
                self.path,
            )
        n = header["n_samples"]
        token_dtype = TOKEN_DTYPES.get(header["token_dtype"])
        if token_dtype is None:
            raise ShardFormatError(f"unknown token dtype {header['token_dtype']!r}", self.path)
        expected_shapes = {"input_offsets": n + 1, "target_offsets": n + 1, "base_offsets": n + 1}
        for name in ("species_index", "seqid_index", "window_start", "window_end"):
            expected_shapes[name] = n
        for name, spec in arrays.items():
            try:
                offset = int(spec["offset"])
                dtype = np.dtype(spec["dtype"])
                count = int(spec["shape"][0])
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise ShardFormatError(f"array {name!r} has a malformed entry ({exc})", self.path) from exc
            wanted = ARRAY_DTYPES[name] or token_dtype
            if dtype != np.dtype(wanted):
                raise ShardFormatError(f"array {name!r} has dtype {dtype}, expected {wanted}", self.path)
            if name in expected_shapes and count != expected_shapes[name]:
                raise ShardFormatError(
                    f"array {name!r} has {count} entries, expected {expected_shapes[name]}", self.path
                )
            if offset % ALIGNMENT or offset < 0:
                raise ShardFormatError(f"array {name!r} is not 64-byte aligned", self.path)
            if offset + count * dtype.itemsize > size:
                raise ShardFormatError(
                    f"truncated: array {name!r} ends at byte {offset + count * dtype.itemsize:,} but the "
                    f"file has {size:,} bytes; re-run genoforge bake",
                    self.path,
                )

    def _validate_offsets(self) -> None:
        for offsets_name, tokens_name in (("input_offsets", "input_tokens"), ("target_offsets", "target_tokens"),
                                          ("base_offsets", "bases")):
            offsets = self._arrays[offsets_name]
            total = self._arrays[tokens_name].size
            if offsets[0] != 0 or offsets[-1] != total or (offsets.size > 1 and np.any(np.diff(offsets) < 0)):
                raise ShardFormatError(
                    f"{offsets_name} do not run from 0 to {total} without decreasing; re-run genoforge bake",
                    self.path,
                )
        n = len(self)
        if n and (
            int(self._arrays["species_index"].max()) >= len(self.species)
            or int(self._arrays["seqid_index"].max()) >= len(self.seqids)
        ):
            raise ShardFormatError("a species or seqid index points past its table", self.path)

    # -- reading ---------------------------------------------------------------------------

    @property
    def tokenizer_hash(self) -> str:
        return str(self.header["tokenizer_hash"])

    @property
    def species(self) -> list[str]:
        return list(self.header["species"])

    @property
    def seqids(self) -> list[str]:
        return list(self.header["seqids"])

    @property
    def token_dtype(self) -> str:
        return str(self.header["token_dtype"])

    def __len__(self) -> int:
        return int(self.header["n_samples"])

    def array(self, name: str) -> np.ndarray:
        """The named array as a read-only memory-mapped view (see the module table)."""
        return self._arrays[name]

    def input_lengths(self) -> np.ndarray:
        """Input token count per sample (int64 [n]), from the offsets only."""
        return np.diff(self._arrays["input_offsets"])

    def target_lengths(self) -> np.ndarray:
        """Target token count per sample (int64 [n]), from the offsets only."""
        return np.diff(self._arrays["target_offsets"])

    def sample(self, index: int) -> Sample:
        """Sample ``index`` (negative counts from the end); ids are views into the map."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for a shard of {n} samples")
        i = index % n
        a = self._arrays
        return Sample(
            input_ids=a["input_tokens"][a["input_offsets"][i] : a["input_offsets"][i + 1]],
            target_ids=a["target_tokens"][a["target_offsets"][i] : a["target_offsets"][i + 1]],
            species=self.species[int(a["species_index"][i])],
            seqid=self.seqids[int(a["seqid_index"][i])],
            window_start=int(a["window_start"][i]),
            window_end=int(a["window_end"][i]),
            bases=a["bases"][a["base_offsets"][i] : a["base_offsets"][i + 1]],
            base_labels=a["base_labels"][a["base_offsets"][i] : a["base_offsets"][i + 1]],
        )

    def __reduce__(self):  # type: ignore[no-untyped-def]
        # Pickled (e.g. into DataLoader workers) as its path: the receiver maps the file itself
        # instead of receiving a copy of every array.
        return (PackedShard, (str(self.path),))

    def __iter__(self):  # type: ignore[no-untyped-def]
        for i in range(len(self)):
            yield self.sample(i)


__all__ = ["PackedShard", "Sample"]
