"""Predict's model-dependent defaults: the training window tune records, and the token cap.

* ``training_window.json`` (genoforge.training.checkpoint): built from the bake manifest or the
  shard, written by tune into best/, final/ and step checkpoints, read back strictly;
* ``genoforge predict`` windows default to the recorded window (else 10,000 bp), flags win;
* ``max_new_tokens`` defaults to a function of the window that covers every real window of
  ../shared/data (the fly's densest 10 kb window has 7,670 target tokens).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from genoforge.cli.app import app
from genoforge.errors import CheckpointError
from genoforge.inference.predict_config import (
    DEFAULT_WINDOW_SIZE,
    PredictConfig,
    default_max_new_tokens,
    describe_window,
)
from genoforge.inference.predictor import Predictor
from genoforge.training import checkpoint as ckpt
from genoforge.training.checkpoint import TrainingWindow

from tests.tiny import tiny_model
from tests.training.tune_runs import run_tune

WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_shard(path: Path, windows: list[tuple[str, int, int]]) -> Path:
    """A shard of placeholder ids with the given (species, window_start, window_end) samples."""
    from genoforge.baking.packed_writer import PackedWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    with PackedWriter(path, tokenizer_hash="test") as writer:
        for species, start, end in windows:
            writer.add([5, 6, 7], [1, 2], species=species, seqid="chr1", window_start=start, window_end=end)
    return path


def write_bake_manifest(directory: Path, samples: int, species: dict[str, tuple[int, int]]) -> None:
    """The parts of a bake manifest the training window reads (genoforge.genes.manifest)."""
    manifest = {
        "format": "genoforge-bake", "schema_version": 1,
        "species": {name: {"taxon": "t", "window_size": size, "overlap": overlap}
                    for name, (size, overlap) in species.items()},
        "outputs": {"training.packed": {"sha256": "0", "bytes": 0, "samples": samples}},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))


# --- the max_new_tokens rule ------------------------------------------------------------------


def test_default_max_new_tokens_scales_with_the_window():
    assert default_max_new_tokens(10_000) == 10_240  # the recipe's window: >= 8,192
    assert default_max_new_tokens(15_000) == 15_360
    assert default_max_new_tokens(9_217) == 10_240 and default_max_new_tokens(9_216) == 9_216
    assert default_max_new_tokens(600) == 8_192  # the floor
    assert default_max_new_tokens(10_000, decoder_window_size=1_600) == 10_240
    # Without a decoder window the decode cache holds every position: capped.
    assert default_max_new_tokens(10_000, decoder_window_size=0) == 4_096
    assert default_max_new_tokens(600, decoder_window_size=0) == 4_096


@pytest.mark.parametrize("window_size", [5_000, 10_000, 15_000])
def test_default_cap_covers_every_real_window(shared_data, window_size):
    """Tile every shared genome as bake does (a quarter overlap): no window's target exceeds the cap."""
    from genoforge.baking.windows import tile
    from genoforge.genes.annotation import load_annotation
    from genoforge.genes.fasta import fasta_lengths
    from genoforge.genes.target import encode_target, window_annotation

    cap = default_max_new_tokens(window_size)
    longest = {}
    for folder in sorted(p for p in shared_data.iterdir() if p.is_dir()):
        lengths = fasta_lengths(folder / "genome.fa.gz")
        annotation = load_annotation(folder / "annotation.gff3.gz", lengths)
        longest[folder.name] = max(
            len(encode_target(window_annotation(annotation, seqid, start, end))) - 1  # <bos> is given
            for seqid, n in lengths.items() for start, end in tile(0, n, window_size, window_size // 4)
        )
    assert max(longest.values()) <= cap, longest
    if window_size == 10_000:
        assert longest["fly_chr2R"] > 4_096  # what the old fixed default truncated


# --- the window: PredictConfig.for_model -------------------------------------------------------------


def test_window_defaults_follow_the_record_unless_given():
    record = TrainingWindow(window_size=15_000, overlap=3_750, source="manifest", species={})
    unknown_overlap = dataclasses.replace(record, overlap=None)
    settle = PredictConfig.for_model
    assert (settle(PredictConfig(), None).window_size, settle(PredictConfig(), None).resolved_overlap) == (
        DEFAULT_WINDOW_SIZE, DEFAULT_WINDOW_SIZE // 4)
    assert settle(PredictConfig(), record).window_size == 15_000
    assert settle(PredictConfig(), record).resolved_overlap == 3_750
    assert settle(PredictConfig(), unknown_overlap).resolved_overlap == 3_750  # a quarter of 15,000
    assert settle(PredictConfig(overlap=1_000), record).resolved_overlap == 1_000
    # A window given by the caller ignores the record, overlap included.
    given = settle(PredictConfig(window_size=8_000), record)
    assert (given.window_size, given.resolved_overlap) == (8_000, 2_000)
    # Bake allows overlaps predict's stitcher does not: at most half the window.
    wide = dataclasses.replace(record, window_size=1_000, overlap=700)
    assert settle(PredictConfig(), wide).resolved_overlap == 500
    assert "recorded by tune" in describe_window(PredictConfig(), record, "m")
    assert "not found" in describe_window(PredictConfig(), None, "m")
    assert "--window_size given" in describe_window(PredictConfig(window_size=8_000), record, "m")


# --- the record: building, writing, reading ---------------------------------------------------------


def test_training_window_from_the_manifest_or_the_shard(tmp_path):
    from genoforge.genes.packed_reader import PackedShard

    windows = [("fly", 0, 15_000), ("fly", 11_250, 20_000), ("bact", 0, 10_000), ("bact", 7_500, 9_000)]
    path = write_shard(tmp_path / "baked" / "training.packed", windows)
    shard = PackedShard(path)
    from_shard = ckpt.training_window_of(path, shard)
    assert (from_shard.window_size, from_shard.overlap, from_shard.source) == (15_000, None, "shards")

    # The manifest knows the overlap; species of other shards ("yeast") are left out.
    write_bake_manifest(path.parent, 4, {"fly": (15_000, 3_750), "bact": (10_000, 2_500), "yeast": (40_000, 0)})
    record = ckpt.training_window_of(path, shard)
    assert (record.window_size, record.overlap, record.source) == (15_000, 3_750, "manifest")
    assert record.species == {"bact": {"window_size": 10_000, "overlap": 2_500},
                              "fly": {"window_size": 15_000, "overlap": 3_750}}

    # A manifest of another bake (sample count differs) is not trusted.
    write_bake_manifest(path.parent, 99, {"fly": (20_000, 5_000)})
    assert ckpt.training_window_of(path, shard).source == "shards"


def test_training_window_round_trip_and_errors(tmp_path):
    assert ckpt.read_training_window(tmp_path) is None  # a model dir from `model init`
    record = TrainingWindow(window_size=10_000, overlap=2_500, source="manifest",
                            species={"x": {"window_size": 10_000, "overlap": 2_500}})
    path = ckpt.write_training_window(tmp_path, record)
    assert path.name == ckpt.TRAINING_WINDOW_FILE
    assert ckpt.read_training_window(tmp_path) == record

    path.write_text("{not json")
    with pytest.raises(CheckpointError, match=r"training_window\.json: unreadable.*--window_size"):
        ckpt.read_training_window(tmp_path)
    bad = record.to_json()
    for change, message in (({"schema_version": 9}, "schema_version 9"), ({"format": "x"}, "not a genoforge"),
                            ({"overlap": 10_000}, "not a valid window"), ({"window_size": 0}, "not a valid window")):
        path.write_text(json.dumps({**bad, **change}))
        with pytest.raises(CheckpointError, match=message):
            ckpt.read_training_window(tmp_path)


def test_step_checkpoint_records_and_verifies_the_window(tmp_path):
    state = {"w": torch.ones(3)}
    record = TrainingWindow(window_size=600, overlap=150, source="shards", species={})
    common = dict(model_state=state, optimizer_state={"state": {}, "param_groups": []},
                  rng_state={"torch_cpu": torch.get_rng_state()}, trainer_state={"global_step": 1})
    old = ckpt.save_checkpoint(tmp_path / "old", 1, **common)
    assert not (old / ckpt.TRAINING_WINDOW_FILE).exists()
    ckpt.verify_checkpoint(old)  # checkpoints without the record still verify
    new = ckpt.save_checkpoint(tmp_path / "new", 1, training_window=record, **common)
    assert ckpt.read_training_window(new) == record
    assert ckpt.TRAINING_WINDOW_FILE in json.loads((new / ckpt.MANIFEST).read_text())["files"]
    (new / ckpt.TRAINING_WINDOW_FILE).write_text(json.dumps({**record.to_json(), "window_size": 601}))
    with pytest.raises(CheckpointError, match="training_window.json"):
        ckpt.verify_checkpoint(new)


# --- end to end: tune records, predict follows ------------------------------------------------------


@pytest.fixture(scope="module")
def tuned(tune_workspace, tmp_path_factory) -> tuple[Path, int]:
    """A 2-step tune run (CLI) on the workspace; (run dir, longest training window)."""
    from genoforge.genes.packed_reader import PackedShard

    out = tmp_path_factory.mktemp("tuned") / "run"
    result = run_tune(tune_workspace, out, "--max_steps", "2", "--eval_steps", "2", "--save_steps", "2")
    assert result.returncode == 0, result.stderr
    shard = PackedShard(tune_workspace.train)
    longest = int((shard.array("window_end") - shard.array("window_start")).max())
    return out, longest


def test_tune_records_the_training_window_in_every_model_it_writes(tuned):
    from genoforge.model.io import load_model

    out, longest = tuned
    for name in ("best", "final", "step-00000002"):
        record = ckpt.read_training_window(out / name)
        assert record is not None, name
        # The workspace has no bake manifest: the shard's longest window, overlap unknown.
        assert (record.window_size, record.overlap, record.source) == (longest, None, "shards")
    ckpt.verify_checkpoint(out / "step-00000002")
    assert load_model(out / "final").config.decoder_window_size > 0  # the loader ignores the record


def write_genome(path: Path, length: int) -> Path:
    rng = random.Random(11)
    seq = "".join(rng.choice("ACGT") for _ in range(length))
    path.write_text(">chrT test\n" + "".join(seq[i : i + 60] + "\n" for i in range(0, length, 60)))
    return path


def gff_window_comment(path: Path) -> str:
    return next(line for line in path.read_text().splitlines() if line.startswith("# windows:"))


def test_predict_defaults_to_the_recorded_window(tuned, tune_workspace, tmp_path):
    out, longest = tuned
    genome = write_genome(tmp_path / "genome.fa", 700)
    runner = CliRunner()
    base = ["--max_new_tokens", "24", "--batch_size", "4", "--device", "cpu"]

    recorded = runner.invoke(app, ["predict", str(out / "final"), str(genome), "-o", str(tmp_path / "a.gff3"), *base])
    assert recorded.exit_code == 0, recorded.output
    assert f"windows: {longest} bp, overlap {longest // 4} bp" in gff_window_comment(tmp_path / "a.gff3")
    assert "recorded by tune" in recorded.stderr

    given = runner.invoke(app, ["predict", str(out / "final"), str(genome), "-o", str(tmp_path / "b.gff3"),
                                "--window_size", "200", *base])
    assert given.exit_code == 0, given.output
    assert "windows: 200 bp, overlap 50 bp" in gff_window_comment(tmp_path / "b.gff3")

    # A model directory without a record (model init's layout): today's default, and stderr says so.
    plain = runner.invoke(app, ["predict", str(tune_workspace.model_dir), str(genome), "-o",
                                str(tmp_path / "c.gff3"), *base])
    assert plain.exit_code == 0, plain.output
    assert f"windows: {DEFAULT_WINDOW_SIZE} bp, overlap {DEFAULT_WINDOW_SIZE // 4} bp" in gff_window_comment(
        tmp_path / "c.gff3")
    assert "records no training window" in plain.stderr

    # A damaged record is one clear error, exit 1, nothing written.
    broken = tmp_path / "broken"
    import shutil

    shutil.copytree(out / "final", broken)
    (broken / ckpt.TRAINING_WINDOW_FILE).write_text("[]")
    bad = runner.invoke(app, ["predict", str(broken), str(genome), "-o", str(tmp_path / "d.gff3"), *base])
    assert bad.exit_code == 1 and "training_window.json" in bad.output
    assert not (tmp_path / "d.gff3").exists()


def test_predictor_derives_max_new_tokens_unless_given(tuned, tune_workspace):
    out, longest = tuned
    derived = Predictor.from_dir(out / "final", PredictConfig(device="cpu"))
    assert derived.config.window_size == longest
    assert derived.max_new_tokens == default_max_new_tokens(longest) == 8_192
    wide = Predictor(derived.model, derived.tokenizer, PredictConfig(window_size=15_000))
    assert wide.max_new_tokens == 15_360
    given = Predictor(derived.model, derived.tokenizer, PredictConfig(window_size=15_000, max_new_tokens=77))
    assert given.max_new_tokens == 77
    model = tiny_model(derived.tokenizer, decoder_window_size=0, seed=None, digits=False, init_weights=False)
    windowless = Predictor(model, derived.tokenizer, PredictConfig(window_size=10_000))
    assert windowless.max_new_tokens == 4_096


def test_cli_help_says_which_default_applies():
    result = CliRunner().invoke(app, ["predict", "-h"], env=WIDE)
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())  # option help wraps inside a box
    assert "training_window.json" in text and "10000 for a model without one" in text
    assert "rounded up to a multiple of 1024, at least 8192" in text
