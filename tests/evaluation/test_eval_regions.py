"""Evaluation regions: a region cut out as FASTA + clipped reference GFF3, and bake's held-out regions.

The written species (tests.helpers.write_tiny_species) has, on chr1 (40 kb): g1 on + with exons
1,001-1,500 and 1,701-2,300 (CDS = exons, phase 0); g2 on - at 10,001-12,000; g3 on + with two
isoforms at 30,001-33,000. The region [1_200, 31_500) cuts g1 on its left (inside its first exon,
200 coding bases removed) and g3 on its right, and holds g2 whole.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.helpers import write_tiny_species

from genoforge.errors import ConfigError, InputError
from genoforge.evaluation.regions import region_name, validation_regions, write_region
from genoforge.genes.annotation import load_annotation
from genoforge.genes.fasta import read_fasta
from genoforge.genes.gff3 import parse_gff3

START, END = 1_200, 31_500


@pytest.fixture
def tiny_species(tmp_path: Path) -> Path:
    return write_tiny_species(tmp_path / "raw" / "tiny_a", seed=1)


def _chr1(species: Path) -> str:
    return next(r.sequence for r in read_fasta(species / "genome.fa") if r.seqid == "chr1")


def test_region_fasta_is_one_record_of_the_cut_sequence(tiny_species: Path, tmp_path: Path) -> None:
    fasta, gff = write_region(tiny_species / "genome.fa", tiny_species / "annotation.gff3", "chr1", START, END,
                              tmp_path / "out")
    name = "chr1_1201-31500"
    assert (fasta.name, gff.name) == (f"{name}.fa", f"{name}.reference.gff3")
    records = list(read_fasta(fasta))
    assert [r.seqid for r in records] == [name]
    assert records[0].sequence == _chr1(tiny_species)[START:END]
    assert fasta.read_text().splitlines()[0] == f">{name} chr1:1201-31500"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporary left


def test_reference_shifts_coordinates_and_marks_clipped_models(tiny_species: Path, tmp_path: Path) -> None:
    _, gff = write_region(tiny_species / "genome.fa", tiny_species / "annotation.gff3", "chr1", START, END,
                          tmp_path, name="region")
    lines = gff.read_text().splitlines()
    assert lines[:2] == ["##gff-version 3", f"##sequence-region region 1 {END - START}"]
    annotation = load_annotation(gff, {"region": END - START})
    assert not annotation.skipped
    by_start = {t.start: t for t in annotation.transcripts["region"]}
    # g1: cut on the left inside exon 1; its second exon shifts by START.
    g1 = by_start[0]
    assert g1.exons == ((0, 1_500 - START), (1_700 - START, 2_300 - START)) and g1.strand == "+"
    # g2 whole, shifted.
    g2 = by_start[10_000 - START]
    assert g2.exons == ((10_000 - START, 12_000 - START),) and g2.strand == "-"
    assert g2.cds == (10_000 - START, 12_000 - START) and g2.cds_phase == 0
    # g3: both isoforms cut at the region end; t3b's second exon (32,001-33,000) lies past it.
    g3 = [t for t in annotation.transcripts["region"] if t.start == 30_000 - START]
    assert {t.exons for t in g3} == {
        ((30_000 - START, 30_600 - START), (31_000 - START, END - START)),
        ((30_000 - START, 30_600 - START),),
    }
    assert len({t.gene_id for t in g3}) == 1  # isoforms keep one gene

    rows = [row for row in parse_gff3(gff) if row.type == "mRNA"]
    partial = sorted((row.start, row.attributes.get("partial", ("none",))) for row in rows)
    assert partial == [(0, ("left",)), (10_000 - START, ("none",)), (30_000 - START, ("right",)),
                       (30_000 - START, ("right",))]
    # 200 coding bases cut off g1's 5' end: its first CDS row starts 200 % 3 = 2 bases into a
    # codon, so GFF3 phase 1 (one base to skip to the next codon start).
    first_cds = min((row for row in parse_gff3(gff) if row.type == "CDS"), key=lambda row: row.start)
    assert (first_cds.start, first_cds.phase) == (0, 1)


def test_reference_from_real_data_keeps_every_overlapping_model(shared_data: Path, tmp_path: Path) -> None:
    species = shared_data / "athal_chloroplast"
    regions = validation_regions(shared_data, "athal_chloroplast", 0.05, 42)
    assert len(regions) == 1
    region = regions[0]
    assert (region.species, region.seqid, region.length) == ("athal_chloroplast", "NC_000932.1", round(0.05 * 154_478))
    fasta, gff = write_region(region.fasta, region.annotation, region.seqid, region.start, region.end, tmp_path)
    assert fasta.name == f"{region.name}.fa" and region.name == region_name(region.seqid, region.start, region.end)
    whole = load_annotation(species / "annotation.gff3.gz")
    expected = [t for t in whole.transcripts_overlapping(region.seqid, region.start, region.end)
                if any(s < region.end and e > region.start for s, e in t.exons)]
    cut = load_annotation(gff, {region.name: region.length})
    assert expected and cut.n_transcripts == len(expected)
    # An unclipped model reads back as the same exons, shifted by the region start.
    inside = [t for t in expected if region.start <= t.start and t.end <= region.end]
    shifted = {tuple((s - region.start, e - region.start) for s, e in t.exons) for t in inside}
    assert inside and shifted <= {t.exons for t in cut.transcripts[region.name]}


def test_validation_regions_are_the_regions_bake_holds_out(tmp_path: Path, baking_tokenizer_dir: Path) -> None:
    from genoforge.baking.bake import BakeConfig, bake
    from genoforge.baking.windows import overlap_of, tile
    from genoforge.genes.packed_reader import PackedShard

    raw = tmp_path / "raw"
    write_tiny_species(raw / "tiny_a", seed=1)
    result = bake(BakeConfig(raw_dir=str(raw), output_dir=str(tmp_path / "baked"), tokenizer=str(baking_tokenizer_dir),
                             window_size=2_000, val_fraction=0.2, seed=7, intergenic_rate=1.0))
    regions = {r.seqid: r for r in validation_regions(raw, "tiny_a", 0.2, 7)}
    assert set(regions) == {"chr1", "chr2"}
    assert (regions["chr1"].length, regions["chr2"].length) == (8_000, 1_600)
    validation = list(PackedShard(result.output_dir / "validation.packed"))
    training = list(PackedShard(result.output_dir / "training.packed"))
    assert validation and training
    for sample in validation:
        region = regions[sample.seqid]
        assert region.start <= sample.window_start < sample.window_end <= region.end
    for sample in training:
        region = regions[sample.seqid]
        assert sample.window_end <= region.start or sample.window_start >= region.end
    # Bake tiles exactly this region (windows of the N run at 20,001-26,000 are filtered out).
    chr1 = sorted((s.window_start, s.window_end) for s in validation if s.seqid == "chr1")
    expected = tile(regions["chr1"].start, regions["chr1"].end, 2_000, overlap_of(2_000, result.manifest["config"]["overlap_fraction"]))
    assert chr1 and set(chr1) <= set(expected) and chr1[-1][1] == regions["chr1"].end
    # Another seed moves the region, as it moves bake's.
    assert validation_regions(raw, "tiny_a", 0.2, 8)[0].start != regions["chr1"].start


def test_bad_regions_and_species_are_refused(tiny_species: Path, tmp_path: Path) -> None:
    fasta, gff = tiny_species / "genome.fa", tiny_species / "annotation.gff3"
    with pytest.raises(InputError, match="no record 'chr9'"):
        write_region(fasta, gff, "chr9", 0, 100, tmp_path)
    with pytest.raises(InputError, match="outside chr2"):
        write_region(fasta, gff, "chr2", 7_000, 9_000, tmp_path)
    with pytest.raises(InputError, match="empty"):
        write_region(fasta, gff, "chr1", 500, 500, tmp_path)
    with pytest.raises(ConfigError, match="one word"):
        write_region(fasta, gff, "chr1", 0, 100, tmp_path, name="two words")
    with pytest.raises(InputError, match="no such folder"):
        validation_regions(tiny_species.parent, "fly", 0.05, 42)
    with pytest.raises(ConfigError, match="val_fraction"):
        validation_regions(tiny_species.parent, "tiny_a", 1.0, 42)
    assert validation_regions(tiny_species.parent, "tiny_a", 0.0, 42) == []
    assert list(tmp_path.glob("*.fa")) == []  # nothing written by a refused call
