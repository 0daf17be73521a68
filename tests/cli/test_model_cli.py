"""`genoforge model init|info` and `genoforge tokens resize`: exit codes, help, flags, config files."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.tokenizer.core import dnabert2_tokenizer_path

RECIPE = (
    "model init --save_dir {save} --dnabert_path zhihan1996/DNABERT-2-117M "
    "--tie_weights --decoder_layers 12 --decoder_heads 12 --decoder_kv_heads 3 "
    "--decoder_ff_dim 3072 --decoder_dropout 0.1 --use_moe --num_experts 32 --moe_top_k 2 "
    "--init_std 0.02 --init_embed_std 0.02 --init_ffn_std 0.02 --init_attn_std 0.02 "
    "--init_moe_router_std 0.006 --encoder_block_size 256 --encoder_window_size 34560 "
    "--decoder_block_size 16 --decoder_window_size 1600 --num_latents 1024"
)
RECIPE_FLAGS = [w for w in RECIPE.split() if w.startswith("--") and w not in ("--save_dir", "--dnabert_path")]


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network: the hub is never asked, its cache is an empty folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))


@pytest.fixture
def tok_dir(tmp_path):
    directory = tmp_path / "tok"
    directory.mkdir()
    shutil.copyfile(dnabert2_tokenizer_path(), directory / "tokenizer.json")
    return directory


def run(runner, line: str):
    return runner.invoke(app, line.split(), env={"COLUMNS": "240"})


def test_help_lists_every_recipe_flag(runner):
    result = run(runner, "model init --help")
    assert result.exit_code == 0
    assert "Examples" in result.output
    for name in RECIPE_FLAGS + ["--save_dir", "--dnabert_path", "--preset", "--config", "--new_tokens_file"]:
        assert name in result.output, name
    for name in ("model --help", "model info -h", "tokens resize --help"):
        assert run(runner, name).exit_code == 0


def test_recipe_line_runs_as_written_both_spellings(runner, offline, tmp_path):
    snake = run(runner, RECIPE.format(save=tmp_path / "init") + " --dry_run")
    assert snake.exit_code == 0, snake.output
    assert "FALLING BACK" in snake.stderr  # offline: a loud warning, not a failure
    assert "2.91B total" in snake.stdout
    kebab_line = " ".join(w.replace("_", "-") if w.startswith("--") else w for w in RECIPE.split())
    kebab = run(runner, kebab_line.format(save=tmp_path / "init") + " --dry-run")
    assert kebab.exit_code == 0, kebab.output
    assert kebab.stdout == snake.stdout
    assert not (tmp_path / "init").exists()


def test_init_debug_writes_a_model_dir_then_refuses_to_overwrite(runner, tok_dir, tmp_path):
    save = tmp_path / "model"
    first = run(runner, f"model init --save_dir {save} --dnabert_path {tok_dir} --preset debug")
    assert first.exit_code == 0, first.output
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json", "resolved_config.json"):
        assert (save / name).is_file(), name
    assert "TOTAL" in first.stdout
    again = run(runner, f"model init --save_dir {save} --dnabert_path {tok_dir} --preset debug")
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert run(runner, f"model init --save_dir {save} --dnabert_path {tok_dir} --preset debug --overwrite").exit_code == 0
    # The built-in inventory is already there: the recipe's next two steps have nothing to do.
    tokens_file = tmp_path / "new_tokens.txt"
    assert run(runner, f"tokens init {tokens_file}").exit_code == 0
    appended = run(runner, f"tokens append {tokens_file} {save / 'tokenizer.json'}")
    assert appended.exit_code == 0 and "Nothing to add" in appended.stdout
    resized = run(runner, f"tokens resize {save} {save}")
    assert resized.exit_code == 0 and "Nothing to do" in resized.stdout


def test_tokens_resize_grows_after_append(runner, tok_dir, tmp_path):
    save = tmp_path / "model"
    assert run(runner, f"model init --save_dir {save} --dnabert_path {tok_dir} --preset debug").exit_code == 0
    extra = tmp_path / "extra.txt"
    extra.write_text("my_feature\nmy_other_feature\n")
    assert run(runner, f"tokens append {extra} {save}").exit_code == 0
    resized = run(runner, f"tokens resize {save}")
    assert resized.exit_code == 0 and "Resized" in resized.stdout
    assert run(runner, f"tokens resize {tmp_path / 'nowhere'}").exit_code == 1


def test_config_file_then_flags_take_precedence(runner, tok_dir, tmp_path):
    toml = tmp_path / "model.toml"
    toml.write_text("preset = 'debug'\n[model]\ndecoder_layers = 3\nnum_experts = 6\n")
    save = tmp_path / "m1"
    assert run(runner, f"model init --save_dir {save} --dnabert_path {tok_dir} --config {toml}").exit_code == 0
    config = json.loads((save / "config.json").read_text())
    assert (config["decoder_layers"], config["num_experts"], config["decoder_dim"]) == (3, 6, 48)
    resolved = json.loads((save / "resolved_config.json").read_text())
    assert resolved["sources"]["decoder_layers"] == "config file"
    save2 = tmp_path / "m2"
    line = f"model init --save_dir {save2} --dnabert_path {tok_dir} --config {toml} --decoder-layers 4"
    assert run(runner, line).exit_code == 0
    assert json.loads((save2 / "config.json").read_text())["decoder_layers"] == 4
    toml.write_text("[model]\ndecoder_layerz = 3\n")
    bad = run(runner, f"model init --save_dir {tmp_path / 'm3'} --dnabert_path {tok_dir} --config {toml}")
    assert bad.exit_code == 1 and "decoder_layerz" in bad.stderr
    assert not (tmp_path / "m3").exists()


def test_flag_without_effect_warns_but_runs(runner, tok_dir, tmp_path):
    line = f"model init --save_dir {tmp_path / 'm'} --dnabert_path {tok_dir} --preset debug --no_use_moe --num_experts 8"
    result = run(runner, line)
    assert result.exit_code == 0
    assert "--num_experts has no effect without --use_moe" in result.stderr


def test_usage_and_input_errors_exit_codes(runner, tok_dir, tmp_path):
    assert run(runner, f"model init --save_dir {tmp_path / 'm'} --dnabert_path {tok_dir} --preset huge").exit_code == 2
    assert run(runner, f"model init --dnabert_path {tok_dir}").exit_code == 2  # --save_dir missing
    missing = run(runner, f"model init --save_dir {tmp_path / 'm'} --dnabert_path {tmp_path / 'absent'}")
    assert missing.exit_code == 1 and "Error:" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(runner, f"model init --save_dir {tmp_path / 'm'} --dnabert_path {empty}").exit_code == 1
    assert run(runner, f"model info {empty}").exit_code == 1
    assert run(runner, "model info").exit_code == 2


def test_model_info_seed_preset_reports_total_and_active(runner):
    result = run(runner, "model info --preset seed --json")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    # 32 experts x 3 x 768 x 3072 x 12 layers = 2.72B, + encoder 113M, compressor 26M, attention 35M.
    assert 2.85e9 < info["total_params"] < 2.95e9
    blocks = {row["block"]: row for row in info["blocks"]}
    assert blocks["experts"]["total"] == 12 * 32 * 3 * 768 * 3072
    assert blocks["experts"]["active"] == 12 * 2 * 3 * 768 * 3072
    assert 190e6 < info["active_non_embedding_decoder_params"] < 215e6
    assert info["adamw_training_state_bytes"] == 16 * info["total_params"]
    table = run(runner, "model info --preset seed")
    assert table.exit_code == 0 and "experts" in table.stdout and "AdamW" in table.stdout
