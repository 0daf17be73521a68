"""`genoforge tokens init | train | append` through typer's CliRunner: output, files, exit codes 0/1/2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.genes import inventory
from genoforge.tokenizer.core import GenoTokenizer, dnabert2_tokenizer_path

runner = CliRunner()


def _invoke(*args: str | Path):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _assert_one_line_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture()
def dnabert2_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "dnabert2"
    folder.mkdir()
    shutil.copyfile(dnabert2_tokenizer_path(), folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "unk_token": "[UNK]", "pad_token": "[PAD]"})
    )
    return folder


@pytest.fixture()
def tokens_txt(tmp_path: Path) -> Path:
    path = tmp_path / "new_tokens.txt"
    assert _invoke("tokens", "init", path).exit_code == 0
    return path


# -- help ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "summary"),
    [
        ([], "Tokenizers"),
        (["init"], "Write the built-in token inventory"),
        (["train"], "Train a DNABERT-2-style BPE tokenizer"),
        (["append"], "Append the tokens of TOKENS.txt"),
        (["resize"], "Resize a model's token embeddings"),
    ],
)
@pytest.mark.parametrize("help_flag", ["--help", "-h"])
def test_help(command: list[str], summary: str, help_flag: str) -> None:
    result = _invoke("tokens", *command, help_flag)
    assert result.exit_code == 0, result.output
    assert summary in result.stdout
    assert "Examples" in result.stdout
    assert "genoforge tokens" in result.stdout


def test_flags_are_listed_in_one_spelling() -> None:
    train_help = _invoke("tokens", "train", "--help").stdout
    append_help = _invoke("tokens", "append", "--help").stdout
    assert "--vocab_size" in train_help and "--output" in train_help and "-o" in train_help
    assert "--dry_run" in append_help and "--dry-run" not in append_help
    assert "--verbose" in append_help


def test_group_help_lists_resize() -> None:
    group_help = _invoke("tokens", "--help").stdout
    assert "resize" in group_help.split("Commands")[0]  # in the summary, not only the table
    assert "genoforge tokens resize" in group_help


# -- init ------------------------------------------------------------------------------------------


def test_init_writes_every_inventory_class_deterministically(tmp_path: Path) -> None:
    path = tmp_path / "data" / "new_tokens.txt"
    result = _invoke("tokens", "init", path)
    assert result.exit_code == 0, result.output
    count = len(inventory.builtin_tokens())
    assert f"{count:,} tokens" in result.stdout and str(path) in result.stdout

    text = path.read_text()
    lines = text.split("\n")
    assert lines[-1] == "" and "\t" not in text  # trailing newline; TAB only in escaped form
    tokens = lines[:-1]
    assert len(tokens) == count == len(set(tokens))
    assert tokens[:2] == ["<bos>", "<eos>"]
    expected = [
        "transcript", "exon", "cds", "protein_coding", "pseudogene", "transposable_element",
        "origin_of_replication", "mobile_genetic_element", "five_prime_utr", "three_prime_utr",
        "mrna", "lncrna", "[ATT]", "[HIT]", "+", "-", ".", "[\\t]", "[\\n]", ":", "<", ">", "<>",
        "intron_hc", "intron_lc",
    ]
    expected += list(inventory.RNA_TYPES) + [t.lower() for t in inventory.RNA_TYPES]
    expected += [str(i) for i in range(1000)] + ["N" * k for k in range(1, 7)]
    missing = [t for t in expected if t not in tokens]
    assert missing == []
    assert tokens.index("0") < tokens.index("999")

    first = path.read_bytes()
    again = _invoke("tokens", "init", path, "--force")
    assert again.exit_code == 0
    assert path.read_bytes() == first


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "new_tokens.txt"
    path.write_text("keep me\n")
    _assert_one_line_error(_invoke("tokens", "init", path), "new_tokens.txt", "--force")
    assert path.read_text() == "keep me\n"
    _assert_one_line_error(_invoke("tokens", "init", tmp_path), "directory")


# -- append ----------------------------------------------------------------------------------------


def test_append_dry_run_then_append_then_nothing_to_add(dnabert2_dir: Path, tokens_txt: Path) -> None:
    before = _file_bytes(dnabert2_dir)
    dry = _invoke("tokens", "append", tokens_txt, dnabert2_dir / "tokenizer.json", "--dry_run", "--verbose")
    assert dry.exit_code == 0, dry.output
    assert "Would add" in dry.stdout and "[ATT]" in dry.stdout and "Dry run" in dry.stdout
    assert _file_bytes(dnabert2_dir) == before

    done = _invoke("tokens", "append", tokens_txt, dnabert2_dir)
    assert done.exit_code == 0, done.output
    builtins = inventory.builtin_tokens()
    # a summary, not one row per token (--verbose lists them all)
    assert f"Added {len(builtins):,} tokens" in done.stdout
    assert f"ids 4096-{4095 + len(builtins)}" in done.stdout and "--verbose" in done.stdout
    assert len(done.stdout.splitlines()) <= 3 and "[ATT]" not in done.stdout
    tok = GenoTokenizer.load(dnabert2_dir)
    assert tok.encode_target(builtins) == list(range(4096, 4096 + len(builtins)))
    hf_config = json.loads((dnabert2_dir / "tokenizer_config.json").read_text())
    assert hf_config["bos_token"] == "<bos>" and hf_config["eos_token"] == "<eos>"

    after = _file_bytes(dnabert2_dir)
    again = _invoke("tokens", "append", tokens_txt, dnabert2_dir)
    assert again.exit_code == 0
    assert "Nothing to add" in again.stdout
    assert _file_bytes(dnabert2_dir) == after


def test_append_deduplicates_and_warns_about_repeats(dnabert2_dir: Path, tmp_path: Path) -> None:
    tokens = tmp_path / "mine.txt"
    tokens.write_text("exon\nA\n[\\t]\nexon\n\n12\n")
    result = _invoke("tokens", "append", tokens, dnabert2_dir, "--output", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "mine.txt:4" in result.stderr and "exon" in result.stderr
    assert "1 already present" in result.stdout  # "A" is a BPE token
    out = GenoTokenizer.load(tmp_path / "out")
    assert [out.token_to_id(t) for t in ["exon", "\t", "12"]] == [4096, 4097, 4098]
    assert out.vocab_size == 4099
    assert "exon" not in GenoTokenizer.load(dnabert2_dir)  # the source is untouched


def test_append_kebab_spellings(dnabert2_dir: Path, tokens_txt: Path) -> None:
    before = _file_bytes(dnabert2_dir)
    result = _invoke("tokens", "append", tokens_txt, dnabert2_dir, "--dry-run")
    assert result.exit_code == 0 and "Would add" in result.stdout
    assert _file_bytes(dnabert2_dir) == before


def test_append_errors(dnabert2_dir: Path, tokens_txt: Path, tmp_path: Path) -> None:
    _assert_one_line_error(_invoke("tokens", "append", tokens_txt, tmp_path / "nope"), "nope", "not found")
    _assert_one_line_error(_invoke("tokens", "append", tmp_path / "absent.txt", dnabert2_dir), "absent.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("exon\n cds\n")
    _assert_one_line_error(_invoke("tokens", "append", bad, dnabert2_dir), "bad.txt:2", "whitespace")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    _assert_one_line_error(_invoke("tokens", "append", empty, dnabert2_dir), "empty.txt", "no tokens")
    assert _invoke("tokens", "append", tokens_txt).exit_code == 2  # missing argument: usage error


# -- train -----------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_train_is_byte_identical_twice_and_loads_in_transformers(shared_data: Path, tmp_path: Path) -> None:
    genome = shared_data / "athal_chloroplast" / "genome.fa.gz"
    first = _invoke("tokens", "train", genome, "-o", tmp_path / "a", "--vocab_size", "512", "--seed", "7")
    assert first.exit_code == 0, first.output
    assert "vocabulary   512 tokens" in first.stdout and "content hash" in first.stdout
    assert "Training BPE" in first.stderr  # progress on stderr, not stdout
    second = _invoke("tokens", "train", genome, "--output", tmp_path / "b", "--vocab-size", "512", "--seed", "7")
    assert second.exit_code == 0, second.output
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"
    ]

    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast.from_pretrained(tmp_path / "a")
    tok = GenoTokenizer.load(tmp_path / "a")
    ids = tok.encode_dna("ATGGCGTTAGCCTAGGATTACA")
    assert hf.decode(ids) == "ATGGCGTTAGCCTAGGATTACA"
    assert hf.pad_token_id == 3 and len(hf) == 512


def test_train_errors(tmp_path: Path) -> None:
    fasta = tmp_path / "g.fa"
    fasta.write_text(">g\n" + "ACGTTGCA" * 50 + "\n")
    out = tmp_path / "out"
    out.mkdir()
    _assert_one_line_error(_invoke("tokens", "train", fasta, "-o", out), "out", "--overwrite")
    assert list(out.iterdir()) == []
    assert _invoke("tokens", "train", fasta, "-o", tmp_path / "x", "--vocab_size", "3").exit_code == 2
    assert _invoke("tokens", "train", fasta).exit_code == 2  # -o is required
    bad = tmp_path / "bad.fa"
    bad.write_text(">b\nACGT-ACGT\n")
    _assert_one_line_error(_invoke("tokens", "train", bad, "-o", tmp_path / "y"), "bad.fa")
    assert not (tmp_path / "y").exists()  # nothing half-written
    ok = _invoke("tokens", "train", fasta, "-o", out, "--overwrite", "--vocab_size", "64")
    assert ok.exit_code == 0, ok.output
    assert (out / "tokenizer.json").is_file()
