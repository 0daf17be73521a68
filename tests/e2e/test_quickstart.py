"""The quickstart runs the whole recipe on the embedded example and ends in an evaluation table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genoforge.quickstart import example_files


def test_example_genome_is_packaged_with_its_provenance() -> None:
    fasta, gff = example_files()
    assert fasta.exists() and gff.exists()
    assert fasta.read_bytes()[:2] == b"\x1f\x8b"  # gzip, as shipped
    assert (fasta.parent / "PROVENANCE.md").read_text().count("SGD") >= 1


# Tune steps of the end-to-end run. The README's run takes the default 200 (minutes on 2 cores); what
# is asserted below already holds after 2 (a 2-step run found 9 of the 19 reference CDS exons
# exactly: the per-base head plus the structure decoder), so 20 keep the suite short.
E2E_STEPS = "20"


@pytest.mark.slow
def test_quickstart_runs_the_recipe_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "qs"
    proc = subprocess.run(
        [sys.executable, "-m", "genoforge", "quickstart", "--workdir", str(workdir), "--steps", E2E_STEPS],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Every recipe step ran, in order, and said where its artifact is.
    order = ["tokens train", "tokens init", "model init", "tokens append", "tokens resize", "bake",
             "tune", "predict", "eval"]
    positions = [proc.stderr.find(f"] {name}") for name in order]
    assert all(p >= 0 for p in positions), proc.stderr
    assert positions == sorted(positions)
    # model init already added the inventory, so tokens append finds nothing missing.
    assert "0 tokens added" in proc.stderr
    for artifact in ["tokenizer/tokenizer.json", "model/init/config.json", "model/init/model.safetensors",
                     "baked/manifest.json", "baked/training.packed", "baked/validation.packed",
                     "runs/debug/metrics.jsonl", "predicted.gff3", "eval.json"]:
        assert (workdir / artifact).exists(), artifact
    assert (workdir / "runs" / "debug" / "final" / "config.json").exists()
    # The run ends in the loss table and the evaluation table on stdout.
    assert "train loss" in proc.stdout
    assert "genoforge eval" in proc.stdout and "F1" in proc.stdout
    report = json.loads((workdir / "eval.json").read_text())
    assert set(report["levels"]) == {"cds_nucleotide", "cds_exon", "transcript", "gene"}
    assert report["reference"]["genes"] > 0
    # The run finds real genes on the held-out region: some CDS exons exactly right.
    assert report["levels"]["cds_exon"]["tp_prediction"] > 0, report["levels"]["cds_exon"]
    # The loss fell during the short run.
    losses = [json.loads(line)["loss"] for line in (workdir / "runs/debug/metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("kind") == "train"]
    assert losses[-1] < losses[0]
    if shutil.which("gt"):
        check = subprocess.run(["gt", "gff3validator", str(workdir / "predicted.gff3")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    # Running it again in the same workdir starts afresh (no "holds checkpoints" refusal).
    again = subprocess.run(
        [sys.executable, "-m", "genoforge", "quickstart", "--workdir", str(workdir), "--steps", "2"],
        capture_output=True, text=True, timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]


def test_staging_the_example_leaves_no_partial_file_when_a_copy_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genoforge import quickstart

    def failing_copy(src, dst, *args, **kwargs):  # writes part of the file, then dies
        dst.write(src.read(100))
        raise OSError("disk full")

    monkeypatch.setattr(quickstart.shutil, "copyfileobj", failing_copy)
    with pytest.raises(OSError, match="disk full"):
        quickstart.stage_raw_dir(tmp_path)
    species_dir = tmp_path / "raw" / quickstart.EXAMPLE_SPECIES
    assert not (species_dir / "genome.fa.gz").exists()
    assert list(species_dir.iterdir()) == []  # no temporary file left behind either


def test_staging_the_example_copies_it_byte_for_byte(tmp_path: Path) -> None:
    from genoforge import quickstart

    raw = quickstart.stage_raw_dir(tmp_path)
    fasta, gff = example_files()
    assert (raw / quickstart.EXAMPLE_SPECIES / "genome.fa.gz").read_bytes() == fasta.read_bytes()
    assert (raw / quickstart.EXAMPLE_SPECIES / "annotation.gff3.gz").read_bytes() == gff.read_bytes()
