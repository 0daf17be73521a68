"""Packing plan and token-budget batching over memory-mapped shards.

Everything here is planned from the shard's index (token counts from the offsets) without reading
a payload, and is a pure function of (lengths, settings, seed, epoch): every rank computes the same
plan and takes its own share, so a resumed run sees exactly the batches it would have seen.

Vocabulary (see ``genoforge.training.config`` for the user-facing units):

* sample i occupies ``input_len[i]`` encoder positions and ``target_len[i] - 1`` decoder positions;
* a *row* holds whole samples with ``sum(enc) <= encoder_row_len`` and
  ``sum(dec) <= decoder_row_len``;
* a *micro-batch* is ``rows_per_batch`` rows; an *optimizer step* takes ``world_size *
  grad_accum`` consecutive micro-batches. Micro-batch ``k * W * A + j * W + r`` of an epoch goes to
  rank r as its j-th micro-batch of step k, so one process with ``grad_accum = W * A`` sees the
  same micro-batches, in the same steps, as W processes with ``grad_accum = A``.

Packing (per epoch): shuffle the sample order with ``default_rng([seed, epoch])``; take windows of
``pack_window`` samples; inside a window sort by encoder length (longest first) and place each
sample in the first open row where it fits both streams (first-fit decreasing); then shuffle the
rows, cut them into micro-batches and drop the micro-batches that do not fill a last step. The
packing does not depend on the step size, only the cut: :meth:`EpochPlan.whole_steps` of a plan
made with ``step_micro_batches=1`` is the plan made with the step size.

``grad_accum`` A is the one the trainer uses: ``--grad_accum``, or, when an epoch has fewer than
``W * A`` micro-batches, the largest A every epoch of the run allows (``min(micro-batches) // W``;
``Trainer._choose_grad_accum``). It is a function of this plan's inputs plus the run's epochs and
max_steps, and checkpoints record it, so the statements above hold with it and a resumed run
uses the same one (or is refused).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genoforge.errors import ConfigError, ShardFormatError, TokenizerError


@dataclass(frozen=True)
class RowShape:
    """The fixed shape of every training micro-batch: [rows_per_batch, encoder/decoder_row_len]."""

    encoder_row_len: int
    decoder_row_len: int
    rows_per_batch: int

    @property
    def row_tokens(self) -> int:
        return self.encoder_row_len + self.decoder_row_len

    @property
    def batch_tokens(self) -> int:
        return self.rows_per_batch * self.row_tokens


def decoder_lengths(target_lengths: np.ndarray) -> np.ndarray:
    """Decoder positions per sample: a target of n tokens gives n - 1 (input, label) pairs."""
    return np.maximum(np.asarray(target_lengths, dtype=np.int64) - 1, 0)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _round_down(value: int, multiple: int) -> int:
    return (value // multiple) * multiple


def plan_row_shape(
    input_lengths: np.ndarray,
    dec_lengths: np.ndarray,
    *,
    token_budget: int,
    max_batch_size: int,
    row_multiple: int = 128,
    encoder_row_len: int = 0,
    decoder_row_len: int = 0,
    probe_samples: int = 1024,
    decoder_multiple: int | None = None,
) -> RowShape:
    """Choose the row lengths and rows per micro-batch from the budget and the data.

    With both row lengths given, ``rows_per_batch = min(max_batch_size, budget // row)``.
    Otherwise every ``rows_per_batch`` B <= ``max_batch_size`` is tried with rows of ``budget //
    B`` positions, split between encoder and decoder near the data's token ratio (each side at
    least its longest sample, rounded up to ``row_multiple``), and first-fit packing of up to
    ``probe_samples`` training samples (a fixed random subset) is simulated: the shape with the
    most real tokens per micro-batch wins (fewer rows must win by more than 2%). Samples come in
    near-constant sizes (windows), so a row a little longer or shorter holds one more sample.

    Args:
        input_lengths, dec_lengths: encoder and decoder positions per training sample.
        token_budget: encoder + decoder positions per micro-batch (padding included).
        max_batch_size: the most rows per micro-batch.
        row_multiple: row lengths are multiples of this (the encoder's; see ``decoder_multiple``).
        encoder_row_len, decoder_row_len: explicit row lengths (0 = choose).
        decoder_multiple: the decoder row's multiple (default ``row_multiple``).

    Raises:
        ConfigError: the budget cannot hold one row able to take the longest sample.
    """
    longest_in = int(input_lengths.max()) if input_lengths.size else 1
    longest_dec = int(dec_lengths.max()) if dec_lengths.size else 1
    dec_multiple = decoder_multiple or row_multiple
    min_enc = encoder_row_len or _round_up(max(longest_in, 1), row_multiple)
    min_dec = decoder_row_len or _round_up(max(longest_dec, 1), dec_multiple)
    too_small = ConfigError(
        f"--token_budget {token_budget} is smaller than one row of {min_enc} encoder + {min_dec} decoder "
        f"positions (the longest training sample has {longest_in} input and {longest_dec + 1} "
        f"target tokens); raise --token_budget to at least {min_enc + min_dec}"
    )
    if encoder_row_len and decoder_row_len:
        rows = min(max_batch_size, token_budget // (encoder_row_len + decoder_row_len))
        if rows < 1:
            raise too_small
        return RowShape(encoder_row_len=encoder_row_len, decoder_row_len=decoder_row_len, rows_per_batch=rows)
    total_in = float(input_lengths.sum())
    total_dec = float(dec_lengths.sum())
    share_in = total_in / (total_in + total_dec) if total_in + total_dec > 0 else 0.5
    rng = np.random.default_rng(0)
    probe = rng.permutation(input_lengths.size)[:probe_samples]
    probe_tokens = float(input_lengths[probe].sum() + dec_lengths[probe].sum())
    best: tuple[float, int, RowShape] | None = None
    for rows in range(max_batch_size, 0, -1):
        row = token_budget // rows
        if row < min_enc + min_dec:
            continue
        if encoder_row_len:
            candidates = [encoder_row_len]
        elif decoder_row_len:
            candidates = [_round_down(row - decoder_row_len, row_multiple)]
        else:
            centre = _round_down(int(row * share_in), row_multiple)
            # The ratio's split first: it wins ties. Clamped so that each side can take its
            # longest sample (a skewed ratio must not rule out a row that has room for both).
            highest = _round_down(row - _round_up(min_dec, dec_multiple), row_multiple)
            centre = max(min(centre, highest), min_enc)
            candidates = [centre + k * row_multiple for k in (0, -1, 1, -2, 2, -3, 3)]
        for enc in candidates:
            dec = decoder_row_len or _round_down(row - enc, dec_multiple)
            if enc < min_enc or dec < min_dec or enc + dec > row:
                continue
            packed = first_fit_rows(probe, input_lengths, dec_lengths, enc, dec, max(probe.size, 1))
            real_per_row = probe_tokens / max(len(packed), 1)
            score = real_per_row * rows
            shape = RowShape(encoder_row_len=enc, decoder_row_len=dec, rows_per_batch=rows)
            # Fewer, longer rows must win by more than 2%: more rows keep rows short (cheaper masks,
            # smaller latent and logit tensors per row) at nearly the same packing.
            if best is None or score > best[0] * (1.0 if rows == best[1] else 1.02):
                best = (score, rows, shape)
    if best is None:
        raise too_small
    return best[2]


def first_fit_rows(
    order: np.ndarray,
    enc_lengths: np.ndarray,
    dec_lengths: np.ndarray,
    encoder_row_len: int,
    decoder_row_len: int,
    pack_window: int,
) -> list[np.ndarray]:
    """Pack the samples in ``order`` into rows, first-fit decreasing within windows.

    Returns a list of rows, each an int64 array of sample indices (in placement order). Samples
    that fit no row (longer than a row on either stream) are left out; the caller counts them.
    """
    rows: list[np.ndarray] = []
    for begin in range(0, order.size, pack_window):
        window = order[begin : begin + pack_window]
        window = window[np.argsort(-enc_lengths[window], kind="stable")]
        free_enc = np.empty(window.size, dtype=np.int64)
        free_dec = np.empty(window.size, dtype=np.int64)
        members: list[list[int]] = []
        for sample in window.tolist():
            e, d = int(enc_lengths[sample]), int(dec_lengths[sample])
            if e > encoder_row_len or d > decoder_row_len:
                continue
            n_open = len(members)
            fits = np.flatnonzero((free_enc[:n_open] >= e) & (free_dec[:n_open] >= d))
            if fits.size:
                row = int(fits[0])
            else:
                row = n_open
                members.append([])
                free_enc[row] = encoder_row_len
                free_dec[row] = decoder_row_len
            members[row].append(sample)
            free_enc[row] -= e
            free_dec[row] -= d
        rows.extend(np.asarray(m, dtype=np.int64) for m in members)
    return rows


@dataclass
class EpochPlan:
    """The micro-batches of one epoch (rows of sample indices) and their real-token counts."""

    epoch: int
    micro_batches: list[list[np.ndarray]]  # [micro-batch][row] -> sample indices
    enc_tokens: np.ndarray  # int64 [n_micro] real encoder tokens per micro-batch
    dec_tokens: np.ndarray  # int64 [n_micro] real decoder positions (= label tokens) per micro-batch
    n_rows: int
    dropped_samples: int  # samples too long for a row, or in micro-batches cut to fill a step
    shape: RowShape
    doc_enc_lengths: list[np.ndarray] = field(default_factory=list)  # per micro-batch, for FLOPs
    doc_dec_lengths: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.micro_batches)

    def steps(self, world_size: int, grad_accum: int) -> int:
        return len(self.micro_batches) // (world_size * grad_accum)

    def whole_steps(self, step_micro_batches: int) -> EpochPlan:
        """This plan without the trailing micro-batches that cannot fill one more optimizer step of
        ``step_micro_batches`` (their samples count as dropped). For a training plan (shuffled, or
        made with ``step_micro_batches > 1``) it equals :func:`plan_epoch` with that step size."""
        keep = (len(self.micro_batches) // step_micro_batches) * step_micro_batches
        if keep == len(self.micro_batches):
            return self
        cut = sum(int(row.size) for mb in self.micro_batches[keep:] for row in mb)
        return dataclasses.replace(
            self,
            micro_batches=self.micro_batches[:keep],
            enc_tokens=self.enc_tokens[:keep],
            dec_tokens=self.dec_tokens[:keep],
            n_rows=sum(len(mb) for mb in self.micro_batches[:keep]),
            dropped_samples=self.dropped_samples + cut,
            doc_enc_lengths=self.doc_enc_lengths[:keep],
            doc_dec_lengths=self.doc_dec_lengths[:keep],
        )

    def efficiency(self) -> dict[str, float]:
        """Real tokens / row capacity, per stream and overall, over this plan's micro-batches."""
        n_rows = sum(len(mb) for mb in self.micro_batches)
        cap_enc = n_rows * self.shape.encoder_row_len
        cap_dec = n_rows * self.shape.decoder_row_len
        enc, dec = float(self.enc_tokens.sum()), float(self.dec_tokens.sum())
        return {
            "encoder": enc / cap_enc if cap_enc else 0.0,
            "decoder": dec / cap_dec if cap_dec else 0.0,
            "overall": (enc + dec) / (cap_enc + cap_dec) if cap_enc + cap_dec else 0.0,
        }


def plan_epoch(
    enc_lengths: np.ndarray,
    dec_lengths: np.ndarray,
    shape: RowShape,
    *,
    seed: int,
    epoch: int,
    pack_window: int,
    step_micro_batches: int,
    shuffle: bool = True,
) -> EpochPlan:
    """Plan one epoch: shuffle, pack rows, shuffle rows, cut micro-batches (see module docstring).

    Args:
        step_micro_batches: world_size * grad_accum; trailing micro-batches that cannot fill one
            more optimizer step are dropped (their samples come back, shuffled, next epoch). Use 1
            for validation, where nothing is dropped and the last micro-batch may be short.
        shuffle: False keeps the shard order (validation).
    """
    n = enc_lengths.size
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    rows = first_fit_rows(
        order, enc_lengths, dec_lengths, shape.encoder_row_len, shape.decoder_row_len, pack_window
    )
    if shuffle:
        rows = [rows[i] for i in rng.permutation(len(rows))]
    per = shape.rows_per_batch
    micro = [rows[i : i + per] for i in range(0, len(rows), per)]
    if step_micro_batches > 1 or shuffle:
        if micro and len(micro[-1]) < per:
            micro.pop()
        keep = (len(micro) // step_micro_batches) * step_micro_batches
        micro = micro[:keep]
    placed = sum(int(r.size) for mb in micro for r in mb)
    doc_enc = [np.concatenate([enc_lengths[r] for r in mb]) for mb in micro]
    doc_dec = [np.concatenate([dec_lengths[r] for r in mb]) for mb in micro]
    return EpochPlan(
        epoch=epoch,
        micro_batches=micro,
        enc_tokens=np.array([int(x.sum()) for x in doc_enc], dtype=np.int64),
        dec_tokens=np.array([int(x.sum()) for x in doc_dec], dtype=np.int64),
        n_rows=sum(len(mb) for mb in micro),
        dropped_samples=n - placed,
        shape=shape,
        doc_enc_lengths=doc_enc,
        doc_dec_lengths=doc_dec,
    )


def rank_micro_batch_ids(
    n_micro: int, *, world_size: int, rank: int, grad_accum: int, start_step: int = 0
) -> list[int]:
    """Indices into an epoch's micro-batches for ``rank``, from optimizer step ``start_step`` on.

    Step k, accumulation j: micro-batch ``k * W * A + j * W + rank``.
    """
    per_step = world_size * grad_accum
    steps = n_micro // per_step
    return [
        k * per_step + j * world_size + rank for k in range(start_step, steps) for j in range(grad_accum)
    ]


def step_label_tokens(plan: EpochPlan, step: int, *, world_size: int, grad_accum: int) -> int:
    """Label tokens of one optimizer step over all ranks (the loss normaliser; no device sync)."""
    per_step = world_size * grad_accum
    return int(plan.dec_tokens[step * per_step : (step + 1) * per_step].sum())


def eval_micro_batch_ids(n_micro: int, *, world_size: int, rank: int) -> list[int | None]:
    """Validation micro-batches of ``rank``, round-robin, padded with None to the same count on
    every rank (FSDP needs every rank to run the same number of forwards)."""
    per_rank = math.ceil(n_micro / world_size) if n_micro else 0
    ids: list[int | None] = []
    for j in range(per_rank):
        index = j * world_size + rank
        ids.append(index if index < n_micro else None)
    return ids


class MicroBatchDataset:
    """A map-style dataset: item i is micro-batch ``ids[i]`` of a plan, collated for the model.

    The shard is opened lazily in each DataLoader worker (memory maps do not cross fork cleanly
    on every platform, and opening costs only the header read).
    """

    def __init__(
        self,
        shard_path: str | Path,
        micro_batches: Sequence[list[np.ndarray] | None],
        shape: RowShape,
        *,
        pad_id: int,
        bp_lengths: np.ndarray,
        label_tokens: Sequence[int] | None = None,
    ):
        self.shard_path = Path(shard_path)
        self.micro_batches = list(micro_batches)
        self.shape = shape
        self.pad_id = pad_id
        self.bp_lengths = bp_lengths
        self.label_tokens = list(label_tokens) if label_tokens is not None else None
        self._shard = None

    def __len__(self) -> int:
        return len(self.micro_batches)

    def __getitem__(self, index: int) -> dict:
        from genoforge.genes.packed_reader import PackedShard
        from genoforge.training.collate import collate_rows

        if self._shard is None:
            self._shard = PackedShard(self.shard_path)
        rows = self.micro_batches[index]
        weight = 1.0
        if rows is None:  # padding for equal eval counts across ranks: a real batch, weight 0
            rows = next(mb for mb in self.micro_batches if mb is not None)
            weight = 0.0
        batch = collate_rows(self._shard, rows, self.shape, pad_id=self.pad_id, bp_lengths=self.bp_lengths)
        batch["weight"] = weight
        if self.label_tokens is not None:
            batch["step_label_tokens"] = self.label_tokens[index]
        return batch


def make_loader(dataset: MicroBatchDataset, *, num_workers: int, pin_memory: bool, seed: int):
    """A DataLoader yielding ``dataset`` items in order (batching is done by the plan)."""
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
        generator=generator,
    )


def check_tokenizer_match(train_path: Path, val_path: Path, shards, tokenizer, model_dir: Path) -> None:
    """Refuse shards (or their bake manifest) made with a tokenizer other than the model's.

    Raises:
        TokenizerError: naming the shard, both hashes and the fix.
    """
    from genoforge.genes.manifest import MANIFEST_FILE

    want = tokenizer.content_hash()
    fix = f"re-bake with --tokenizer {model_dir}, or train the model directory the data was baked with"
    for path, shard in zip((train_path, val_path), shards, strict=True):
        if shard.tokenizer_hash != want:
            raise TokenizerError(
                f"baked with tokenizer {shard.tokenizer_hash[:12]}, but {model_dir} has tokenizer "
                f"{want[:12]}; {fix}",
                path,
            )
        manifest = path.parent / MANIFEST_FILE
        if manifest.is_file():
            try:
                recorded = json.loads(manifest.read_text()).get("tokenizer", {}).get("hash")
            except (OSError, json.JSONDecodeError, AttributeError) as exc:
                raise ShardFormatError(f"unreadable bake manifest ({exc}); re-run genoforge bake", manifest) from exc
            if recorded is not None and recorded != want:
                raise TokenizerError(
                    f"the bake manifest records tokenizer {str(recorded)[:12]}, but {model_dir} has "
                    f"tokenizer {want[:12]}; {fix}",
                    manifest,
                )
