"""The bake is a pure function of its inputs and settings: byte-identical whatever the workers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from genoforge.baking.bake import BakeConfig, bake
from genoforge.genes.packed_reader import PackedShard

OUTPUTS = ("training.packed", "validation.packed", "manifest.json")


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory, shared_data):
    from tests.helpers import write_tiny_species

    raw = tmp_path_factory.mktemp("determinism_raw")
    shutil.copytree(shared_data / "athal_chloroplast", raw / "athal_chloroplast")
    write_tiny_species(raw / "tiny_a", seed=1)
    write_tiny_species(raw / "tiny_b", seed=2)
    return raw


def _bake(raw_dir, output, tokenizer, **settings):
    config = BakeConfig(
        raw_dir=str(raw_dir),
        output_dir=str(output),
        tokenizer=str(tokenizer),
        window_size=3_000,
        val_fraction=0.1,
        hint_ratio=0.5,  # exercise the hint path too
        **settings,
    )
    bake(config)
    return {name: (output / name).read_bytes() for name in OUTPUTS}


def test_two_bakes_and_any_worker_count_give_identical_bytes(raw_dir, tmp_path, baking_tokenizer_dir):
    first = _bake(raw_dir, tmp_path / "a", baking_tokenizer_dir)
    again = _bake(raw_dir, tmp_path / "b", baking_tokenizer_dir)
    two_workers = _bake(raw_dir, tmp_path / "c", baking_tokenizer_dir, n_workers=2)
    parallel_species = _bake(raw_dir, tmp_path / "d", baking_tokenizer_dir, n_workers=2, species_parallel=2)
    for name in OUTPUTS:
        assert first[name] == again[name], name
        assert first[name] == two_workers[name], name
        assert first[name] == parallel_species[name], name
    shard = PackedShard(tmp_path / "a" / "training.packed")
    assert shard.species == ["athal_chloroplast", "tiny_a", "tiny_b"]  # canonical species order
    species_index = shard.array("species_index").tolist()
    assert species_index == sorted(species_index)
    starts = [(s.species, s.seqid, s.window_start) for s in shard]
    for (sp1, c1, s1), (sp2, c2, s2) in zip(starts, starts[1:]):
        assert (sp1, c1) != (sp2, c2) or s1 < s2  # windows in coordinate order per chromosome
    assert len(shard) > 20
    totals = json.loads(first["manifest.json"])["totals"]
    assert 0 < totals["training"]["hinted_windows"] < totals["training"]["windows"]


def test_the_seed_changes_the_output(raw_dir, tmp_path, baking_tokenizer_dir):
    base = _bake(raw_dir, tmp_path / "a", baking_tokenizer_dir, species=["tiny_a"])
    other = _bake(raw_dir, tmp_path / "b", baking_tokenizer_dir, species=["tiny_a"], seed=7)
    assert base["training.packed"] != other["training.packed"]


GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "tiny_bake_manifest.json"
REGENERATE = "GENOFORGE_REGENERATE_GOLDEN"


def _comparable(manifest: dict) -> dict:
    """The manifest without what depends on where and with which version the test ran."""
    manifest = json.loads(json.dumps(manifest))
    manifest.pop("genoforge_version")
    manifest["config"].pop("raw_dir")
    manifest["config"].pop("tokenizer")
    return manifest


def test_tiny_bake_matches_the_golden_manifest(tmp_path, baking_tokenizer_dir):
    """A change in any count, token or byte of a small bake shows up here.

    If the change is intended (new gene-model rule, tokenizer inventory, target grammar, window
    rule), regenerate with: GENOFORGE_REGENERATE_GOLDEN=1 pytest tests/baking/test_bake_determinism.py -k golden
    and review the diff of tests/data/golden/tiny_bake_manifest.json.
    """
    from tests.helpers import write_tiny_species

    raw = tmp_path / "raw"
    write_tiny_species(raw / "tiny_a", seed=1)
    write_tiny_species(raw / "tiny_b", seed=2)
    _bake(raw, tmp_path / "baked", baking_tokenizer_dir, intergenic_rate=0.5)
    manifest = _comparable(json.loads((tmp_path / "baked" / "manifest.json").read_text()))
    if os.environ.get(REGENERATE):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(manifest, indent=2) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert manifest == golden, f"the bake changed; if intended, regenerate with {REGENERATE}=1 (see docstring)"
