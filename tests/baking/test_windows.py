"""Windows (tiling, overlap, N filter, intergenic sampling), the taxa table, and intron hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from genoforge.baking.hints import HINT_RECORD_LENGTH, hint_tokens, wants_hints, window_introns
from genoforge.baking.taxa import UNASSIGNED, default_taxa_path, load_taxa
from genoforge.genes.target import WindowFeature, WindowTranscript
from genoforge.baking.windows import is_mostly_n, keep_intergenic, min_window_length, overlap_of, tile
from genoforge.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("start", "end", "window", "overlap"),
    [(0, 100_000, 10_000, 2_500), (123, 45_678, 10_000, 2_500), (0, 10_001, 10_000, 0), (50, 20_050, 5_000, 1_250)],
)
def test_tiling_covers_the_segment_with_the_documented_overlap(start, end, window, overlap):
    windows = tile(start, end, window, overlap)
    assert windows[0][0] == start and windows[-1][1] == end  # every base covered, none outside
    assert all(e - s == window for s, e in windows)
    stride = window - overlap
    for (s1, e1), (s2, _) in zip(windows[:-2], windows[1:-1]):
        assert s2 - s1 == stride  # the regular grid
    for (s1, e1), (s2, _) in zip(windows, windows[1:]):
        assert s1 < s2 < e1 + 1  # sorted, no gap
    # only the end-aligned last window may overlap its neighbour by more than the overlap
    last_start = windows[-1][0]
    assert windows[-2][1] - last_start >= overlap


def test_short_segments():
    assert tile(100, 3_100, 10_000, 2_500) == [(100, 3_100)]  # shorter than a window: one window
    assert min_window_length(10_000) == 1_000
    assert tile(0, 999, 10_000, 2_500) == []  # a scrap: no window
    assert tile(0, 1_000, 10_000, 2_500) == [(0, 1_000)]


def test_overlap_of():
    assert overlap_of(10_000, 0.25) == 2_500
    assert overlap_of(15_000, 0.0) == 0
    with pytest.raises(ValueError):
        overlap_of(10_000, 1.0)


def test_mostly_n_filter():
    assert not is_mostly_n("ACGT" * 25, 0.1)
    assert not is_mostly_n("N" * 10 + "A" * 90, 0.1)  # exactly the ratio is kept
    assert is_mostly_n("N" * 11 + "A" * 89, 0.1)
    assert is_mostly_n("n" * 6 + "N" * 5 + "a" * 89, 0.1)  # soft-masked N counts
    assert is_mostly_n("", 0.1)


def test_intergenic_sampling_is_deterministic_and_near_the_rate():
    kept = [keep_intergenic(42, "fly", "chr2R", start, 0.25) for start in range(0, 4_000_000, 1_000)]
    assert kept == [keep_intergenic(42, "fly", "chr2R", start, 0.25) for start in range(0, 4_000_000, 1_000)]
    assert 0.22 < sum(kept) / len(kept) < 0.28
    other_seed = [keep_intergenic(43, "fly", "chr2R", start, 0.25) for start in range(0, 4_000_000, 1_000)]
    assert other_seed != kept
    assert all(keep_intergenic(1, "s", "c", start, 1.0) for start in range(100))
    assert not any(keep_intergenic(1, "s", "c", start, 0.0) for start in range(100))


# -- taxa --------------------------------------------------------------------------------------


def test_packaged_taxa_table_is_the_config_copy_and_assigns_the_shared_species():
    assert default_taxa_path().read_text() == (REPO / "configs" / "taxa.toml").read_text()
    taxa = load_taxa()
    assert {name: t.window_size for name, t in taxa.taxa.items()} == {
        "prokaryotes": 10_000,
        "unicellular": 15_000,
        "invertebrates": 15_000,
        "vertebrates": 15_000,
        "plants": 15_000,
    }
    assert taxa.taxon_of("yeast_chrI_chrII") == "unicellular"
    assert taxa.taxon_of("fly_chr2R") == "invertebrates"
    assert taxa.taxon_of("oscillibacter_JAOQKG01") == "prokaryotes"
    assert taxa.taxon_of("athal_chloroplast") == "plants"
    assert taxa.window_size_of("oscillibacter_JAOQKG01", 12_345) == 10_000
    assert taxa.taxon_of("my_new_genome") == UNASSIGNED
    assert taxa.window_size_of("my_new_genome", 12_345) == 12_345  # --window_size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[taxa.a]\nwindow_size = 0\n", "window_size"),
        ("[taxa.a]\nwindow_size = 1000000\n", "window_size"),
        ("[taxa.a]\nwindow = 10\n", "unknown key"),
        ("[taxa.a]\nwindow_size = 10\n[species]\nx = 'b'\n", "names no taxon"),
        ("[taxon]\n", "unknown section"),
        ("[taxa.a\n", "TOML"),
    ],
)
def test_bad_taxa_files_are_config_errors(tmp_path, text, message):
    path = tmp_path / "taxa.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_taxa(path)
    assert str(path) in str(caught.value)


# -- hints -------------------------------------------------------------------------------------


def _transcript(strand, gene, exons):
    return WindowTranscript(strand=strand, biotype="protein_coding", gene=gene, partial=".", exons=exons, cds=None)


def test_intron_hints_per_transcript_deduplicated_and_strand_aware():
    records = (
        _transcript("+", 0, ((100, 200), (300, 400), (500, 600))),
        _transcript("+", 0, ((100, 200), (300, 400))),  # isoform sharing the first intron
        _transcript("-", 1, ((1_000, 1_100), (2_500, 2_600))),
        WindowFeature(type="origin_of_replication", strand=".", start=5, end=50, partial="."),
    )
    assert window_introns(records) == [(200, 300, "+"), (400, 500, "+"), (1_100, 2_500, "-")]
    tokens = hint_tokens(records)
    assert tokens[0] == "[HIT]"
    assert (len(tokens) - 1) == 3 * HINT_RECORD_LENGTH
    assert tokens[1 : 1 + HINT_RECORD_LENGTH] == ["intron_hc", "+", "0", ":", "200", "0", ":", "300"]
    assert tokens[-HINT_RECORD_LENGTH:] == ["intron_hc", "-", "1", ":", "100", "2", ":", "500"]
    # gene 0's last exon and gene 1's first exon are never joined into an intron
    assert (600, 1_000, "+") not in window_introns(records) and (600, 1_000, "-") not in window_introns(records)


def test_hint_selection():
    assert not wants_hints(42, "s", "c", 0, 0.0)
    assert wants_hints(42, "s", "c", 0, 1.0)
    chosen = [wants_hints(42, "s", "c", start, 0.5) for start in range(0, 1_000_000, 1_000)]
    assert 0.45 < sum(chosen) / len(chosen) < 0.55


def test_every_gene_up_to_the_overlap_fits_whole_in_some_window():
    window, overlap = 1_000, 250
    windows = tile(0, 20_000, window, overlap)
    for gene_start in range(0, 20_000 - overlap, 37):
        gene_end = gene_start + overlap
        assert any(s <= gene_start and gene_end <= e for s, e in windows), (gene_start, gene_end)
