"""`genoforge bake`: broken gene models are skipped and summarised, `--strict` refuses them, and a
species' taxon comes from the taxa table, a `taxon` file in its folder, or `--taxa NAME=TAXON`.

Species folders are the tiny ones of tests.helpers.write_tiny_species with rows appended; the last
test bakes every folder of ../shared/data with default flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genoforge.cli.app import app

runner = CliRunner()

# Appended to a tiny species: TAIR-style RNA-seq introns without Parent that reuse one ID (and
# the ID of a real gene), then a model whose transcript row is missing (an orphan Parent).
EVIDENCE_ROWS = (
    "chr1\tRNASeq_splice\tintron\t1501\t1700\t1\t+\t.\tID=lgs",
    "chr1\tRNASeq_splice\tintron\t1520\t1690\t8\t-\t.\tID=lgs",
    "chr1\tRNASeq_splice\tintron\t1530\t1680\t3\t+\t.\tID=g1",
    "chr1\tRNASeq_reads\ttranscript_region\t5\t50\t1\t.\t.\tID=lgs",
)
ORPHAN_ROWS = (
    "chr1\ttest\tgene\t14001\t15000\t.\t+\t.\tID=lost",
    "chr1\ttest\tfive_prime_UTR\t14001\t14010\t.\t+\t.\tParent=lost.1",
    "chr1\ttest\texon\t14001\t15000\t.\t+\t.\tParent=lost.1",  # the first model row under lost.1
    "chr1\ttest\tCDS\t14011\t14990\t.\t+\t0\tParent=lost.1",
)


def _species(raw: Path, name: str, *extra: str, seed: int = 1) -> Path:
    """A tiny species with ``extra`` GFF3 rows appended; returns its annotation path."""
    from tests.helpers import write_tiny_species

    folder = write_tiny_species(raw / name, seed=seed)
    annotation = folder / "annotation.gff3"
    if extra:
        with annotation.open("a") as handle:
            handle.write("\n".join(extra) + "\n")
    return annotation


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


def _bake(raw: Path, output: Path, tokenizer: Path, *args: str):
    return runner.invoke(
        app,
        ["bake", "--raw_dir", str(raw), "--output_dir", str(output), "--tokenizer", str(tokenizer),
         "--window_size", "5000", *args],
    )


def _error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture
def raw_with_broken_model(tmp_path: Path) -> tuple[Path, int]:
    """raw/ with a clean species and one with evidence rows and an orphan model; the orphan's
    first model line."""
    raw = tmp_path / "raw"
    _species(raw, "clean", seed=1)
    annotation = _species(raw, "odd", *EVIDENCE_ROWS, *ORPHAN_ROWS, seed=2)
    return raw, _line_of(annotation, "exon\t14001\t15000")


def test_broken_models_are_skipped_counted_and_summarised(tmp_path, raw_with_broken_model, baking_tokenizer_dir):
    raw, orphan_line = raw_with_broken_model
    output = tmp_path / "baked"
    result = _bake(raw, output, baking_tokenizer_dir)
    assert result.exit_code == 0, result.output
    manifest = json.loads((output / "manifest.json").read_text())
    odd, clean = manifest["species"]["odd"], manifest["species"]["clean"]
    # The evidence rows' IDs collide with nothing: the odd species keeps all its real models.
    assert (odd["genes"], odd["transcripts"]) == (clean["genes"], clean["transcripts"]) == (3, 4)
    # (the gene row of the missing transcript has nothing left to model: ignored, not broken)
    assert odd["skipped_features"] == {
        "orphan Parent": 1, "unsupported type transcript_region": 1, "gene without transcripts or parts": 1}
    assert odd["skipped_first_line"]["orphan Parent"] == f"odd/annotation.gff3:{orphan_line}"
    assert clean["skipped_features"] == {} and clean["skipped_first_line"] == {}
    # The summary on stderr: one table row per (species, reason), with the first file:line.
    stderr = result.stderr
    assert "Skipped gene models" in stderr
    rows = [line for line in stderr.splitlines() if "orphan Parent" in line]
    assert len(rows) == 1 and "odd" in rows[0] and f"odd/annotation.gff3:{orphan_line}" in rows[0]
    assert "odd: 2 rows ignored, not gene models (gene without transcripts or parts 1, transcript_region 1)" in stderr
    assert "orphan" not in result.stdout  # results on stdout, the summary on stderr


def test_strict_fails_on_the_first_skip_with_one_line(tmp_path, raw_with_broken_model, baking_tokenizer_dir):
    raw, orphan_line = raw_with_broken_model
    output = tmp_path / "baked"
    result = _bake(raw, output, baking_tokenizer_dir, "--strict")
    assert result.exit_code == 1, result.output
    lines = _error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert f"odd/annotation.gff3:{orphan_line}: orphan Parent 'lost.1'" in lines[0]
    assert "--strict" in lines[0] and "Traceback" not in result.output
    assert not output.exists()
    # Without a broken model --strict changes nothing, and it is not recorded (execution only).
    strict_clean = _bake(raw, output, baking_tokenizer_dir, "--strict", "--species", "clean")
    assert strict_clean.exit_code == 0, strict_clean.output
    assert "strict" not in json.loads((output / "manifest.json").read_text())["config"]
    assert "No gene model was skipped." in strict_clean.stderr


def test_duplicate_gene_ids_far_apart_are_skipped_not_merged(tmp_path, baking_tokenizer_dir):
    raw = tmp_path / "raw"
    _species(
        raw,
        "sgd",
        "chr2\tSGD\tgene\t1001\t1300\t.\t+\t.\tID=YAL069W",
        "chr2\tSGD\tCDS\t1001\t1300\t.\t+\t0\tParent=YAL069W",
        "chr2\tSGD\tgene\t2651\t2950\t.\t+\t.\tID=YAL069W",
        "chr2\tSGD\tCDS\t2651\t2950\t.\t+\t0\tParent=YAL069W",
    )
    result = _bake(raw, tmp_path / "baked", baking_tokenizer_dir)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "baked" / "manifest.json").read_text())["species"]["sgd"]
    assert report["transcripts"] == 4  # the tiny species' own; no YAL069W model
    assert report["skipped_features"] == {"duplicate ID": 2}
    assert "duplicate ID" in result.stderr


def test_a_parent_cycle_aborts_the_bake_with_one_line(tmp_path, baking_tokenizer_dir):
    raw = tmp_path / "raw"
    annotation = _species(
        raw,
        "loop",
        "chr1\ttest\tgene\t14001\t15000\t.\t+\t.\tID=a;Parent=b",
        "chr1\ttest\tmRNA\t14001\t15000\t.\t+\t.\tID=b;Parent=a",
    )
    result = _bake(raw, tmp_path / "baked", baking_tokenizer_dir)
    assert result.exit_code == 1
    lines = _error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert f"loop/annotation.gff3:{_line_of(annotation, 'ID=b;Parent=a')}: Parent cycle" in lines[0]


# -- taxa ------------------------------------------------------------------------------------


def test_the_shipped_table_assigns_the_new_shared_species():
    from genoforge.baking.taxa import load_taxa

    taxa = load_taxa()
    assert {name: taxa.taxon_of(name) for name in (
        "athal_snap_segments", "celegans_snap_segments", "fly_snap_segments", "yeast_genome")} == {
        "athal_snap_segments": "plants",
        "celegans_snap_segments": "invertebrates",
        "fly_snap_segments": "invertebrates",
        "yeast_genome": "unicellular",
    }


def test_taxon_file_and_taxa_flag_are_honoured(tmp_path, baking_tokenizer_dir):
    raw = tmp_path / "raw"
    for seed, name in enumerate(("tiny_a", "tiny_b", "tiny_c"), start=1):
        _species(raw, name, seed=seed)
    (raw / "tiny_a" / "taxon").write_text("# the folder's own taxon\nplants\n")
    (raw / "tiny_b" / "taxon").write_text("plants\n")  # --taxa below wins over this file
    output = tmp_path / "baked"
    result = _bake(raw, output, baking_tokenizer_dir, "--taxa", "tiny_b=prokaryotes")
    assert result.exit_code == 0, result.output
    manifest = json.loads((output / "manifest.json").read_text())
    assigned = {name: (r["taxon"], r["window_size"]) for name, r in manifest["species"].items()}
    assert assigned == {"tiny_a": ("plants", 15_000), "tiny_b": ("prokaryotes", 10_000),
                        "tiny_c": ("unassigned", 5_000)}
    assert manifest["config"]["species_taxa"] == ["tiny_b=prokaryotes"]
    fallback = [line for line in result.stderr.splitlines() if "no taxon" in line]
    assert len(fallback) == 1 and fallback[0].startswith("tiny_c: ") and "5,000 bp" in fallback[0]


def test_taxa_flag_with_a_table_of_ones_own(tmp_path, baking_tokenizer_dir):
    raw = tmp_path / "raw"
    _species(raw, "tiny_a")
    table = tmp_path / "taxa.toml"
    table.write_text("[taxa.big]\nwindow_size = 20000\n")
    output = tmp_path / "baked"
    result = _bake(raw, output, baking_tokenizer_dir, "--taxa", str(table), "--taxa", "tiny_a=big")
    assert result.exit_code == 0, result.output
    report = json.loads((output / "manifest.json").read_text())["species"]["tiny_a"]
    assert (report["taxon"], report["window_size"]) == ("big", 20_000)
    assert "no taxon" not in result.stderr


def test_config_file_keys_for_taxa_and_strict(tmp_path, raw_with_broken_model, baking_tokenizer_dir):
    raw, _ = raw_with_broken_model
    config = tmp_path / "bake.toml"
    config.write_text('[bake]\nspecies_taxa = ["odd=plants"]\nstrict = true\n')
    result = _bake(raw, tmp_path / "baked", baking_tokenizer_dir, "--config", str(config))
    assert result.exit_code == 1 and "orphan Parent" in result.stderr  # strict from the file
    config.write_text('[bake]\nspecies_taxa = ["odd=plants"]\n')
    result = _bake(raw, tmp_path / "baked", baking_tokenizer_dir, "--config", str(config))
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "baked" / "manifest.json").read_text())["species"]["odd"]
    assert report["taxon"] == "plants"


@pytest.mark.parametrize(
    ("taxon_file", "flags", "code", "message"),
    [
        ("plantz\n", [], 1, "tiny_a/taxon:1: no taxon 'plantz'"),
        ("plants animals\n", [], 1, "tiny_a/taxon:1: a taxon file holds one word"),
        ("\n", [], 1, "tiny_a/taxon:1: empty taxon file"),
        (None, ["--taxa", "tiny_a=nope"], 1, "--taxa tiny_a=nope: no taxon 'nope'"),
        (None, ["--taxa", "=plants"], 1, "expected NAME=TAXON"),
        (None, ["--taxa", "a.toml", "--taxa", "b.toml"], 2, "several taxa tables"),
    ],
    ids=["unknown-in-file", "two-words", "empty-file", "unknown-in-flag", "no-name", "two-tables"],
)
def test_bad_taxa_are_one_line_errors(tmp_path, baking_tokenizer_dir, taxon_file, flags, code, message):
    raw = tmp_path / "raw"
    _species(raw, "tiny_a")
    if taxon_file is not None:
        (raw / "tiny_a" / "taxon").write_text(taxon_file)
    output = tmp_path / "baked"
    result = _bake(raw, output, baking_tokenizer_dir, *flags)
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split()).replace("│", "")
    if code == 1:
        lines = _error_lines(result)
        assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert not output.exists()


def test_help_shows_strict_and_the_taxa_forms():
    result = runner.invoke(app, ["bake", "-h"], env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.replace("│", " ").split())
    assert "--strict" in text and "NAME=TAXON" in text and "repeatable" in text


# -- the shared genomes -----------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.slow
def test_bake_every_shared_species_with_default_flags(shared_data, tmp_path, baking_tokenizer_dir):
    """`genoforge bake --raw_dir ../shared/data --output_dir OUT --tokenizer T` (about 10 s on
    two cores): no species aborts, each has a taxon, and the broken models are reported."""
    output = tmp_path / "baked"
    result = runner.invoke(
        app, ["bake", "--raw_dir", str(shared_data), "--output_dir", str(output), "--tokenizer",
              str(baking_tokenizer_dir)],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((output / "manifest.json").read_text())
    folders = sorted(p.name for p in shared_data.iterdir() if p.is_dir())
    assert sorted(manifest["species"]) == folders and manifest["failed_species"] == {}
    assert all(report["taxon"] != "unassigned" for report in manifest["species"].values())
    assert "no taxon" not in result.stderr
    for name, orphans in (("athal_snap_segments", 3), ("celegans_snap_segments", 10)):
        report = manifest["species"][name]
        assert report["skipped_features"]["orphan Parent"] == orphans
        assert report["skipped_first_line"]["orphan Parent"].startswith(f"{name}/annotation.gff3.gz:")
        assert report["transcripts"] > 300 and report["training"]["windows"] > 0
