"""Training/validation split: held-out regions per chromosome, and no training window inside one."""

from __future__ import annotations

import shutil

import pytest

from genoforge.baking.bake import BakeConfig, bake
from genoforge.baking.windows import overlap_of, tile
from genoforge.genes.packed_reader import PackedShard
from genoforge.genes.split import (
    VALIDATION,
    split_chromosome,
    unit_hash,
    validation_region,
)

LENGTHS = {"NC_000932.1": 154_478, "chr1": 40_000, "chr2": 8_000}  # the baked chromosomes


def test_validation_region_is_deterministic_sized_and_inside():
    region = validation_region("fly", "chr2R", 4_000_000, 0.05, 42)
    assert region == validation_region("fly", "chr2R", 4_000_000, 0.05, 42)
    start, end = region
    assert end - start == 200_000 and 0 <= start and end <= 4_000_000
    assert validation_region("fly", "chr2R", 4_000_000, 0.05, 43) != region  # the seed moves it
    assert validation_region("fly", "chr3L", 4_000_000, 0.05, 42) != region  # so does the seqid
    assert validation_region("fly", "chr2R", 4_000_000, 0.0, 42) is None
    assert validation_region("fly", "tiny", 9, 0.05, 42) is None  # rounds to 0 bases


def test_region_start_is_spread_over_the_chromosome():
    starts = [validation_region("s", f"c{i}", 1_000_000, 0.1, 1)[0] for i in range(400)]
    assert min(starts) < 100_000 and max(starts) > 800_000


def test_segments_partition_the_chromosome():
    for seqid in ("a", "b", "c", "d"):
        segments = split_chromosome("s", seqid, 100_000, 0.3, 5)
        assert segments[0].start == 0 and segments[-1].end == 100_000
        assert all(a.end == b.start for a, b in zip(segments, segments[1:]))
        assert [s.split for s in segments].count(VALIDATION) == 1
        assert sum(s.length for s in segments if s.split == VALIDATION) == 30_000


def test_unit_hash_is_stable():
    # Fixed value: a change here would silently move every split and sample of existing bakes.
    assert unit_hash("validation-region", 42, "fly_chr2R", "chr2R") == pytest.approx(0.395585, abs=1e-6)


@pytest.fixture(scope="module")
def baked(tmp_path_factory, shared_data, baking_tokenizer_dir):
    """The chloroplast and two written species, with a large validation share."""
    from tests.helpers import write_tiny_species

    raw = tmp_path_factory.mktemp("split_raw")
    shutil.copytree(shared_data / "athal_chloroplast", raw / "athal_chloroplast")
    write_tiny_species(raw / "tiny_a", seed=1)
    output = tmp_path_factory.mktemp("split_out") / "baked"
    config = BakeConfig(
        raw_dir=str(raw),
        output_dir=str(output),
        tokenizer=str(baking_tokenizer_dir),
        window_size=4_000,
        val_fraction=0.2,
        intergenic_rate=1.0,
    )
    return bake(config)


def test_no_training_window_overlaps_a_validation_region(baked):
    manifest = baked.manifest
    config = manifest["config"]
    training = PackedShard(baked.output_dir / "training.packed")
    validation = PackedShard(baked.output_dir / "validation.packed")
    assert len(training) > 0 and len(validation) > 0
    checked = 0
    for sample in training:
        report = manifest["species"][sample.species]
        length = LENGTHS[sample.seqid]
        start, end = validation_region(sample.species, sample.seqid, length, config["val_fraction"], config["seed"])
        assert sample.window_end <= start or sample.window_start >= end, (sample, start, end)
        assert report["window_size"] >= sample.window_end - sample.window_start
        checked += 1
    assert checked == len(training)


def test_validation_windows_are_built_like_training_windows(baked):
    manifest = baked.manifest
    config = manifest["config"]
    validation = PackedShard(baked.output_dir / "validation.packed")
    by_chromosome = {}
    for sample in validation:
        by_chromosome.setdefault((sample.species, sample.seqid), []).append((sample.window_start, sample.window_end))
    assert ("athal_chloroplast", "NC_000932.1") in by_chromosome
    for (species, seqid), windows in by_chromosome.items():
        length = LENGTHS[seqid]
        start, end = validation_region(species, seqid, length, config["val_fraction"], config["seed"])
        window_size = manifest["species"][species]["window_size"]
        expected = tile(start, end, window_size, overlap_of(window_size, config["overlap_fraction"]))
        # same tiling rule inside the region (windows dropped by a filter may be missing)
        assert set(windows) <= set(expected) and windows == sorted(windows)
        # validation samples keep the chromosome's own seqid and genome coordinates
        assert all(start <= s < e <= end for s, e in windows)
    for species, report in manifest["species"].items():
        assert report["validation"]["windows"] == sum(
            len(w) for (sp, _), w in by_chromosome.items() if sp == species
        )



def test_every_sample_decodes_back_to_its_window(baked, shared_data, baking_tokenizer_dir):
    """Training and validation samples alike: input = the window's DNA, target = its annotation."""
    from genoforge.genes.annotation import load_annotation
    from genoforge.genes.fasta import read_fasta
    from genoforge.genes.target import parse_target_tokens, window_annotation
    from genoforge.tokenizer.core import GenoTokenizer

    tok = GenoTokenizer.load(baking_tokenizer_dir)
    raw_dir = baked.manifest["config"]["raw_dir"]
    genomes, annotations = {}, {}
    for species, report in baked.manifest["species"].items():
        fasta = f"{raw_dir}/{report['fasta']}"
        genomes[species] = {record.seqid: record.sequence for record in read_fasta(fasta)}
        lengths = {seqid: len(seq) for seqid, seq in genomes[species].items()}
        annotations[species] = load_annotation(f"{raw_dir}/{report['annotation']}", seqid_lengths=lengths)
    n = 0
    for split in ("training", "validation"):
        for sample in PackedShard(baked.output_dir / f"{split}.packed"):
            window = genomes[sample.species][sample.seqid][sample.window_start : sample.window_end]
            assert tok.decode(sample.input_ids) == window.upper()
            tokens = [tok.id_to_token(i) for i in sample.target_ids]
            decoded = parse_target_tokens(tokens, window_size=sample.window_end - sample.window_start)
            expected = window_annotation(annotations[sample.species], sample.seqid, sample.window_start, sample.window_end)
            assert decoded == expected
            n += 1
    assert n == len(PackedShard(baked.output_dir / "training.packed")) + len(
        PackedShard(baked.output_dir / "validation.packed")
    )
