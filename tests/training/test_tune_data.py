"""Packing plan, token-budget batching, rank sharding and collation (genoforge.training.data/collate)."""

from __future__ import annotations

import numpy as np
import pytest

from genoforge.errors import ConfigError
from genoforge.training.collate import IGNORE_INDEX, collate_rows
from genoforge.training.data import (
    RowShape,
    decoder_lengths,
    eval_micro_batch_ids,
    first_fit_rows,
    plan_epoch,
    plan_row_shape,
    rank_micro_batch_ids,
    step_label_tokens,
)


def random_lengths(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(20, 400, n).astype(np.int64), rng.integers(1, 90, n).astype(np.int64)


def test_decoder_lengths_drop_one_position_per_target():
    # <bos> a b <eos> -> inputs <bos> a b, labels a b <eos>: 3 positions.
    assert decoder_lengths(np.array([4, 2, 1, 0])).tolist() == [3, 1, 0, 0]


def test_row_shape_follows_budget_and_data_ratio():
    enc = np.array([300, 250, 100])
    dec = np.array([60, 30, 10])  # encoder share 650 / 750; every shape packs these alike
    shape = plan_row_shape(enc, dec, token_budget=63700, max_batch_size=8, row_multiple=128)
    assert shape.rows_per_batch == 8
    assert shape.encoder_row_len % 128 == 0 and shape.decoder_row_len % 128 == 0
    assert shape.batch_tokens <= 63700
    assert shape.encoder_row_len == 6784  # floor(7962 * 650/750 / 128) * 128
    assert shape.decoder_row_len == 1152  # the rest of the row, floored to 128


def test_row_shape_search_packs_more_real_tokens_than_the_plain_ratio():
    # Windows of near-constant size, as a bake makes: ~2000 input and ~200 decoder tokens.
    rng = np.random.default_rng(5)
    enc = rng.integers(1960, 2070, 2000)
    dec = rng.integers(120, 320, 2000)
    chosen = plan_row_shape(enc, dec, token_budget=63700, max_batch_size=8, row_multiple=128)
    ratio = RowShape(encoder_row_len=7168, decoder_row_len=768, rows_per_batch=8)  # the plain split

    def real_tokens_per_micro_batch(shape):
        plan = plan_epoch(enc, dec, shape, seed=0, epoch=0, pack_window=4096, step_micro_batches=1)
        return (plan.enc_tokens.sum() + plan.dec_tokens.sum()) / len(plan)

    assert chosen.batch_tokens <= 63700 and chosen.rows_per_batch <= 8
    assert real_tokens_per_micro_batch(chosen) > 1.05 * real_tokens_per_micro_batch(ratio)


def test_row_shape_holds_the_longest_sample_and_cuts_rows_to_budget():
    enc = np.array([1000, 10])
    dec = np.array([10, 300])
    shape = plan_row_shape(enc, dec, token_budget=4000, max_batch_size=8, row_multiple=128)
    assert shape.encoder_row_len >= 1000 and shape.decoder_row_len >= 300
    # Rows had to grow past budget / 8 = 500, so fewer rows fit the budget.
    assert shape.rows_per_batch == 4000 // shape.row_tokens < 8
    with pytest.raises(ConfigError, match="raise --token_budget to at least 1408"):
        plan_row_shape(enc, dec, token_budget=1000, max_batch_size=1, row_multiple=128)


def test_explicit_row_lengths_win():
    enc, dec = random_lengths(50)
    shape = plan_row_shape(enc, dec, token_budget=10_000, max_batch_size=3, encoder_row_len=2000,
                           decoder_row_len=500)
    assert shape == RowShape(encoder_row_len=2000, decoder_row_len=500, rows_per_batch=3)


def test_first_fit_places_every_sample_once_without_overflow():
    enc, dec = random_lengths(500, seed=1)
    order = np.random.default_rng(2).permutation(500)
    rows = first_fit_rows(order, enc, dec, encoder_row_len=1024, decoder_row_len=256, pack_window=128)
    placed = np.concatenate(rows)
    assert sorted(placed.tolist()) == list(range(500))  # no sample lost, none split or doubled
    for row in rows:
        assert enc[row].sum() <= 1024 and dec[row].sum() <= 256
    capacity = len(rows) * (1024 + 256)
    assert (enc.sum() + dec.sum()) / capacity > 0.75  # first-fit decreasing packs densely


def test_samples_longer_than_a_row_are_left_out():
    enc = np.array([10, 5000, 20])
    dec = np.array([5, 5, 500])
    rows = first_fit_rows(np.arange(3), enc, dec, encoder_row_len=100, decoder_row_len=100, pack_window=10)
    assert np.concatenate(rows).tolist() == [0]


def test_epoch_plan_is_deterministic_and_fills_whole_steps():
    enc, dec = random_lengths(300, seed=3)
    shape = RowShape(encoder_row_len=800, decoder_row_len=160, rows_per_batch=2)
    kwargs = dict(seed=7, pack_window=64, step_micro_batches=3)
    a = plan_epoch(enc, dec, shape, epoch=0, **kwargs)
    b = plan_epoch(enc, dec, shape, epoch=0, **kwargs)
    c = plan_epoch(enc, dec, shape, epoch=1, **kwargs)
    flat = lambda plan: [r.tolist() for mb in plan.micro_batches for r in mb]  # noqa: E731
    assert flat(a) == flat(b)
    assert flat(a) != flat(c)  # a new shuffle every epoch
    assert len(a) % 3 == 0 and all(len(mb) == 2 for mb in a.micro_batches)
    placed = sum(r.size for mb in a.micro_batches for r in mb)
    assert placed + a.dropped_samples == 300
    assert a.enc_tokens.tolist() == [int(sum(enc[r].sum() for r in mb)) for mb in a.micro_batches]
    assert a.dec_tokens.tolist() == [int(sum(dec[r].sum() for r in mb)) for mb in a.micro_batches]
    eff = a.efficiency()
    assert eff["encoder"] == pytest.approx(a.enc_tokens.sum() / (a.n_rows * 800))
    assert 0 < eff["overall"] <= 1
    assert a.steps(world_size=1, grad_accum=3) == len(a) // 3
    assert step_label_tokens(a, 1, world_size=1, grad_accum=3) == int(a.dec_tokens[3:6].sum())


def test_validation_plan_keeps_order_and_every_sample():
    enc, dec = random_lengths(41, seed=4)
    shape = RowShape(encoder_row_len=800, decoder_row_len=160, rows_per_batch=4)
    plan = plan_epoch(enc, dec, shape, seed=0, epoch=0, pack_window=4096, step_micro_batches=1, shuffle=False)
    assert plan.dropped_samples == 0
    assert sorted(np.concatenate([r for mb in plan.micro_batches for r in mb]).tolist()) == list(range(41))


def test_rank_sharding_matches_one_process_with_more_accumulation():
    n_micro = 23
    one = rank_micro_batch_ids(n_micro, world_size=1, rank=0, grad_accum=4)
    ranks = [rank_micro_batch_ids(n_micro, world_size=2, rank=r, grad_accum=2) for r in range(2)]
    assert len(one) == 20 and all(len(ids) == 10 for ids in ranks)
    for step in range(5):
        both = sorted(ranks[0][2 * step : 2 * step + 2] + ranks[1][2 * step : 2 * step + 2])
        assert both == one[4 * step : 4 * step + 4]
    # Resuming at step 3 skips exactly the first 3 steps.
    assert rank_micro_batch_ids(n_micro, world_size=2, rank=1, grad_accum=2, start_step=3) == ranks[1][6:]


def test_eval_ids_give_every_rank_the_same_count():
    ids = [eval_micro_batch_ids(5, world_size=2, rank=r) for r in range(2)]
    assert ids == [[0, 2, 4], [1, 3, None]]


class FakeShard:
    """The two streams of three samples, as PackedShard arrays."""

    def __init__(self, inputs: list[list[int]], targets: list[list[int]]):
        def flat(seqs):
            offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
            return np.array([t for s in seqs for t in s], dtype=np.uint16), offsets

        self.arrays = {}
        self.arrays["input_tokens"], self.arrays["input_offsets"] = flat(inputs)
        self.arrays["target_tokens"], self.arrays["target_offsets"] = flat(targets)

    def array(self, name):
        return self.arrays[name]


def test_collate_keeps_document_boundaries():
    pad, bos, eos = 3, 1, 2
    bp = np.zeros(20, dtype=np.int32)
    bp[10:15] = [1, 2, 3, 4, 5]  # DNA tokens 10..14 cover 1..5 bases
    shard = FakeShard(
        inputs=[[10, 11, 12], [14, 14], [13]],
        targets=[[bos, 5, 6, eos], [bos, eos], [bos, 7, eos]],
    )
    shape = RowShape(encoder_row_len=8, decoder_row_len=6, rows_per_batch=2)
    batch = collate_rows(shard, [np.array([0, 1]), np.array([2])], shape, pad_id=pad, bp_lengths=bp)
    assert batch["input_ids"].tolist() == [[10, 11, 12, 14, 14, pad, pad, pad], [13] + [pad] * 7]
    assert batch["input_doc"].tolist() == [[0, 0, 0, 1, 1, -1, -1, -1], [0] + [-1] * 7]
    # bp offset of each token's first base, restarting at every document.
    assert batch["input_bp"].tolist() == [[0, 1, 3, 0, 5, 0, 0, 0], [0] * 8]
    assert batch["decoder_ids"].tolist() == [[bos, 5, 6, bos, pad, pad], [bos, 7, pad, pad, pad, pad]]
    assert batch["labels"].tolist() == [[5, 6, eos, eos] + [IGNORE_INDEX] * 2, [7, eos] + [IGNORE_INDEX] * 4]
    assert batch["decoder_doc"].tolist() == [[0, 0, 0, 1, -1, -1], [0, 0, -1, -1, -1, -1]]
    assert batch["enc_tokens"] == 6 and batch["dec_tokens"] == 6 and batch["docs_per_row"] == 2
    assert str(batch["input_ids"].dtype) == "torch.int64" and str(batch["input_doc"].dtype) == "torch.int32"


def test_collate_refuses_an_overfull_row():
    shard = FakeShard(inputs=[[10] * 5, [10] * 5], targets=[[1, 2], [1, 2]])
    shape = RowShape(encoder_row_len=8, decoder_row_len=6, rows_per_batch=1)
    with pytest.raises(ValueError, match="overflows the encoder row"):
        collate_rows(shard, [np.array([0, 1])], shape, pad_id=3, bp_lengths=np.ones(20, dtype=np.int32))


def test_token_budget_batches_of_a_real_shard(tune_workspace):
    """The micro-batches of the test shard stay within the budget and hold whole samples."""
    from genoforge.genes.packed_reader import PackedShard
    from genoforge.tokenizer.core import GenoTokenizer

    shard = PackedShard(tune_workspace.train)
    tok = GenoTokenizer.load(tune_workspace.model_dir)
    enc, dec = shard.input_lengths(), decoder_lengths(shard.target_lengths())
    shape = plan_row_shape(enc, dec, token_budget=700, max_batch_size=3, row_multiple=16)
    assert shape.batch_tokens <= 700 and shape.rows_per_batch <= 3
    plan = plan_epoch(enc, dec, shape, seed=1, epoch=0, pack_window=64, step_micro_batches=1)
    mb = plan.micro_batches[0]
    batch = collate_rows(shard, mb, shape, pad_id=tok.pad_id, bp_lengths=tok.bp_lengths())
    assert tuple(batch["input_ids"].shape) == (shape.rows_per_batch, shape.encoder_row_len)
    assert batch["enc_tokens"] == plan.enc_tokens[0] and batch["dec_tokens"] == plan.dec_tokens[0]
    for b, row in enumerate(mb):
        docs = batch["input_doc"][b]
        for d, sample in enumerate(row.tolist()):
            tokens = batch["input_ids"][b][docs == d].tolist()
            assert tokens == shard.sample(sample).input_ids.tolist()  # whole sample, in one row
            labels = batch["labels"][b][batch["decoder_doc"][b] == d].tolist()
            assert labels == shard.sample(sample).target_ids[1:].tolist()

