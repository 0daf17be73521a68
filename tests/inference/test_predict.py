"""`genoforge predict` end to end on a random debug model, window streaming, and the CLI.

The genome (written by the tests, gzip) has contigs chosen for the edge cases: ``chrA`` (2,350 bp,
five 600 bp windows, the last aligned to the contig end), ``chrB`` (90 bp, shorter than a window),
``chrN`` (700 bp of N: two windows, none decoded) and ``chrC`` (soft-masked with IUPAC codes).
The model has random weights: what it predicts is noise, but the file must still be valid GFF3.
"""

from __future__ import annotations

import random
import tracemalloc
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from genoforge.genes.annotation import load_annotation
from genoforge.cli.app import app
from genoforge.errors import ConfigError, InputError
from genoforge.inference.predict import predict_genome
from genoforge.inference.predict_config import PredictConfig
from genoforge.inference.predictor import Predictor
from genoforge.inference.windows import stream_windows, tile_contig

from tests.helpers import assert_gt_valid, random_dna, write_fasta
from tests.tiny import build_debug_model_dir

WINDOW, OVERLAP = 600, 150
SMALL_RUN = ["--window_size", "600", "--overlap", "150", "--max_new_tokens", "60", "--batch_size", "3"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def genome(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    rng = random.Random(4)
    records = {
        "chrA": random_dna(rng, 2_350),
        "chrB": random_dna(rng, 90),
        "chrN": "N" * 700,
        "chrC": random_dna(rng, 400, "ACGTacgtnRYK"),
    }
    return write_fasta(tmp_path_factory.mktemp("genome") / "genome.fa.gz", records), records


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return build_debug_model_dir(tmp_path_factory.mktemp("predict_model") / "debug-model", seed=5)


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Predictor:
    return Predictor.from_dir(model_dir, PredictConfig(window_size=WINDOW, overlap=OVERLAP,
                                                       max_new_tokens=60, batch_size=3, device="cpu"))


def data_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines() if line and not line.startswith("#")]


# --- windows ---------------------------------------------------------------------------------


def test_tiling_covers_every_contig_length() -> None:
    assert tile_contig(1, 600, 150) == [(0, 1)]
    assert tile_contig(600, 600, 150) == [(0, 600)]
    assert tile_contig(601, 600, 150) == [(0, 600), (1, 601)]
    assert tile_contig(2_350, 600, 150) == [(0, 600), (450, 1_050), (900, 1_500), (1_350, 1_950), (1_750, 2_350)]
    with pytest.raises(ConfigError, match="at most half"):
        tile_contig(1_000, 600, 301)


def test_streamed_windows_are_the_contig_slices(genome) -> None:
    path, records = genome
    lengths = {name: len(seq) for name, seq in records.items()}
    windows = list(stream_windows(path, lengths, WINDOW, OVERLAP))
    expected = [(name, s, e) for name, seq in records.items() for s, e in tile_contig(len(seq), WINDOW, OVERLAP)]
    assert [(w.seqid, w.start, w.end) for w in windows] == expected
    for w in windows:
        assert w.sequence == records[w.seqid][w.start : w.end]
        assert w.n_windows == len(tile_contig(w.contig_length, WINDOW, OVERLAP))
    only_b = list(stream_windows(path, lengths, WINDOW, OVERLAP, seqids={"chrB"}))
    assert [(w.seqid, w.sequence) for w in only_b] == [("chrB", records["chrB"])]


def test_streaming_memory_is_bounded_by_the_window_not_the_contig(tmp_path: Path) -> None:
    """A 4 Mbp contig streamed in 2 kbp windows never holds more than a few windows of bases."""
    contig = random_dna(random.Random(0), 50_000) * 80
    path = write_fasta(tmp_path / "big.fa", {"big": contig}, width=80)
    del contig
    tracemalloc.start()
    count = 0
    for window in stream_windows(path, {"big": 4_000_000}, 2_000, 500):
        count += 1
        assert window.length == 2_000
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == len(tile_contig(4_000_000, 2_000, 500))
    assert peak < 400_000, f"peak {peak:,} bytes while streaming a 4,000,000 bp contig"


# --- predict_genome ----------------------------------------------------------------------------


def test_predict_writes_valid_gff3_for_every_kind_of_contig(genome, model_dir, predictor, tmp_path) -> None:
    path, records = genome
    out = tmp_path / "pred.gff3"
    result = predict_genome(model_dir, path, out, predictor=predictor)
    assert_gt_valid(out)
    text = out.read_text()
    for name, seq in records.items():
        assert f"##sequence-region {name} 1 {len(seq)}" in text
    assert "# model: debug-model" in text
    assert (result.contigs, result.bases, result.windows) == (4, 3_540, 5 + 1 + 2 + 1)
    assert result.decoded_windows == 7  # chrN's two windows hold no base: not decoded
    rows = data_rows(out)
    assert result.transcripts + result.features > 0 and len(rows) > 0  # the model did predict
    assert not any(r[0] == "chrN" for r in rows)
    back = load_annotation(out, {name: len(seq) for name, seq in records.items()})
    assert back.n_transcripts == result.transcripts
    assert not list(tmp_path.glob(".*.tmp"))


def test_predict_is_deterministic_and_independent_of_batch_size(genome, model_dir, predictor, tmp_path) -> None:
    path, _ = genome
    first = predict_genome(model_dir, path, tmp_path / "a.gff3", predictor=predictor)
    other = Predictor(predictor.model, predictor.tokenizer,
                      PredictConfig(window_size=WINDOW, overlap=OVERLAP, max_new_tokens=60, batch_size=7))
    predict_genome(model_dir, path, tmp_path / "b.gff3", predictor=other)
    assert data_rows(tmp_path / "a.gff3") == data_rows(tmp_path / "b.gff3")
    assert first.transcripts > 0


def test_unknown_seqid_is_an_input_error_and_writes_nothing(genome, model_dir, predictor, tmp_path) -> None:
    path, _ = genome
    config = PredictConfig(window_size=WINDOW, overlap=OVERLAP, seqids=("chrB", "chrZ"))
    with pytest.raises(InputError, match="chrZ"):
        predict_genome(model_dir, path, tmp_path / "x.gff3", config, predictor=predictor)
    assert list(tmp_path.iterdir()) == []


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_help_lists_one_spelling() -> None:
    result = CliRunner().invoke(app, ["predict", "-h"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0
    for name in ("--batch_size", "--window_size", "--max_new_tokens", "--overlap", "--seqids", "--device",
                 "Examples"):
        assert name in result.output
    for kebab in ("--batch-size", "--window-size", "--max-new-tokens"):  # accepted (kebab test), not listed
        assert kebab not in result.output


def test_cli_predicts_selected_seqids(genome, model_dir, tmp_path) -> None:
    path, records = genome
    out = tmp_path / "sub.gff3"
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(path), "-o", str(out), *SMALL_RUN,
                                      "--seqids", "chrB,chrA", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout and "bp/s" in result.stdout
    assert_gt_valid(out)
    regions = [line for line in out.read_text().splitlines() if line.startswith("##sequence-region")]
    assert regions == ["##sequence-region chrA 1 2350", "##sequence-region chrB 1 90"]  # FASTA order


def test_cli_guided_generative_predict_writes_valid_gff3(genome, model_dir, tmp_path) -> None:
    """--guide_weight on a debug model (pointer + per-base head): valid GFF3, not the unguided one;
    with --beam 2 too."""
    path, _ = genome
    outputs = {}
    for weight in ("0", "5"):
        out = tmp_path / f"guided{weight}.gff3"
        result = CliRunner().invoke(app, ["predict", str(model_dir), str(path), "-o", str(out), *SMALL_RUN,
                                          "--seqids", "chrA", "--device", "cpu", "--decoder", "generative",
                                          "--guide_weight", weight])
        assert result.exit_code == 0, result.output
        assert_gt_valid(out)
        outputs[weight] = data_rows(out)
    assert outputs["5"] != outputs["0"]
    out = tmp_path / "beam.gff3"
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(path), "-o", str(out), *SMALL_RUN,
                                      "--seqids", "chrA", "--device", "cpu", "--decoder", "generative",
                                      "--guide_weight", "5", "--beam", "2"])
    assert result.exit_code == 0, result.output
    assert_gt_valid(out)


def test_cli_kebab_spellings_work(genome, model_dir, tmp_path) -> None:
    path, _ = genome
    out = tmp_path / "kebab.gff3"
    flags = [f.replace("_", "-") for f in SMALL_RUN]
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(path), "--output", str(out), *flags,
                                      "--seqids", "chrB"])
    assert result.exit_code == 0, result.output
    assert out.is_file()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seqids", "nope"], "nope"),
        (["--overlap", "400"], "overlap"),
        (["--guide_weight", "-1"], "guide_weight"),
        (["--guide_from", "parse"], "guide_from"),
        (["--beam", "0"], "beam"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--window_size", "0"], ""),
    ],
)
def test_cli_bad_input_is_one_line_exit_1(genome, model_dir, tmp_path, extra, message) -> None:
    path, _ = genome
    out = tmp_path / "bad.gff3"
    args = ["predict", str(model_dir), str(path), "-o", str(out), "--window_size", "600", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "Error:" in result.output and message in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_cli_missing_model_and_bad_fasta_exit_1(genome, model_dir, tmp_path) -> None:
    path, _ = genome
    out = str(tmp_path / "o.gff3")
    result = CliRunner().invoke(app, ["predict", str(tmp_path / "no-model"), str(path), "-o", out])
    assert result.exit_code == 1 and "config.json" in result.output
    bad = tmp_path / "bad.fa"
    bad.write_text(">x\nACGT-ACGT\n")
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(bad), "-o", str(tmp_path / "o.gff3")])
    assert result.exit_code == 1 and "bad.fa:2" in result.output
    assert not (tmp_path / "o.gff3").exists()


def test_cli_usage_error_exit_2(genome, model_dir) -> None:
    path, _ = genome
    result = CliRunner().invoke(app, ["predict", str(model_dir), str(path)])  # no -o
    assert result.exit_code == 2
