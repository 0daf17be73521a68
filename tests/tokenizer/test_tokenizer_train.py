"""train_dna_bpe: DNABERT-2 layout, determinism, bounded sampling, and round trips.

Real genomes come from ../shared/data (skipped when absent): the 154 kb A. thaliana chloroplast
for speed, the 1 Mb yeast chrI+chrII for the determinism and timing claims. Tiny FASTA files
written by the tests cover the error paths.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from genoforge.errors import ConfigError, FastaFormatError, InputError
from genoforge.genes import inventory
from genoforge.tokenizer.core import DNABERT2_SPECIALS, GenoTokenizer
from genoforge.tokenizer.edit import ensure_builtin_tokens
from genoforge.tokenizer.train import (
    dna_chunks,
    train_dna_bpe,
    train_dna_bpe_with_stats,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def chloroplast(shared_data: Path) -> Path:
    return shared_data / "athal_chloroplast" / "genome.fa.gz"


@pytest.fixture(scope="module")
def trained_json(chloroplast: Path) -> str:
    return train_dna_bpe([chloroplast], vocab_size=1024).to_str()


def _first_sequence(path: Path, length: int) -> str:
    from genoforge.genes.fasta import read_fasta

    return next(iter(read_fasta(path))).sequence[:length]


def test_dna_chunks_cut_at_non_acgt_and_length() -> None:
    assert list(dna_chunks(["acgtNNacgtRacg", "", "NNNN", "TTTTTTT"], chunk_length=3)) == [
        "ACG", "T", "ACG", "T", "ACG", "TTT", "TTT", "T"
    ]


@pytest.mark.shared_data
def test_trained_tokenizer_has_the_dnabert2_layout(trained_json: str) -> None:
    data = json.loads(trained_json)
    vocab = data["model"]["vocab"]
    assert data["model"]["type"] == "BPE"
    assert len(vocab) == 1024
    assert [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])[:9]] == [*DNABERT2_SPECIALS, "A", "C", "G", "T"]
    assert [(a["id"], a["content"], a["special"]) for a in data["added_tokens"]] == [
        (i, t, True) for i, t in enumerate(DNABERT2_SPECIALS)
    ]
    assert data["normalizer"] is None
    assert data["pre_tokenizer"]["type"] == "Whitespace"
    assert data["post_processor"]["type"] == "TemplateProcessing"
    assert data["decoder"]["type"] == "Fuse"
    assert all(set(token) <= set("ACGT") for token in vocab if token not in DNABERT2_SPECIALS)
    assert not any(token in vocab for token in inventory.builtin_tokens())  # init/append add them

    encoding = Tokenizer.from_str(trained_json).encode("ACGTACGT")
    assert encoding.tokens[0] == "[CLS]" and encoding.tokens[-1] == "[SEP]"  # DNABERT-2's template


@pytest.mark.shared_data
def test_training_is_deterministic_across_processes(chloroplast: Path, trained_json: str) -> None:
    """The same input and seed give a byte-identical tokenizer.json, even with another hash seed."""
    assert train_dna_bpe([chloroplast], vocab_size=1024).to_str() == trained_json
    code = (
        "import sys; from genoforge.tokenizer.train import train_dna_bpe; "
        "sys.stdout.write(train_dna_bpe([sys.argv[1]], vocab_size=1024).to_str())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(chloroplast)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == trained_json


@pytest.mark.shared_data
def test_yeast_training_is_deterministic_and_fast(shared_data: Path) -> None:
    genome = shared_data / "yeast_chrI_chrII" / "genome.fa.gz"
    started = time.monotonic()
    first = train_dna_bpe([genome]).to_str()
    elapsed = time.monotonic() - started
    assert train_dna_bpe([genome]).to_str() == first
    assert len(json.loads(first)["model"]["vocab"]) == 4096
    assert elapsed < 30, f"training on yeast chrI+II took {elapsed:.1f} s"


@pytest.mark.shared_data
def test_sampling_is_bounded_and_seeded(chloroplast: Path) -> None:
    budget = 40_000
    a, stats = train_dna_bpe_with_stats([chloroplast], vocab_size=256, seed=1, max_bases=budget)
    assert stats.sampled and stats.bases_trained <= budget and stats.bases_read > budget
    assert stats.chunks_trained == budget // 1000
    again, _ = train_dna_bpe_with_stats([chloroplast], vocab_size=256, seed=1, max_bases=budget)
    other, _ = train_dna_bpe_with_stats([chloroplast], vocab_size=256, seed=2, max_bases=budget)
    assert again.to_str() == a.to_str()
    assert other.to_str() != a.to_str()
    # under the budget the seed changes nothing
    small_1 = train_dna_bpe([chloroplast], vocab_size=256, seed=1)
    small_2 = train_dna_bpe([chloroplast], vocab_size=256, seed=2)
    assert small_1.to_str() == small_2.to_str()


@pytest.mark.shared_data
def test_round_trips_on_a_trained_tokenizer(trained_json: str, chloroplast: Path, tmp_path: Path) -> None:
    folder = tmp_path / "tok"
    GenoTokenizer(Tokenizer.from_str(trained_json)).save(folder)
    ensure_builtin_tokens(folder)
    tok = GenoTokenizer.load(folder)
    assert tok.bos_id == 1024 and tok.pad_id == 3

    real = _first_sequence(chloroplast, 3000)
    dna = real[:1000].lower() + "N" * 37 + real[1000:2000] + "RYK" + real[2000:]
    assert tok.decode(tok.encode_dna(dna)) == dna.upper().replace("R", "N").replace("Y", "N").replace("K", "N")

    target = [inventory.BOS, "cds", "\t", "-", "\t", "3", ":", "141", "\n", inventory.EOS]
    assert tok.decode(tok.encode_target(target)) == "".join(target)

    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast.from_pretrained(folder)
    ids = tok.encode_target(target[:-1]) + tok.encode_dna(real[:200]) + [tok.eos_id]
    assert hf.decode(ids) == tok.decode(ids)


def test_parameter_and_input_errors(tmp_path: Path) -> None:
    only_n = tmp_path / "n.fa"
    only_n.write_text(">chrN\nNNNNNNNNNN\n")
    with pytest.raises(InputError, match="no A/C/G/T"):
        train_dna_bpe([only_n])
    headerless = tmp_path / "bad.fa"
    headerless.write_text("ACGT\n")
    with pytest.raises(FastaFormatError, match="bad.fa"):
        train_dna_bpe([headerless])
    with pytest.raises(ConfigError, match="vocab_size"):
        train_dna_bpe([only_n], vocab_size=8)
    with pytest.raises(InputError, match="not found"):
        train_dna_bpe([tmp_path / "absent.fa"])


def test_small_input_warns_when_the_vocabulary_stops_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = tmp_path / "tiny.fa"
    tiny.write_text(">t\nACGTTGCAACGTTGCA\n")
    tokenizer = train_dna_bpe([tiny], vocab_size=4096)
    assert tokenizer.get_vocab_size() < 4096
    assert "stopped at" in capsys.readouterr().err
