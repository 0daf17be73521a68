"""Gene-structure counts and parameters (genoforge/genes/structure.py) on a hand-made sequence.

The 100 bp sequence below is assembled from literal pieces, so every coordinate can be read off:

====  =========  ========================================================================
span  what       notes
====  =========  ========================================================================
0     ig1        10 x C
10    gene A +   5' UTR AAAAA | CDS ATGGC | intron GTAAGT T*14 CAG (23 bp, phase 2) |
                 CDS TGAATAA | 3' UTR GGGG: ORF ATG GCT GAA TAA; exons (10,20) (43,54)
54    ig2        10 x C
64    gene B -   one exon, no UTR: ORF ATGAAACCCTAG written reverse-complemented
76    ig3        5 x C
81    gene C +   CTGAAATAA: no start codon, an incomplete ORF (labelled, not modelled)
90    ig4        10 x C; an lncRNA (92, 98) lies here and is not counted at all
====  =========  ========================================================================

Gene A also has a shorter isoform (CDS 15..20), listed first: the longest CDS represents it.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from genoforge.errors import ConfigError
from genoforge.genes.classes import N_CLASSES, encode_bases
from genoforge.genes.intron_lengths import INTRON_HISTOGRAM_BINS, MIN_INTRON_FLOOR
from genoforge.genes.structure import (
    MIN_EXONS_FOR_LIMIT,
    MIN_SINGLES_FOR_LIMIT,
    SINGLE_CDS_HISTOGRAM_BINS,
    GeneStructureParams,
    StructureCounts,
    estimate_structure_params,
)
from genoforge.inference.hmm import decode_genes

IG1, UTR5, EXON1, INTRON, EXON2, UTR3 = "C" * 10, "AAAAA", "ATGGC", "GTAAGT" + "T" * 14 + "CAG", "TGAATAA", "GGGG"
GENE_B = "CTAGGGTTTCAT"  # reverse complement of ATGAAACCCTAG
GENE_C = "CTGAAATAA"
SEQUENCE = IG1 + UTR5 + EXON1 + INTRON + EXON2 + UTR3 + "C" * 10 + GENE_B + "C" * 5 + GENE_C + "C" * 10


def tx(gene: str, strand: str, exons, cds, biotype: str | None = "protein_coding") -> SimpleNamespace:
    fields = dict(gene_id=gene, strand=strand, exons=tuple(exons), cds=cds)
    if biotype is not None:
        fields["biotype"] = biotype
    return SimpleNamespace(**fields)


TRANSCRIPTS = [
    tx("A", "+", [(10, 20)], (15, 20)),  # the short isoform: not the representative
    tx("A", "+", [(10, 20), (43, 54)], (15, 50)),
    tx("B", "-", [(64, 76)], (64, 76), biotype=None),  # no biotype: counts as protein-coding
    tx("C", "+", [(81, 90)], (81, 90)),
    tx("D", "+", [(92, 98)], None, biotype="lncRNA"),
]


def base_table(*windows: str) -> list[list[int]]:
    """Per-row A/C/G/T counts of equally long window strings (the expected signal tables)."""
    rows = [[0, 0, 0, 0] for _ in windows[0]]
    for window in windows:
        for row, base in zip(rows, window):
            row["ACGT".index(base)] += 1
    return rows


@pytest.fixture
def counts() -> StructureCounts:
    counts = StructureCounts()
    counts.add_sequence(SEQUENCE, TRANSCRIPTS)
    return counts


def test_layout_of_the_hand_made_sequence():
    assert len(SEQUENCE) == 100
    assert SEQUENCE[15:18] == "ATG" and SEQUENCE[20:22] == "GT" and SEQUENCE[41:43] == "AG"
    assert SEQUENCE[47:50] == "TAA" and SEQUENCE[64:67] == "CTA" and SEQUENCE[73:76] == "CAT"


def test_counts_of_the_hand_made_sequence(counts):
    assert counts.bases == 100
    assert counts.base_counts == [SEQUENCE.count(b) for b in "ACGT"]
    # intergenic 35; + CDS positions: A 4/4/4, C 3/3/3; intron+2 23; utr5+ 5; utr3+ 4; - CDS 4/4/4.
    assert counts.class_counts == [35, 7, 7, 7, 0, 0, 23, 5, 4, 4, 4, 4, 0, 0, 0, 0, 0]
    assert counts.intergenic_runs == 4
    assert counts.genes == 3  # A, B, C (D is not protein-coding)
    assert counts.complete_genes == 2  # C has no start codon
    assert counts.spliced_genes == 1
    assert (counts.utr5_genes, counts.utr5_bases, counts.utr3_genes, counts.utr3_bases) == (1, 5, 1, 4)
    assert (counts.coding_exons, counts.coding_exon_bases) == (3, 24)
    assert (counts.introns, counts.intron_bases) == (1, 23)
    histogram = [0] * INTRON_HISTOGRAM_BINS
    histogram[23] = 1
    assert counts.intron_length_histogram == histogram
    assert counts.intron_classes == {"GT-AG": 1, "GC-AG": 0, "AT-AC": 0}
    singles = [0] * SINGLE_CDS_HISTOGRAM_BINS
    singles[12] = 1  # gene B; A is spliced, C no complete ORF
    assert counts.single_cds_length_histogram == singles
    assert counts.min_single_cds() == 0  # one single-exon gene is too few for a limit


def test_signal_windows_of_the_hand_made_sequence(counts):
    # donor: 3 exon + 6 intron bases around 20; acceptor: 20 intron + 3 exon bases around 43.
    assert counts.donor_counts == base_table("GGC" + "GTAAGT")
    assert counts.acceptor_counts == base_table("AGT" + "T" * 14 + "CAG" + "TGA")
    # start: 10 before + ATG + 3; stop: 6 before + stop + 6; B's read on its reverse complement.
    assert counts.start_counts == base_table("CCCCCAAAAA" + "ATG" + "GCG", "TTCAGGGGGG" + "ATG" + "AAA")
    assert counts.stop_counts == base_table("AGTGAA" + "TAA" + "GGGGCC", "AAACCC" + "TAG" + "GGGGGG")


def test_excluded_gene_models():
    # A GA-AG intron, a length not a multiple of 3, a missing stop: labelled, never modelled.
    sequence = "C" * 5 + "ATGAAA" + "GAAAG" + "T" * 15 + "AG" + "TAA" + "C" * 5 + "ATGAAAATAA" + "C" * 5 + "ATGAAACCC"
    transcripts = [tx("x", "+", [(5, 11), (33, 36)], (5, 36)), tx("y", "+", [(41, 51)], (41, 51)),
                   tx("z", "+", [(56, 65)], (56, 65))]
    counts = StructureCounts()
    counts.add_sequence(sequence, transcripts)
    assert counts.genes == 3 and counts.complete_genes == 0
    assert counts.introns == 0 and counts.coding_exons == 0 and sum(map(sum, counts.start_counts)) == 0
    assert counts.class_counts[4] == 22  # x's intron (phase 0: 6 coding bases before it) is still labelled
    assert counts.class_counts[5] == 0 and counts.class_counts[0] == 5 + 5 + 5


def test_sequence_given_as_codes_counts_the_same(counts):
    from_codes = StructureCounts()
    from_codes.add_sequence(encode_bases(SEQUENCE), TRANSCRIPTS)
    assert from_codes == counts


def test_merge_is_exact_summation(counts):
    other_sequence = "C" * 8 + "ATGAAATGA" + "C" * 8
    other = StructureCounts()
    other.add_sequence(other_sequence, [tx("e", "+", [(8, 17)], (8, 17))])
    merged = counts.merge(other)
    both = StructureCounts()
    both.add_sequence(SEQUENCE, TRANSCRIPTS)
    both.add_sequence(other_sequence, [tx("e", "+", [(8, 17)], (8, 17))])
    assert merged == both
    assert merged.bases == 125 and merged.complete_genes == 3 and merged.coding_exons == 4
    assert merged.class_counts[0] == 35 + 16
    assert merged.stop_counts[6] == [c + o for c, o in zip(counts.stop_counts[6], other.stop_counts[6])]
    assert counts.bases == 100 and other.bases == 25  # the operands are unchanged
    assert StructureCounts().merge(counts) == counts


def test_to_params_from_the_hand_made_counts(counts):
    params = counts.to_params()
    assert params.mean_intergenic == pytest.approx((35 + 10_000) / (4 + 1))
    assert params.mean_utr5 == pytest.approx((5 + 150) / 2) and params.mean_utr3 == pytest.approx((4 + 250) / 2)
    assert params.mean_intron == pytest.approx((23 + 250) / 2)
    assert params.mean_coding_exon == pytest.approx((24 + 200) / 4)
    assert params.mean_coding_exons_per_gene == pytest.approx(5 / 3)
    assert params.genes_per_bp == pytest.approx(4 / 10_100)
    assert params.spliced_fraction == params.utr5_fraction == params.utr3_fraction == pytest.approx(0.5)
    assert params.gcag_fraction == pytest.approx(1 / 101) and params.atac_fraction == pytest.approx(0.1 / 101)
    assert params.min_intron == 23  # the 1st percentile of one intron of 23
    assert params.n_genes == 2
    assert math.fsum(math.exp(x) for x in params.class_log_prior) == pytest.approx(1.0)
    assert params.class_log_prior[6] > params.class_log_prior[5]  # 23 + 1 vs 0 + 1 pseudo-counts
    # the donor's G at index 3 was seen: positive log-odds; unseen columns are below 0
    assert params.donor_pwm[3][2] > 0 > params.donor_pwm[3][0]


def test_empty_counts_give_usable_defaults():
    params = StructureCounts().to_params()
    assert params == GeneStructureParams.default()
    assert params.min_intron == MIN_INTRON_FLOOR and params.n_genes == 0
    assert params.class_log_prior == pytest.approx([-math.log(N_CLASSES)] * N_CLASSES)
    for pwm in (params.donor_pwm, params.acceptor_pwm, params.start_pwm, params.stop_pwm):
        assert np.allclose(pwm, 0.0)  # no data: every column neutral
    numbers = [v for v in vars(params).values() if isinstance(v, float)]
    assert all(math.isfinite(v) and v > 0 for v in numbers)
    assert params.mean_intergenic == pytest.approx(10_000) and params.mean_intron == pytest.approx(250)
    # ... and the decoder runs on them
    log_probs = np.log(np.full((300, N_CLASSES), 1.0 / N_CLASSES))
    assert decode_genes("ACGT" * 75, log_probs, params, seqid="c").transcripts == []


def test_estimate_structure_params_is_counts_then_params(counts):
    assert estimate_structure_params([(SEQUENCE, TRANSCRIPTS)]) == counts.to_params()


# --- files --------------------------------------------------------------------------------------


def test_counts_json_round_trip(counts, tmp_path):
    assert StructureCounts.from_json(counts.to_json()) == counts
    path = tmp_path / "sub" / "counts.json"
    counts.save(path)
    assert StructureCounts.load(path) == counts
    assert [p.name for p in path.parent.iterdir()] == ["counts.json"]  # no temporary left behind


def test_params_json_round_trip(counts, tmp_path):
    params = counts.to_params()
    assert GeneStructureParams.from_json(params.to_json()) == params
    assert next(iter(json.loads(params.to_json()))) == "format_version"
    path = tmp_path / "params.json"
    params.save(path)
    assert GeneStructureParams.load(path) == params


@pytest.mark.parametrize("cls", [StructureCounts, GeneStructureParams])
def test_wrong_format_version_is_a_config_error_naming_the_file(cls, tmp_path):
    obj = StructureCounts() if cls is StructureCounts else GeneStructureParams.default()
    data = json.loads(obj.to_json())
    data["format_version"] = 99
    path = tmp_path / "structure.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=r"structure\.json: format_version 99") as error:
        cls.load(path)
    assert str(path) in str(error.value)


@pytest.mark.parametrize("cls", [StructureCounts, GeneStructureParams])
def test_malformed_json_is_a_config_error(cls, tmp_path):
    obj = StructureCounts() if cls is StructureCounts else GeneStructureParams.default()
    data = json.loads(obj.to_json())
    cases = {"not json": "{", "a list": "[1]"}
    missing = dict(data)
    missing.pop("bases" if cls is StructureCounts else "min_intron")
    cases["missing"] = json.dumps(missing)
    cases["unknown"] = json.dumps({**data, "colour": 1})
    for name, text in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.json"
        path.write_text(text)
        with pytest.raises(ConfigError, match=str(path.name)):
            cls.load(path)
    with pytest.raises(ConfigError, match="cannot read"):
        cls.load(tmp_path / "absent.json")


def test_counts_with_wrong_shapes_are_a_config_error(counts):
    data = json.loads(counts.to_json())
    for field, value in (("class_counts", [0] * 3), ("intron_length_histogram", [0] * 5),
                         ("single_cds_length_histogram", [0] * 5), ("internal_exon_length_histogram", [0] * 5),
                         ("donor_counts", [[0, 0, 0, 0]]), ("intron_classes", {"GT-AG": 1})):
        with pytest.raises(ConfigError, match=field):
            StructureCounts.from_json(json.dumps({**data, field: value}), "counts.json")


def test_params_with_wrong_shapes_are_a_config_error():
    data = json.loads(GeneStructureParams.default().to_json())
    for field, value in (("class_log_prior", [0.0] * 3), ("donor_pwm", [[0.0] * 4] * 2), ("min_intron", 1),
                         ("min_single_cds", -1), ("min_single_cds", 99.5), ("min_internal_exon", 0)):
        with pytest.raises(ConfigError, match=field):
            GeneStructureParams.from_json(json.dumps({**data, field: value}), "params.json")


def test_a_class_the_head_never_saw_is_never_rewarded():
    # Yeast alone has no UTR labels: an undertrained head leaves a little mass on UTR anyway,
    # and dividing that by a tiny prior would make UTR the best class everywhere. Unseen classes
    # get log prior 0 (their score is the plain log posterior); seen ones the learnt prior.
    from genoforge.genes.classes import (
        UTR5_PLUS,
        class_weights,
        network_class_log_prior,
    )

    counts = np.zeros(17)
    counts[:4] = (5000, 1000, 1000, 1000)
    counts[9:12] = 1000
    log_prior = network_class_log_prior(counts)
    seen = counts > 0
    assert np.all(log_prior[~seen] == 0.0)
    weights = class_weights(counts)
    learnt = weights[seen] * (counts[seen] + 1) / (counts.sum() + 17)
    learnt = learnt / (learnt.sum() + (weights[~seen] / (counts.sum() + 17)).sum())
    assert np.allclose(np.exp(log_prior[seen]), learnt)
    # a head unsure of UTR (p = 0.01) scores it below a confident CDS call (p = 0.5)
    assert np.log(0.01) - log_prior[UTR5_PLUS] < np.log(0.5) - log_prior[1]


def test_two_intron_length_components_are_recovered_from_a_planted_mixture():
    from genoforge.genes.intron_lengths import INTRON_HISTOGRAM_BINS, fit_intron_lengths

    rng = np.random.default_rng(0)
    min_intron = 50
    # 70% short (mean 15 extra positions), 30% long (mean 800): k = L - min_intron + 1 >= 1
    k = np.where(rng.random(4000) < 0.7, rng.geometric(1 / 15, 4000), rng.geometric(1 / 800, 4000))
    lengths = k + min_intron - 1
    histogram = np.bincount(np.minimum(lengths, INTRON_HISTOGRAM_BINS - 1), minlength=INTRON_HISTOGRAM_BINS)
    (w_short, mu_short), (w_long, mu_long) = fit_intron_lengths(histogram.tolist(), int(lengths.sum()), min_intron)
    assert abs(w_short - 0.7) < 0.03 and abs(w_long - 0.3) < 0.03
    assert abs(mu_short - 15) < 1.5 and abs(mu_long - 800) < 80
    # One geometric, or too few introns: no mixture (the decoder keeps one intron state per type).
    one = np.bincount(rng.geometric(1 / 200, 4000) + min_intron - 1, minlength=INTRON_HISTOGRAM_BINS)[:INTRON_HISTOGRAM_BINS]
    assert fit_intron_lengths(one.tolist(), int((one * np.arange(one.size)).sum()), min_intron) == []
    assert fit_intron_lengths(histogram[:0].tolist() + [0] * INTRON_HISTOGRAM_BINS, 0, min_intron) == []


def test_the_shortest_single_exon_gene_is_the_first_percentile_of_the_baked_ones():
    counts = StructureCounts()
    counts.single_cds_length_histogram[150] = 1  # the shortest of 200
    counts.single_cds_length_histogram[300] = 1
    counts.single_cds_length_histogram[900] = 198
    assert counts.min_single_cds() == 300 and counts.to_params().min_single_cds == 300  # 1% of 200: the 2nd
    few = StructureCounts()
    few.single_cds_length_histogram[900] = MIN_SINGLES_FOR_LIMIT - 1
    assert few.to_params().min_single_cds == 0
    few.single_cds_length_histogram[900] += 1
    assert few.to_params().min_single_cds == 900


def test_the_shortest_internal_exon_is_the_first_percentile_at_most_three():
    counts = StructureCounts()
    assert counts.to_params().min_internal_exon == 1  # no internal exons: no limit
    counts.internal_exon_length_histogram[2] = 1
    counts.internal_exon_length_histogram[60] = MIN_EXONS_FOR_LIMIT - 2
    assert counts.to_params().min_internal_exon == 1  # too few
    counts.internal_exon_length_histogram[60] += 1
    assert counts.to_params().min_internal_exon == 2  # the 1st percentile of 50: the shortest
    counts.internal_exon_length_histogram[60] += 100
    assert counts.to_params().min_internal_exon == 3  # the percentile is 60 bp; the decoder's cap
    sequence_counts = StructureCounts()
    sequence_counts.add_sequence(SEQUENCE, TRANSCRIPTS)
    assert not any(sequence_counts.internal_exon_length_histogram)  # A has two exons: none internal
    data = json.loads(counts.to_json())
    del data["internal_exon_length_histogram"]
    assert StructureCounts.from_json(json.dumps(data), "old-counts.json").to_params().min_internal_exon == 1
    params = json.loads(counts.to_params().to_json())
    del params["min_internal_exon"]
    assert GeneStructureParams.from_json(json.dumps(params), "old-params.json").min_internal_exon == 1


def test_files_written_before_the_single_exon_histogram_load_with_no_limit():
    counts = StructureCounts()
    counts.single_cds_length_histogram[900] = 50
    data = json.loads(counts.to_json())
    del data["single_cds_length_histogram"]
    assert StructureCounts.from_json(json.dumps(data), "old-counts.json").to_params().min_single_cds == 0
    params = json.loads(counts.to_params().to_json())
    assert params["min_single_cds"] == 900
    del params["min_single_cds"]
    assert GeneStructureParams.from_json(json.dumps(params), "old-params.json").min_single_cds == 0


def test_predict_names_the_limits_in_effect(tmp_path):
    from genoforge.genes.structure_set import GeneStructureSet
    from genoforge.inference.structure_predict import structure_params

    counts = StructureCounts()
    counts.single_cds_length_histogram[400] = 30
    counts.internal_exon_length_histogram[60] = 80
    structures = GeneStructureSet()
    structures.add("fly", None, counts)
    structures.save(tmp_path / "gene_structure.json")
    params, phrase = structure_params(tmp_path, "fly", None)
    assert (params.min_single_cds, params.min_internal_exon) == (400, 3)
    assert phrase.endswith("(0 training genes; introns >= 20 bp, internal exons >= 3 bp, single-exon CDS >= 400 bp)")
    GeneStructureSet().save(tmp_path / "gene_structure.json")
    assert structure_params(tmp_path, None, None)[1].endswith("(0 training genes; introns >= 20 bp)")
