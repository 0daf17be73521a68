"""`genoforge bake`: the recipe line, flags, config precedence, exit codes, atomic output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app

runner = CliRunner()

FLAGS = (
    "raw_dir",
    "output_dir",
    "tokenizer",
    "window_size",
    "taxa",
    "species",
    "n_workers",
    "species_parallel",
    "val_fraction",
    "seed",
    "hint_ratio",
    "max_n_ratio",
    "keep_going",
    "overwrite",
    "config",
)


def _bake(*args: str):
    return runner.invoke(app, ["bake", *args])


def _base_args(raw: Path, output: Path, tokenizer: Path) -> list[str]:
    return ["--raw_dir", str(raw), "--output_dir", str(output), "--tokenizer", str(tokenizer), "--window_size", "5000"]


def _leftovers(parent: Path) -> list[str]:
    """Temporary folders a bake may have left beside its output."""
    return [p.name for p in parent.iterdir() if p.name.startswith(".")]


def test_help_lists_every_flag_once_and_the_inspect_command():
    result = runner.invoke(app, ["bake", "-h"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0, result.output
    for name in FLAGS:
        assert f"--{name}" in result.output, name
        if "_" in name:  # the kebab alias works (test_cli_help.py) but is not listed
            assert f"--{name.replace('_', '-')}" not in result.output, name
    assert "inspect" in result.output and "Examples" in result.output
    assert "[default: 10000]" in result.output  # defaults are shown, not eaten as markup
    inspect_help = _bake("inspect", "-h")
    assert inspect_help.exit_code == 0 and "--gff" in inspect_help.output and "--split" in inspect_help.output


def test_recipe_line_runs_as_written(tmp_path, monkeypatch, tiny_raw_dir, baking_tokenizer_dir):
    # The recipe's relative layout: ../raw, ../model/init and ../baked seen from a work folder.
    assert tiny_raw_dir == tmp_path / "raw"
    shutil.copytree(baking_tokenizer_dir, tmp_path / "model" / "init")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    line = (
        "bake --raw_dir ../raw --output_dir ../baked/5k4.5k --n_workers 5 --species_parallel 3 "
        "--tokenizer ../model/init --window_size 10000"
    )
    result = runner.invoke(app, line.split())
    assert result.exit_code == 0, result.output
    baked = tmp_path / "baked" / "5k4.5k"
    assert sorted(p.name for p in baked.iterdir()) == [
        "gene_structure.json", "manifest.json", "training.packed", "validation.packed"]
    manifest = json.loads((baked / "manifest.json").read_text())
    assert manifest["config"]["window_size"] == 10_000
    assert sorted(manifest["species"]) == ["tiny_a", "tiny_b"]
    assert "n_workers" not in manifest["config"]  # execution-only: keeps the manifest worker-independent
    assert "../baked/5k4.5k/training.packed" in result.stdout  # the result is on stdout


def test_kebab_spellings_and_config_precedence(tmp_path, tiny_raw_dir, baking_tokenizer_dir):
    config = tmp_path / "bake.toml"
    config.write_text(
        f'raw_dir = "{tiny_raw_dir}"\ntokenizer = "{baking_tokenizer_dir}"\n'
        "[bake]\nwindow_size = 3000\nseed = 5\nval-fraction = 0.2\n"
    )
    output = tmp_path / "out"
    result = _bake("--config", str(config), "--output-dir", str(output), "--seed", "9", "--species", "tiny_a")
    assert result.exit_code == 0, result.output
    recorded = json.loads((output / "manifest.json").read_text())["config"]
    assert recorded["window_size"] == 3000  # from the file
    assert recorded["val_fraction"] == 0.2  # kebab key in the file
    assert recorded["seed"] == 9  # the flag beats the file
    assert recorded["max_n_ratio"] == 0.1  # the default
    assert recorded["species"] == ["tiny_a"]


def test_unknown_config_key_is_an_error(tmp_path):
    config = tmp_path / "bake.toml"
    config.write_text("window = 3000\n")
    result = _bake("--config", str(config))
    assert result.exit_code == 1
    assert "unknown key 'window'" in result.output and "Traceback" not in result.output


def test_usage_errors_exit_2(tmp_path):
    assert _bake("--raw_dir", str(tmp_path)).exit_code == 2  # no --output_dir / --tokenizer
    assert _bake("--window_size", "big").exit_code == 2
    assert _bake("inspect", str(tmp_path), "--split", "testing").exit_code == 2


@pytest.mark.parametrize("parallel", [[], ["--species_parallel", "2", "--n_workers", "2"]], ids=["serial", "parallel"])
def test_bad_input_is_one_line_exit_1_and_nothing_written(tmp_path, baking_tokenizer_dir, parallel):
    from tests.helpers import write_tiny_species

    raw = tmp_path / "raw"
    write_tiny_species(raw / "good", seed=1)
    write_tiny_species(raw / "bad", seed=2, bad_line="chr1\ttest\tgene\t500\t100\t.\t+\t.\tID=backwards")
    output = tmp_path / "baked"
    result = _bake(*_base_args(raw, output, baking_tokenizer_dir), *parallel)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert "annotation.gff3:" in lines[0] and "Traceback" not in result.output
    assert not output.exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("parallel", [[], ["--species_parallel", "2"]], ids=["serial", "parallel"])
def test_keep_going_skips_and_records_the_bad_species(tmp_path, baking_tokenizer_dir, parallel):
    from tests.helpers import write_tiny_species

    raw = tmp_path / "raw"
    write_tiny_species(raw / "good", seed=1)
    write_tiny_species(raw / "bad", seed=2, bad_line="chr1\ttest\tgene\t500\t100\t.\t+\t.\tID=backwards")
    (raw / "empty").mkdir()  # no files at all: a discovery error, also skipped
    output = tmp_path / "baked"
    result = _bake(*_base_args(raw, output, baking_tokenizer_dir), "--keep_going", *parallel)
    assert result.exit_code == 0, result.output
    manifest = json.loads((output / "manifest.json").read_text())
    assert list(manifest["species"]) == ["good"]
    assert sorted(manifest["failed_species"]) == ["bad", "empty"]
    assert "annotation.gff3:" in manifest["failed_species"]["bad"]
    assert "no genome FASTA" in manifest["failed_species"]["empty"]
    assert "skipping species bad" in result.stderr


def test_all_species_failing_is_an_error_even_with_keep_going(tmp_path, baking_tokenizer_dir):
    raw = tmp_path / "raw"
    (raw / "empty").mkdir(parents=True)
    result = _bake(*_base_args(raw, tmp_path / "baked", baking_tokenizer_dir), "--keep_going")
    assert result.exit_code == 1
    assert not (tmp_path / "baked").exists()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["genome.fa", "other.fasta.gz", "a.gff3"], "several genome FASTA"),
        (["genome.fa"], "no GFF3 annotation"),
        (["notes.txt", "a.gff"], "no genome FASTA"),
    ],
)
def test_discovery_errors_name_the_folder(tmp_path, baking_tokenizer_dir, files, message):
    folder = tmp_path / "raw" / "odd"
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text(">x\nACGT\n" if ".f" in name else "##gff-version 3\n")
    result = _bake(*_base_args(tmp_path / "raw", tmp_path / "baked", baking_tokenizer_dir))
    assert result.exit_code == 1
    assert message in result.output and "odd" in result.output


def test_unknown_species_and_missing_raw_dir(tmp_path, tiny_raw_dir, baking_tokenizer_dir):
    result = _bake(*_base_args(tiny_raw_dir, tmp_path / "o", baking_tokenizer_dir), "--species", "tiny_a,nope")
    assert result.exit_code == 1 and "nope" in result.output and "tiny_b" in result.output
    result = _bake(*_base_args(tmp_path / "missing", tmp_path / "o", baking_tokenizer_dir))
    assert result.exit_code == 1 and "--raw_dir" in result.output


def test_tokenizer_without_the_inventory_is_refused(tmp_path, tiny_raw_dir, dnabert2_tokenizer_json):
    result = _bake(*_base_args(tiny_raw_dir, tmp_path / "o", dnabert2_tokenizer_json))
    assert result.exit_code == 1
    assert "tokens append" in result.output
    assert not (tmp_path / "o").exists()


def test_overwrite_rules(tmp_path, tiny_raw_dir, baking_tokenizer_dir):
    output = tmp_path / "baked"
    args = [*_base_args(tiny_raw_dir, output, baking_tokenizer_dir), "--species", "tiny_a"]
    assert _bake(*args).exit_code == 0
    before = (output / "training.packed").read_bytes()
    refused = _bake(*args, "--seed", "3")
    assert refused.exit_code == 1 and "--overwrite" in refused.output
    assert (output / "training.packed").read_bytes() == before
    assert _bake(*args, "--seed", "3", "--overwrite").exit_code == 0
    assert (output / "training.packed").read_bytes() != before
    assert json.loads((output / "manifest.json").read_text())["config"]["seed"] == 3
    # --overwrite replaces bakes only, never an unrelated folder
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    result = _bake(*_base_args(tiny_raw_dir, precious, baking_tokenizer_dir), "--overwrite")
    assert result.exit_code == 1 and (precious / "thesis.tex").exists()
    assert _leftovers(tmp_path) == []


def test_out_of_range_values_are_refused(tmp_path, tiny_raw_dir, baking_tokenizer_dir):
    for flag, value in (("--val_fraction", "1.5"), ("--n_workers", "0"), ("--window_size", "1000000")):
        result = _bake(*_base_args(tiny_raw_dir, tmp_path / "o", baking_tokenizer_dir), flag, value)
        assert result.exit_code == 1, (flag, result.output)
        assert flag.lstrip("-") in result.output


def test_an_interrupted_bake_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, tiny_raw_dir, baking_tokenizer_dir):
    import genoforge.baking.species as species_module  # where chunks are handed to bake_chunk

    real_bake_chunk = species_module.bake_chunk
    calls = []

    def interrupted(task):  # Ctrl-C arrives while the second chunk is being baked
        calls.append(task.seqid)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_bake_chunk(task)

    monkeypatch.setattr(species_module, "bake_chunk", interrupted)
    output = tmp_path / "baked"
    result = _bake(*_base_args(tiny_raw_dir, output, baking_tokenizer_dir))
    assert result.exit_code == 130
    assert len(calls) == 2
    assert not output.exists()
    assert _leftovers(tmp_path) == []
