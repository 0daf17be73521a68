"""Help at 80 columns: one spelling per flag, no cut flag names; the kebab alias still works;
help text that names the quickstart preset; Tab completion of `tune --strategy`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app

runner = CliRunner()

COMMANDS = [
    [],
    ["tokens"],
    ["tokens", "init"],
    ["tokens", "train"],
    ["tokens", "append"],
    ["tokens", "resize"],
    ["model"],
    ["model", "init"],
    ["model", "info"],
    ["bake"],
    ["bake", "inspect"],
    ["eval"],
    ["quickstart"],
    ["tune"],  # its widest flag, --generate_max_new_tokens, fits with one column to spare
    ["predict"],
]


def _help(path: list[str]) -> str:
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", COMMANDS)
def test_help_at_80_columns_shows_whole_flag_names_once(path: list[str]) -> None:
    text = _help(path)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text, f"`genoforge {' '.join(path)} --help` cuts text at 80 columns"
    # one spelling per flag: the recipe's underscore one, never a kebab twin beside it
    assert not re.search(r"--[a-z]+_[a-z_]+,--", text)
    declared = set(re.findall(r"--[a-z]+(?:_[a-z]+)+", text))
    for name in declared:
        assert name.replace("_", "-") not in text, name


def test_model_init_help_lists_recipe_flags() -> None:
    text = _help(["model", "init"])
    for name in ("--save_dir", "--init_moe_router_std", "--encoder_window_size", "--no_tie_weights"):
        assert name in text


def test_kebab_alias_still_works(tmp_path: Path) -> None:
    import shutil

    from genoforge.tokenizer.core import dnabert2_tokenizer_path

    tok = tmp_path / "tok"
    tok.mkdir()
    shutil.copyfile(dnabert2_tokenizer_path(), tok / "tokenizer.json")
    snake = runner.invoke(app, ["model", "init", "--dry_run", "--preset", "debug", "--dnabert_path",
                                str(tok), "--save_dir", str(tmp_path / "m"), "--no_tie_weights",
                                "--decoder_layers", "3"])
    kebab = runner.invoke(app, ["model", "init", "--dry-run", "--preset", "debug", "--dnabert-path",
                                str(tok), f"--save-dir={tmp_path / 'm'}", "--no-tie-weights",
                                "--decoder-layers", "3"])
    assert snake.exit_code == 0, snake.output
    assert kebab.exit_code == 0, kebab.output
    assert kebab.stdout == snake.stdout and "3" in snake.stdout
    assert not (tmp_path / "m").exists()
    assert runner.invoke(app, ["model", "init", "--no-such-flag"]).exit_code == 2


def test_quickstart_help_names_the_debug_preset() -> None:
    text = _help(["quickstart"])
    assert "debug preset" in text and "tiny" not in text


def test_tune_strategy_completes_its_choices() -> None:
    def complete(words: str) -> list[str]:
        env = {"_GENOFORGE_COMPLETE": "complete_bash", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1))}
        result = runner.invoke(app, [], env=env, prog_name="genoforge")
        return result.output.split()

    assert complete("genoforge tune a b c d --strategy ") == ["ddp", "fsdp"]
    assert complete("genoforge tune a b c d --strategy f") == ["fsdp"]
