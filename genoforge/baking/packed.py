"""The ``.packed`` shard format: baked samples as flat, memory-mappable typed arrays.

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

Writing is streaming: :class:`PackedWriter` spills token ids to temporary files beside the target
as samples arrive, keeps only the per-sample metadata in memory, and assembles the shard atomically
on :meth:`PackedWriter.close`. :meth:`PackedWriter.add_shard` appends a whole shard in bulk (array
copies, no per-sample Python), which is how the bake merges per-species parts in canonical order.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genoforge.errors import ShardFormatError
from genoforge.io import atomic_write

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
# Arrays streamed to spill files while samples arrive (the rest is per-sample metadata).
_SPILLED = ("input_tokens", "target_tokens", "bases", "base_labels")
TOKEN_DTYPES = {"uint16": "<u2", "uint32": "<u4"}
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


def token_dtype_for(vocab_size: int) -> str:
    """``"uint16"`` for vocabularies that fit 16 bits, else ``"uint32"``."""
    return "uint16" if vocab_size <= UINT16_VOCAB_LIMIT else "uint32"


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


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = [
    "MAGIC",
    "SCHEMA_VERSION",
    "PackedShard",
    "PackedWriter",
    "Sample",
    "file_sha256",
    "token_dtype_for",
]
