"""`genoforge bake inspect`: manifest summary, readable target text, hints, GFF3 in genome coordinates."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from genoforge.baking.bake import BakeConfig, bake
from genoforge.baking.inspect import VISIBLE_NEWLINE, VISIBLE_TAB, readable_tokens
from genoforge.cli.app import app
from genoforge.genes.packed_reader import PackedShard

runner = CliRunner()


@pytest.fixture(scope="module")
def baked_dir(tmp_path_factory, baking_tokenizer_dir):
    from tests.helpers import write_tiny_species

    root = tmp_path_factory.mktemp("inspect")
    write_tiny_species(root / "raw" / "tiny_a", seed=1)
    output = root / "baked"
    bake(
        BakeConfig(
            raw_dir=str(root / "raw"),
            output_dir=str(output),
            tokenizer=str(baking_tokenizer_dir),
            window_size=5_000,
            val_fraction=0.0,
            hint_ratio=1.0,
        )
    )
    return output


def _index_of_window(baked_dir, start, end):
    shard = PackedShard(baked_dir / "training.packed")
    for i, sample in enumerate(shard):
        if (sample.seqid, sample.window_start, sample.window_end) == ("chr1", start, end):
            return i
    raise AssertionError(f"no window chr1:{start}-{end}; windows are {[(s.window_start, s.window_end) for s in shard]}")


def test_inspect_shows_summary_readable_target_hints_and_gff(baked_dir):
    # g3 (two isoforms, 30,001-33,000 in GFF terms) lies whole in the window starting at 30,000.
    index = _index_of_window(baked_dir, 30_000, 35_000)
    result = runner.invoke(app, ["bake", "inspect", str(baked_dir), "--index", str(index), "--gff"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    # manifest summary
    assert "tiny_a" in out and "unassigned" in out and "training.packed" in out and "sha256" in out
    # the sample, its hints (two distinct introns of the two isoforms) and its target text
    assert f"Sample training[{index}]" in out and "chr1:30,000-35,000" in out
    assert "[HIT] + 2 intron hint(s)" in out
    assert "intron_hc + 0 : 600 1 : 0" in out and "intron_hc + 0 : 600 2 : 0" in out
    assert f"transcript{VISIBLE_TAB}+{VISIBLE_TAB}protein_coding{VISIBLE_TAB}0{VISIBLE_TAB}.{VISIBLE_NEWLINE}" in out
    assert f"exon{VISIBLE_TAB}0:0{VISIBLE_TAB}0:600{VISIBLE_NEWLINE}" in out
    assert "\t" not in out.split("##gff-version 3")[0]  # no raw TAB before the GFF3 part
    # GFF3 rows in genome coordinates (1-based closed): window start added back
    gff_rows = [line.split("\t") for line in out.split("##gff-version 3")[1].splitlines() if "\t" in line]
    mrnas = [row for row in gff_rows if row[2] == "mRNA"]
    assert len(mrnas) == 2 and all(row[0] == "chr1" and (row[3], row[4], row[6]) == ("30001", "33000", "+") for row in mrnas)
    exons = sorted((int(row[3]), int(row[4])) for row in gff_rows if row[2] == "exon")
    assert exons == [(30_001, 30_600), (30_001, 30_600), (31_001, 33_000), (32_001, 33_000)]


def test_inspect_without_gff_and_negative_index(baked_dir):
    result = runner.invoke(app, ["bake", "inspect", str(baked_dir), "--index", "-1"])
    assert result.exit_code == 0, result.output
    assert "##gff-version" not in result.stdout and "<bos>" in result.stdout and "<eos>" in result.stdout


def test_empty_split_is_reported(baked_dir):
    result = runner.invoke(app, ["bake", "inspect", str(baked_dir), "--split", "validation"])
    assert result.exit_code == 0, result.output
    assert "validation.packed holds no sample" in result.stdout


def test_inspect_errors(tmp_path, baked_dir, dnabert2_tokenizer_json):
    out_of_range = runner.invoke(app, ["bake", "inspect", str(baked_dir), "--index", "100000"])
    assert out_of_range.exit_code == 1 and "outside training.packed" in out_of_range.output
    not_baked = runner.invoke(app, ["bake", "inspect", str(tmp_path)])
    assert not_baked.exit_code == 1 and "manifest.json" in not_baked.output
    other_tokenizer = runner.invoke(app, ["bake", "inspect", str(baked_dir), "--tokenizer", str(dnabert2_tokenizer_json)])
    assert other_tokenizer.exit_code == 1 and "not the one the bake used" in other_tokenizer.output
    (tmp_path / "manifest.json").write_text('{"format": "genoforge-bake", "schema_version": 99}')
    future = runner.invoke(app, ["bake", "inspect", str(tmp_path)])
    assert future.exit_code == 1 and "schema version" in future.output


def test_readable_tokens():
    text = readable_tokens(["<bos>", "exon", "\t", "0", ":", "5", "\n", "<eos>"])
    assert text == f"<bos>\nexon{VISIBLE_TAB}0:5{VISIBLE_NEWLINE}\n<eos>\n"
