"""End-to-end `genoforge tune` runs of the debug preset on a CPU (see tune_runs.py).

Tolerances: resume is compared for exact float equality (same process layout, one torch thread,
every micro-batch reseeded from its index: the resumed run executes the same operations on the
same values). DDP or FSDP2 (2 gloo processes, grad_accum 1) vs one process (grad_accum 2) differs only in
the order of floating-point sums (gradient all-reduce vs accumulation), so losses are compared
with rtol 1e-4 over 5 steps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from genoforge.training.loop import FAULT_ENV

from tests.training.tune_runs import (
    REPO_ROOT,
    read_metrics,
    run_tune,
    train_losses,
    tune_args,
    tune_env,
    write_samples,
)


@pytest.fixture(scope="module")
def full_run(tune_workspace, tmp_path_factory):
    """20 uninterrupted optimizer steps, checkpoints every 5, evaluation every 10, memwatch on."""
    out = tmp_path_factory.mktemp("full") / "run"
    result = run_tune(tune_workspace, out, "--max_steps", "20", "--save_steps", "5", "--eval_steps", "10",
                      "--label_smoothing", "0.1", "--memwatch", "--log_memory", "--save_total_limit", "2")
    assert result.returncode == 0, result.stderr
    return out, result


def test_exact_resume_after_sigkill(tune_workspace, full_run, tmp_path):
    full_dir, _ = full_run
    out = tmp_path / "run"
    flags = ("--max_steps", "20", "--save_steps", "5", "--eval_steps", "10", "--label_smoothing", "0.1")
    killed = run_tune(tune_workspace, out, *flags, env=tune_env(**{FAULT_ENV: "10"}))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / "step-00000010").is_dir() and not (out / "step-00000015").exists()
    resumed = run_tune(tune_workspace, out, *flags, "--resume", "auto")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr

    expected, got = train_losses(full_dir), train_losses(out)
    assert sorted(got) == list(range(1, 21))
    assert [got[s] for s in range(11, 21)] == [expected[s] for s in range(11, 21)]
    full_train = {r["step"]: r for r in read_metrics(full_dir, "train")}
    for record in read_metrics(out, "train"):
        assert record["grad_norm"] == full_train[record["step"]]["grad_norm"]
        assert record["lr"] == full_train[record["step"]]["lr"]
    full_eval = [(r["step"], r["val_loss"]) for r in read_metrics(full_dir, "eval")]
    assert [(r["step"], r["val_loss"]) for r in read_metrics(out, "eval")] == full_eval


def test_metrics_jsonl_content(full_run):
    out, _ = full_run
    records = read_metrics(out)
    assert records[0]["kind"] == "start" and records[-1]["kind"] == "end"
    start = records[0]
    assert 0 < start["packing_efficiency"]["overall"] <= 1
    assert start["row_shape"] == {"encoder_row_len": 160, "decoder_row_len": 32, "rows_per_batch": 1}
    train = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in train] == list(range(1, 21))
    for r in train:
        for key in ("loss", "ce", "aux_loss", "z_loss", "lr", "grad_norm", "enc_tokens", "dec_tokens", "epoch"):
            assert key in r
        assert r["enc_tokens"] <= 160 and r["dec_tokens"] <= 32  # one row per step
        assert r["loss"] > 0 and r["aux_loss"] > 0  # MoE aux term present
    # Warm-up: ceil(0.1 * 20) = 2 steps, peak 3e-3 at the second.
    assert train[0]["lr"] == pytest.approx(1.5e-3) and train[1]["lr"] == pytest.approx(3e-3)
    assert train[-1]["lr"] < train[5]["lr"]
    assert sum(r["loss"] for r in train[-5:]) < sum(r["loss"] for r in train[:5])  # it learns
    perf = [r for r in records if r["kind"] == "perf"]
    assert perf and all(r["tokens_per_s"] > 0 and r["host_rss_mb"] > 0 for r in perf)
    assert all(0 <= r["expert_load_min"] <= 1 <= r["expert_load_max"] for r in perf)
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20]
    assert all(r["val_loss_smoothed"] > r["val_loss"] for r in evals)  # smoothing adds to plain CE
    assert records[-1]["stopped"] == "max_steps"


def test_run_directory_artifacts(full_run):
    from genoforge.model.io import load_model

    out, result = full_run
    # Keep-last-2: step 20 and 15 remain.
    assert sorted(p.name for p in out.glob("step-*")) == ["step-00000015", "step-00000020"]
    final = load_model(out / "final")
    best = load_model(out / "best")
    assert final.config.decoder_layers == 2 and best.config == final.config
    config = json.loads((out / "tune_config.json").read_text())
    assert config["tune"]["token_budget"] == 192 and config["sources"]["token_budget"] == "flag"
    assert config["sources"]["row_multiple"] == "config file" and config["sources"]["epochs"] == "default"
    assert "best val_loss" in result.stdout


def test_memwatch_csv(full_run):
    import csv

    out, _ = full_run
    with open(out / "memory.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 2
    assert list(rows[0]) == ["time_s", "host_rss_mb", "gpu_allocated_mb", "gpu_reserved_mb",
                             "gpu_peak_allocated_mb", "step"]
    assert all(float(r["host_rss_mb"]) > 10 for r in rows)
    assert all(r["gpu_allocated_mb"] == "" for r in rows)  # CPU run
    times = [float(r["time_s"]) for r in rows]
    assert times == sorted(times)
    assert int(rows[-1]["step"]) == 20


def test_refuses_shards_of_another_tokenizer(tune_workspace, tmp_path):
    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(tune_workspace.model_dir)
    other = write_samples(tmp_path / "other.packed", tokenizer, 4, seed=3, tokenizer_hash="f" * 64)
    result = subprocess.run(
        [sys.executable, "-m", "genoforge", "tune", str(other), str(tune_workspace.validation),
         str(tmp_path / "run"), str(tune_workspace.model_dir)],
        capture_output=True, text=True, env=tune_env(), cwd=REPO_ROOT, timeout=120,
    )
    assert result.returncode == 1
    assert "Error:" in result.stderr and "other.packed" in result.stderr and "ffffffffffff" in result.stderr
    assert "re-bake with --tokenizer" in result.stderr
    assert not (tmp_path / "run").exists()


def test_refuses_manifest_of_another_tokenizer(tune_workspace, tmp_path):
    from genoforge.errors import TokenizerError
    from genoforge.training.config import TuneConfig
    from genoforge.training.loop import tune

    baked = tmp_path / "baked"
    baked.mkdir()
    for shard in (tune_workspace.train, tune_workspace.validation):
        shutil.copyfile(shard, baked / shard.name)
    (baked / "manifest.json").write_text(json.dumps({"tokenizer": {"hash": "0" * 64}}))
    with pytest.raises(TokenizerError, match="manifest.json.*000000000000"):
        tune(baked / "training.packed", baked / "validation.packed", tmp_path / "run", tune_workspace.model_dir,
             TuneConfig())


def test_early_stopping_stops_and_keeps_best(tune_workspace, tmp_path):
    out = tmp_path / "run"
    # min_delta 10 nats: no evaluation after the first can count as an improvement.
    toml = tmp_path / "es.toml"
    toml.write_text(tune_workspace.config.read_text() + "early_stopping_min_delta = 10.0\n")
    args = tune_args(tune_workspace, out, "--eval_steps", "2", "--early-stopping", "2", "--save-steps", "0")
    args[args.index("--config") + 1] = str(toml)
    result = subprocess.run([sys.executable, "-m", "genoforge", *args], capture_output=True, text=True,
                            env=tune_env(), cwd=REPO_ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    evals = read_metrics(out, "eval")
    assert [r["step"] for r in evals] == [2, 4, 6]
    assert [r["best"] for r in evals] == [True, False, False]
    end = read_metrics(out, "end")[0]
    assert end["stopped"] == "early_stopping" and end["step"] == 6 and end["best_step"] == 2
    assert "early stopping" in result.stderr
    assert (out / "best").is_dir() and (out / "final").is_dir()


def test_sigterm_saves_a_checkpoint_and_exits_143(tune_workspace, tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "genoforge", *tune_args(tune_workspace, out, "--save_steps", "0", "--epochs", "50")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=tune_env(), cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 90
        metrics = out / "metrics.jsonl"
        while time.monotonic() < deadline:
            if metrics.exists() and '"kind": "train"' in metrics.read_text():
                break
            time.sleep(0.1)
        else:
            pytest.fail("no training step within 90 s")
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, stderr  # 128 + SIGTERM (Ctrl-C: 130, tests/training/test_tune_signals.py)
    saved = sorted(out.glob("step-*"))
    assert len(saved) == 1 and "resume with --resume auto" in stderr
    state = json.loads((saved[0] / "trainer_state.json").read_text())
    assert state["global_step"] >= 1 and int(saved[0].name[5:]) == state["global_step"]
    assert not (out / "final").exists()


@pytest.fixture(scope="module")
def single_process_run(tune_workspace, tmp_path_factory):
    """5 steps of one process accumulating 2 micro-batches per step (dropout 0.1 on)."""
    single = tmp_path_factory.mktemp("single") / "run"
    one = run_tune(tune_workspace, single, "--max_steps", "5", "--grad_accum", "2", "--save_steps", "0")
    assert one.returncode == 0, one.stderr
    return single


@pytest.mark.skipif(os.name != "posix", reason="gloo process groups are tested on POSIX only")
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one(tune_workspace, single_process_run, tmp_path, strategy):
    single = single_process_run
    ddp = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(29500 + os.getpid() % 1000 + (strategy == "fsdp")), "-m", "genoforge",
               *tune_args(tune_workspace, ddp, "--max_steps", "5", "--grad_accum", "1", "--save_steps", "0",
                          "--strategy", strategy)]
    two = subprocess.run(command, capture_output=True, text=True, env=tune_env(), cwd=REPO_ROOT, timeout=180)
    assert two.returncode == 0, two.stderr[-4000:]
    start = read_metrics(ddp, "start")[0]
    assert start["world_size"] == 2 and start["micro_batches_per_step"] == 2
    expected, got = train_losses(single), train_losses(ddp)
    assert sorted(got) == [1, 2, 3, 4, 5]
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=1e-4)
    val_one = read_metrics(single, "eval")[-1]["val_loss"]
    val_two = read_metrics(ddp, "eval")[-1]["val_loss"]
    assert val_two == pytest.approx(val_one, rel=1e-4)
    assert (ddp / "final" / "model.safetensors").is_file()


def test_max_minutes_stops_like_max_steps_with_final_model(tune_workspace, tmp_path):
    """A time limit ends the run cleanly: a last evaluation, a checkpoint and a loadable final/."""
    out = tmp_path / "run"
    result = run_tune(tune_workspace, out, "--max_steps", "20", "--eval_steps", "0", "--save_steps", "0",
                      "--max_minutes", "0.00001")
    assert result.returncode == 0, result.stderr
    assert "stopped max_minutes" in result.stdout and "time limit" in result.stderr
    end = read_metrics(out, "end")[-1]
    assert end["stopped"] == "max_minutes" and end["step"] == 1
    assert [r["step"] for r in read_metrics(out, "eval")] == [1]
    assert (out / "step-00000001").is_dir()
    assert (out / "final" / "config.json").is_file() and (out / "final" / "model.safetensors").is_file()


def test_max_minutes_must_not_be_negative(tune_workspace, tmp_path):
    result = run_tune(tune_workspace, tmp_path / "run", "--max_minutes", "-1")
    assert result.returncode == 1
    assert "max_minutes must be >= 0" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("select_by", "key"), [("base", "val_base_structure_error"), ("generative", "val_loss"),
                                                ("objective", "val_objective")])
def test_select_by_picks_best_by_that_validation_score(tune_workspace, tmp_path, select_by, key):
    """best/ and its step follow the --select_by score: each eval marked best is a new minimum of it."""
    out = tmp_path / "run"
    result = run_tune(tune_workspace, out, "--max_steps", "6", "--eval_steps", "1", "--save_steps", "0",
                      "--select_by", select_by)
    assert result.returncode == 0, result.stderr
    evals = read_metrics(out, "eval")
    assert len(evals) == 6 and all(key in e for e in evals)
    lowest = None
    for record in evals:
        improved = lowest is None or record[key] < lowest
        assert record["best"] == improved, (record["step"], record[key], lowest)
        lowest = record[key] if improved else lowest
    end = read_metrics(out, "end")[-1]
    assert end["best_val_loss"] == lowest
    assert end["best_step"] == min(evals, key=lambda e: (e[key], e["step"]))["step"]
    assert (out / "best" / "config.json").is_file()


def test_select_by_base_without_the_base_loss_is_a_one_line_error(tune_workspace, tmp_path):
    result = run_tune(tune_workspace, tmp_path / "run", "--select_by", "base", "--base_loss_weight", "0")
    assert result.returncode == 1
    assert "select_by base needs" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()
