"""Telemetry pieces: device-side accumulation, FLOP accounting, metrics.jsonl rewrite, memwatch, CLI."""

from __future__ import annotations

import csv
import json
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from genoforge.training.flops import flop_model
from genoforge.training.memwatch import COLUMNS, MemWatch, host_rss_bytes
from genoforge.training.telemetry import StepAccumulator, TrainingLog, truncate_metrics

from tests.tiny import tiny_model


def test_accumulator_reads_every_pending_step_at_once():
    acc = StepAccumulator(torch.device("cpu"))
    for step in (1, 2):
        for _ in range(2):  # two micro-batches, each half of the step
            acc.add_micro_batch(loss=torch.tensor(1.5 * step), ce=torch.tensor(1.0 * step), aux=torch.tensor(0.25),
                                z=torch.tensor(0.0), tokens_per_expert=torch.tensor([[2.0, 6.0], [4.0, 4.0]]))
        acc.end_step(step=step, epoch=0, lr=1e-4 * step, grad_norm=torch.tensor(0.5), enc_tokens=10, dec_tokens=3)
    assert acc.pending == 2
    records, load = acc.read()
    assert acc.pending == 0
    assert [r["step"] for r in records] == [1, 2]
    assert [r["loss"] for r in records] == [3.0, 6.0] and [r["ce"] for r in records] == [2.0, 4.0]
    assert records[0]["aux_loss"] == 0.5 and records[1]["lr"] == pytest.approx(2e-4)
    assert records[0]["grad_norm"] == 0.5 and records[0]["enc_tokens"] == 10
    # Expert counts summed over the interval: layer 0 [8, 24] -> [0.5, 1.5] of its mean, layer 1 even.
    assert load == (0.5, 1.5)
    assert acc.read() == ([], None)


def test_flop_model_counts_active_parameters():
    model = tiny_model(vocab_size=300, seed=None, digits=False, init_weights=False)
    config = model.config
    flops = flop_model(model, config)
    expert = config.num_experts * 3 * config.decoder_dim * config.decoder_ff_dim * config.decoder_layers
    decoder_total = sum(p.numel() for n, p in model.named_parameters() if n.startswith("decoder"))
    # Experts count top_k / num_experts; embeddings are lookups; the head counts V x D.
    active_experts = expert * config.moe_top_k // config.num_experts
    assert flops.decoder_token_params + flops.memory_params < decoder_total - expert + active_experts + 1
    assert flops.decoder_token_params > active_experts + config.vocab_size * config.decoder_dim
    assert flops.latent_params > 0 and flops.encoder_token_params > 0
    one = flops.micro_batch_flops(np.array([10]), np.array([4]))
    two = flops.micro_batch_flops(np.array([10, 10]), np.array([4, 4]))
    assert two == pytest.approx(2 * one)  # documents are independent
    longer = flops.micro_batch_flops(np.array([20]), np.array([4]))
    assert longer > 2 * one - flops.micro_batch_flops(np.array([0]), np.array([4]))  # attention grows faster


def test_truncate_metrics_drops_steps_past_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [{"kind": "start"}, {"kind": "train", "step": 1}, {"kind": "perf", "step": 1},
             {"kind": "train", "step": 2}, {"kind": "eval", "step": 2}, {"kind": "train", "step": 3}]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"kind": "train", "st')  # cut by a kill
    assert truncate_metrics(path, after_step=1) == 4
    kept = [json.loads(line) for line in path.read_text().splitlines()]
    assert kept == lines[:3]


def test_training_log_writes_records_and_plain_lines(tmp_path, capsys):
    log = TrainingLog(tmp_path / "metrics.jsonl", live=False, log_memory=True, device=torch.device("cpu"),
                      total_steps=10)
    records = [{"kind": "train", "step": 3, "epoch": 0, "loss": 2.5, "ce": 2.25, "lr": 1e-4, "grad_norm": 0.7}]
    perf = log.interval(records, flops=1e9, tokens=1000, world_size=1, peak=None, expert_load=(0.5, 1.75))
    log.close()
    written = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in written] == ["train", "perf"]
    assert perf["mfu"] is None and perf["tokens_per_s"] > 0 and perf["expert_load_max"] == 1.75
    err = capsys.readouterr().err
    assert "step 3/10" in err and "loss 2.5000" in err and "host RSS" in err and "expert load min/max 0.50" in err


def test_memwatch_writes_csv_rows(tmp_path):
    path = tmp_path / "memory.csv"
    with MemWatch(path, interval=0.02) as watch:
        watch.step = 4
        time.sleep(0.2)
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) >= 3 and watch.rows_written == len(rows)
    assert rows[-1]["step"] == "4"
    rss = host_rss_bytes() / 2**20
    assert all(0.2 * rss < float(r["host_rss_mb"]) < 5 * rss for r in rows)


def test_cli_help_lists_one_spelling_and_examples():
    from genoforge.cli.app import app

    result = CliRunner().invoke(app, ["tune", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for spelling in ("--token_budget", "--early_stopping", "--empty_cache_steps", "--max_steps",
                     "--resume", "--strategy", "--gradient_checkpointing", "--num_workers", "--config"):
        assert spelling in result.output
    for kebab in ("--token-budget", "--early-stopping", "--empty-cache-steps"):  # accepted, not listed
        assert kebab not in result.output
    assert "Examples" in result.output and "--token_budget 63700" in result.output
    assert "padding included" in result.output  # what the budget counts


def test_cli_usage_and_config_errors(tmp_path):
    from genoforge.cli.app import app

    runner = CliRunner()
    bad_value = runner.invoke(app, ["tune", "a", "b", "c", "d", "--epochs", "two"])
    assert bad_value.exit_code == 2
    toml = tmp_path / "t.toml"
    toml.write_text("[tune]\nepocs = 3\n")
    unknown = runner.invoke(app, ["tune", "a", "b", "c", "d", "--config", str(toml)])
    assert unknown.exit_code == 1 and "unknown key 'epocs'" in unknown.output
    invalid = runner.invoke(app, ["tune", "a", "b", "c", "d", "--strategy", "zero3"])
    assert invalid.exit_code == 1 and "strategy must be one of ddp, fsdp" in invalid.output
