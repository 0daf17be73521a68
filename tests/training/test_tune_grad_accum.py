"""Partial gradient accumulation: an epoch with fewer micro-batches than W x --grad_accum trains.

The recipe's ``--grad_accum 64`` on a small one-species bake used to plan zero optimizer steps and
stop ("fewer than one optimizer step needs"). Now the trainer accumulates the largest number of
micro-batches every epoch of the run allows, warns once, records it in the checkpoint's data
signature and tune_config.json, and a run killed and resumed replays the uninterrupted one exactly.
"""

from __future__ import annotations

import dataclasses
import json
import signal

import numpy as np
import pytest

from genoforge.genes.packed_reader import PackedShard
from genoforge.tokenizer.core import GenoTokenizer
from genoforge.training.data import RowShape, decoder_lengths, plan_epoch
from genoforge.training.loop import FAULT_ENV

from tests.training.tune_runs import read_metrics, run_tune, train_losses, tune_env, write_samples

FLAGS = ("--grad_accum", "64", "--epochs", "2", "--save_steps", "1")


@pytest.fixture(scope="module")
def small_bake(tune_workspace, tmp_path_factory):
    """The tune workspace with a 30-sample training shard: a dozen or so micro-batches of one row."""
    tokenizer = GenoTokenizer.load(tune_workspace.model_dir)
    train = write_samples(tmp_path_factory.mktemp("small") / "training.packed", tokenizer, 30, seed=3)
    return dataclasses.replace(tune_workspace, train=train)


@pytest.fixture(scope="module")
def full_run(small_bake, tmp_path_factory):
    out = tmp_path_factory.mktemp("accum") / "run"
    result = run_tune(small_bake, out, *FLAGS)
    assert result.returncode == 0, result.stderr
    return out, result


def packed_micro_batches(shard_path, shape: RowShape, epoch: int) -> int:
    shard = PackedShard(shard_path)
    enc = shard.input_lengths().astype(np.int64)
    dec = decoder_lengths(shard.target_lengths())
    return len(plan_epoch(enc, dec, shape, seed=42, epoch=epoch, pack_window=4096, step_micro_batches=1))


def test_a_short_epoch_trains_with_the_largest_accumulation_it_allows(small_bake, full_run):
    out, result = full_run
    start = read_metrics(out, "start")[0]
    shape = RowShape(**start["row_shape"])
    available = min(packed_micro_batches(small_bake.train, shape, epoch) for epoch in (0, 1))
    assert 1 < available < 64
    assert start["grad_accum"] == available and start["grad_accum_requested"] == 64
    assert start["micro_batches_per_step"] == available and start["steps_per_epoch"] == [1, 1]
    assert sorted(train_losses(out)) == [1, 2]  # one optimizer step per epoch
    warnings = [line for line in result.stderr.splitlines() if "Warning:" in line]
    assert len(warnings) == 1, result.stderr  # one line, unwrapped (a log is grepped by line)
    assert warnings[0].startswith(
        f"Warning: --grad_accum 64 needs 64 micro-batches per optimizer step (1 process(es) x 64), but an "
        f"epoch of training.packed has only {available} micro-batches of 1 rows: accumulating {available} "
        "per process instead"), result.stderr
    # Recorded where a resume (and a reader of the run) finds it.
    assert json.loads((out / "tune_config.json").read_text())["effective_grad_accum"] == available
    state = json.loads((out / "step-00000002" / "trainer_state.json").read_text())
    assert state["data"]["effective_grad_accum"] == available and state["data"]["grad_accum"] == 64


def test_a_resumed_partial_accumulation_run_replays_the_full_one(small_bake, full_run, tmp_path):
    full_dir, _ = full_run
    out = tmp_path / "run"
    killed = run_tune(small_bake, out, *FLAGS, env=tune_env(**{FAULT_ENV: "1"}))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = run_tune(small_bake, out, *FLAGS, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    assert train_losses(out) == train_losses(full_dir)


def test_fewer_micro_batches_than_one_per_process_is_still_an_error(small_bake, tmp_path):
    # Rows of 160 + 32 positions, 16 per micro-batch: the 30 samples fill 8 rows, no micro-batch.
    result = run_tune(small_bake, tmp_path / "run", "--token_budget", "3072", "--max_batch_size", "16",
                      "--encoder_row_len", "160", "--decoder_row_len", "32", "--grad_accum", "64")
    assert result.returncode == 1
    assert "fewer than one optimizer step needs" in result.stderr and "Traceback" not in result.stderr


def test_cutting_a_packed_plan_to_whole_steps_equals_planning_with_the_step(tune_workspace):
    shard = PackedShard(tune_workspace.train)
    enc = shard.input_lengths().astype(np.int64)
    dec = decoder_lengths(shard.target_lengths())
    shape = RowShape(encoder_row_len=160, decoder_row_len=32, rows_per_batch=2)
    for epoch, step in ((0, 1), (0, 7), (1, 16), (2, 1000)):
        packed = plan_epoch(enc, dec, shape, seed=5, epoch=epoch, pack_window=64, step_micro_batches=1)
        direct = plan_epoch(enc, dec, shape, seed=5, epoch=epoch, pack_window=64, step_micro_batches=step)
        cut = packed.whole_steps(step)
        assert len(cut) == len(direct) and len(cut) % step == 0
        assert all(np.array_equal(a, b) for ma, mb in zip(cut.micro_batches, direct.micro_batches, strict=True)
                   for a, b in zip(ma, mb, strict=True))
        assert np.array_equal(cut.enc_tokens, direct.enc_tokens) and np.array_equal(cut.dec_tokens, direct.dec_tokens)
        assert (cut.n_rows, cut.dropped_samples) == (direct.n_rows, direct.dropped_samples)
        assert len(cut.doc_enc_lengths) == len(direct.doc_enc_lengths) == len(cut)
