"""The coding-content chain (genoforge/genes/coding_content.py): its counts, its table, its scores
along both strands, its place in the gene-structure files, and what it does in the HMM decoder."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from genoforge.genes import coding_content as cc
from genoforge.genes.classes import N_CLASSES, encode_bases
from genoforge.genes.structure import GeneStructureParams, StructureCounts
from tests.inference.planted_genes import plant, random_bases, revcomp

# A codon usage unlike uniform random DNA: eight sense codons only.
BIASED = ("GCT", "GAA", "AAA", "CTG", "ATT", "GGC", "CGT", "TCT")


def biased_orf(rng: np.random.Generator, codons: int) -> str:
    return "ATG" + "".join(rng.choice(BIASED, codons)) + "TAA"


def trained_counts(rng: np.random.Generator, genes: int = 60) -> StructureCounts:
    """Counts of ``genes`` one-exon biased genes, each between 300 bp of random DNA."""
    counts = StructureCounts()
    for _ in range(genes):
        orf = biased_orf(rng, 100)
        seq = random_bases(rng, 300) + orf + random_bases(rng, 300)
        counts.add_sequence(seq, [SimpleNamespace(gene_id="g", strand="+", exons=((300, 300 + len(orf)),),
                                                  cds=(300, 300 + len(orf)))])
    return counts


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    params = trained_counts(np.random.default_rng(1)).to_params()
    return params.content_table()


def framed(scores_L3: np.ndarray, frame_of_base: np.ndarray) -> float:
    return float(scores_L3[np.arange(frame_of_base.size), frame_of_base].sum())


def test_coding_dna_scores_high_in_its_frame_only(table) -> None:
    rng = np.random.default_rng(2)
    orf = biased_orf(rng, 100)
    positions = np.arange(len(orf)) % 3
    plus, _ = cc.strand_log_odds(encode_bases(orf), table)
    in_frame = framed(plus, positions)
    assert in_frame > 100
    assert framed(plus, (positions + 1) % 3) < 0 and framed(plus, (positions + 2) % 3) < 0
    noise, _ = cc.strand_log_odds(encode_bases(random_bases(rng, len(orf))), table)
    assert framed(noise, positions) < 0


def test_the_minus_strand_is_the_plus_strand_of_the_reverse_complement(table) -> None:
    rng = np.random.default_rng(3)
    seq = random_bases(rng, 50) + biased_orf(rng, 40) + random_bases(rng, 50)
    plus, minus = cc.strand_log_odds(encode_bases(seq), table)
    rc_plus, rc_minus = cc.strand_log_odds(encode_bases(revcomp(seq)), table)
    assert np.allclose(minus, rc_plus[::-1]) and np.allclose(plus, rc_minus[::-1])


def test_the_noncoding_chain_is_the_same_read_from_either_strand() -> None:
    rng = np.random.default_rng(10)
    seq = random_bases(rng, 5000)
    forward, backward = [0] * cc.NONCODING_SIZE, [0] * cc.NONCODING_SIZE
    cc.count_noncoding(forward, encode_bases(seq), np.ones(len(seq), dtype=bool))
    cc.count_noncoding(backward, encode_bases(revcomp(seq)), np.ones(len(seq), dtype=bool))
    coding = [1] * cc.CODING_SIZE
    assert np.allclose(cc.log_odds_table(coding, forward), cc.log_odds_table(coding, backward), atol=1e-6)
    assert forward != backward


def test_bases_without_a_clean_context_score_zero(table) -> None:
    seq = "ACGTACGTAC" + "N" + "GCTGAAAAACTGATT"
    plus, minus = cc.strand_log_odds(encode_bases(seq), table)
    n = seq.index("N")
    assert np.all(plus[: cc.ORDER] == 0)  # no context yet
    assert np.all(plus[n : n + cc.ORDER + 1] == 0)  # the N, and bases whose context holds it
    assert np.any(plus[n + cc.ORDER + 1 :] != 0)
    assert np.all(minus[n - cc.ORDER : n + 1] == 0)  # the same on the reverse complement


def test_counts_are_those_of_the_complete_orfs_and_the_noncoding_bases() -> None:
    orf = "ATGGCTGAAAAACTGTAA"  # 18 bp: 18 - ORDER coding bases have a context
    seq = "C" * 20 + orf + "C" * 20
    counts = StructureCounts()
    counts.add_sequence(seq, [SimpleNamespace(gene_id="a", strand="+", exons=((20, 38),), cds=(20, 38))])
    assert sum(counts.coding_context_counts) == len(orf) - cc.ORDER
    # base 5 of the ORF (codon position 2) after ATGGC: context ATGGC, base T
    context = int("".join(str("ACGT".index(b)) for b in "ATGGC"), 4)
    assert counts.coding_context_counts[(2 * cc.N_CONTEXTS + context) * 4 + 3] == 1
    # the 40 intergenic bases, read on +, all but the first ORDER (a base's context may reach
    # into the gene)
    assert sum(counts.noncoding_context_counts) == 40 - cc.ORDER
    # no gene model that is not a complete ORF adds coding counts
    other = StructureCounts()
    other.add_sequence(seq, [SimpleNamespace(gene_id="a", strand="+", exons=((21, 38),), cds=(21, 38))])
    assert not any(other.coding_context_counts)


def test_empty_counts_have_no_say() -> None:
    params = StructureCounts().to_params()
    assert params.coding_log_odds == [] and params.content_table() is None
    assert not cc.log_odds_table([0] * cc.CODING_SIZE, [0] * cc.NONCODING_SIZE).any()


def test_files_written_before_the_chain_load_with_it_empty() -> None:
    counts = trained_counts(np.random.default_rng(4), genes=3)
    data = json.loads(counts.to_json())
    del data["coding_context_counts"], data["noncoding_context_counts"]
    old = StructureCounts.from_json(json.dumps(data), "old.json")
    assert not any(old.coding_context_counts) and old.to_params().content_table() is None
    assert old.bases == counts.bases
    params = json.loads(counts.to_params().to_json())
    del params["coding_log_odds"]
    assert GeneStructureParams.from_json(json.dumps(params), "old-params.json").coding_log_odds == []


def test_a_table_of_the_wrong_size_is_a_config_error() -> None:
    from genoforge.errors import ConfigError

    data = json.loads(GeneStructureParams.default().to_json())
    with pytest.raises(ConfigError, match="coding_log_odds"):
        GeneStructureParams.from_json(json.dumps({**data, "coding_log_odds": [0.0] * 7}), "params.json")
    counts = json.loads(StructureCounts().to_json())
    with pytest.raises(ConfigError, match="coding_context_counts"):
        StructureCounts.from_json(json.dumps({**counts, "coding_context_counts": [0] * 7}), "counts.json")


def test_merge_sums_the_chain_counts() -> None:
    a, b = trained_counts(np.random.default_rng(5), 2), trained_counts(np.random.default_rng(6), 2)
    merged = a.merge(b)
    assert merged.coding_context_counts == [x + y for x, y in zip(a.coding_context_counts, b.coding_context_counts)]


@pytest.mark.parametrize("strand", ["+", "-"])
def test_the_chain_tells_the_species_genes_from_a_random_orf_the_head_also_calls(strand) -> None:
    """A weak head (probability 0.6 on the true class) calls two genes: one with the species'
    codon usage and a random ORF as long. Without the chain the decoder writes both; at content
    weight 2 (where the random ORF's log-odds, about -43, outweigh the head's call of it) only
    the first, exactly. (Much larger weights let a decoder without splice-site scores cut the
    random ORF into exons of good content: the head here says intron as little as intergenic.)"""
    import dataclasses

    from genoforge.genes.classes import window_labels
    from genoforge.inference.structure_predict import decode_contig
    from tests.inference.planted_genes import Planted, make_gene, near_one_hot

    rng = np.random.default_rng(7)
    params = dataclasses.replace(trained_counts(rng).to_params(), class_log_prior=[-np.log(N_CLASSES)] * N_CLASSES)
    orf = biased_orf(rng, 150)
    species_gene = Planted(orf, ((0, len(orf)),), (0, len(orf)))
    random_gene = make_gene(rng, (len(orf),))
    seq, planted = plant(rng, 2400, [(300, strand, species_gene), (1500, strand, random_gene)])
    track = near_one_hot(window_labels(planted, 0, len(seq)), p=0.6).astype(np.float32)
    weights = {"emission_weight": 0.05, "signal_weight": 0.0, "head_signal_weight": 0.0}
    without = decode_contig(seq, track, params, seqid="c", content_weight=0.0, **weights)
    assert sorted(t.cds for t in without.transcripts) == [planted[0].cds, planted[1].cds]
    for weight in (2.0, 3.0):
        found = decode_contig(seq, track, params, seqid="c", content_weight=weight, **weights)
        assert [(t.strand, t.cds) for t in found.transcripts] == [(strand, planted[0].cds)], weight


def test_the_content_term_is_added_after_the_head_s_floor_and_scale() -> None:
    """A class log-probability of -inf is floored and scaled by the emission weight; the content
    term is added on top at its own weight."""
    from genoforge.genes.classes import CDS_PLUS
    from genoforge.inference.hmm import LOG_PROB_FLOOR
    from genoforge.inference.structure_predict import with_coding_content

    params = trained_counts(np.random.default_rng(8), genes=5).to_params()
    seq = random_bases(np.random.default_rng(9), 200)
    track = np.full((len(seq), N_CLASSES), -np.inf, dtype=np.float32)
    out = with_coding_content(track, encode_bases(seq), params.class_log_prior, params.content_table(), 0.05, 40.0)
    plus, _ = cc.strand_log_odds(encode_bases(seq), params.content_table())
    floor = 0.05 * (LOG_PROB_FLOOR - np.asarray(params.class_log_prior))
    assert np.allclose(out[:, 0], floor[0])
    assert np.allclose(out[:, list(CDS_PLUS)], floor[list(CDS_PLUS)] + 40.0 * plus, atol=1e-3)
