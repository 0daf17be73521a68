"""The two-stage coding exon duration (genoforge/genes/exon_lengths.py): its distribution, its fit,
and files written before the exon-length histogram."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genoforge.genes.exon_lengths import (
    EXON_HISTOGRAM_BINS,
    MIN_EXONS_FOR_STAGES,
    exon_state_length,
    fit_exon_stages,
    two_stage_log_pmf,
    two_stage_log_survival,
)
from genoforge.genes.structure import GeneStructureParams, StructureCounts


def _convolved(young: float, mature: float, n_max: int) -> np.ndarray:
    """P(Y + M = n) for n = 0..n_max by direct convolution of the two geometrics."""
    k = np.arange(n_max + 1)

    def geometric(mean: float) -> np.ndarray:
        g = 1.0 / mean
        pmf = np.where(k >= 1, g * (1 - g) ** np.maximum(k - 1, 0), 0.0)
        return pmf

    return np.convolve(geometric(young), geometric(mature))[: n_max + 1]


@pytest.mark.parametrize(("young", "mature"), [(1.0, 50.0), (38.0, 308.0), (20.0, 20.0), (5.0, 4.0)])
def test_the_closed_form_is_the_convolution_and_sums_to_one(young, mature):
    n = np.arange(2, 4000)
    pmf = np.exp(two_stage_log_pmf(np.array(young), np.array(mature), n))
    assert pmf == pytest.approx(_convolved(young, mature, 3999)[2:], rel=1e-6, abs=1e-15)
    assert pmf.sum() == pytest.approx(1.0, abs=1e-4)
    for cut in (1, 10, 500):
        tail = np.exp(two_stage_log_survival(np.array(young), np.array(mature), cut))
        assert tail == pytest.approx(1.0 - pmf[: max(0, cut - 1)].sum(), rel=1e-6, abs=1e-12)


def test_the_staged_duration_makes_short_exons_rare_and_keeps_the_tail():
    n = np.arange(2, 3000)
    staged = np.exp(two_stage_log_pmf(np.array(38.0), np.array(308.0), n))
    geometric = np.exp(two_stage_log_pmf(np.array(1.0), np.array(345.0), n))
    assert staged[:18].sum() < geometric[:18].sum() / 3  # exons of 2..19 bases
    assert staged[998:].sum() == pytest.approx(geometric[998:].sum(), rel=0.25)  # >= 1 kb alike


def _histogram(lengths: np.ndarray) -> list[int]:
    return np.bincount(np.minimum(lengths, EXON_HISTOGRAM_BINS - 1), minlength=EXON_HISTOGRAM_BINS).tolist()


def test_the_fit_recovers_the_means_of_planted_lengths():
    rng = np.random.default_rng(0)
    later = rng.geometric(1 / 30.0, 20_000) + rng.geometric(1 / 250.0, 20_000)
    first = rng.geometric(1 / 4.0, 5_000) + rng.geometric(1 / 250.0, 5_000)
    young, mature, first_young = fit_exon_stages(_histogram(later), _histogram(first))
    assert young == pytest.approx(30.0, rel=0.15) and mature == pytest.approx(250.0, rel=0.1)
    assert first_young == pytest.approx(4.0, rel=0.25)


def test_too_few_exons_keep_one_geometric():
    later, first = [0] * EXON_HISTOGRAM_BINS, [0] * EXON_HISTOGRAM_BINS
    later[100] = first[100] = MIN_EXONS_FOR_STAGES - 1
    later[0] = later[1] = 10  # start- or stop-only and one-base exons do not count
    assert fit_exon_stages(later, first) == []
    later[100] += 1
    young, mature, first_young = fit_exon_stages(later, first)
    assert first_young == 1.0  # too few first exons: one geometric past their first base
    first[100] += 1
    assert fit_exon_stages(later, first)[2] > 1.0


def test_first_exons_and_single_exon_genes_are_counted_apart():
    from types import SimpleNamespace

    from tests.inference.planted_genes import make_gene, plant

    rng = np.random.default_rng(3)
    spliced = make_gene(rng, (30, 45, 93), (60, 70))  # state bases 27, 45, 90
    single = make_gene(rng, (120,))
    sequence, transcripts = plant(rng, 1200, [(100, "+", spliced), (700, "-", single)])
    counts = StructureCounts()
    counts.add_sequence(sequence, [SimpleNamespace(**vars(t), biotype="protein_coding") for t in transcripts])
    assert [i for i, n in enumerate(counts.first_exon_length_histogram) for _ in range(n)] == [27]
    assert [i for i, n in enumerate(counts.exon_length_histogram) for _ in range(n)] == [45, 90]


def test_exon_state_bases_leave_out_the_start_and_the_stop_codon():
    assert exon_state_length(100, first=False, last=False) == 100
    assert exon_state_length(100, first=True, last=False) == exon_state_length(100, False, True) == 97
    assert exon_state_length(9, first=True, last=True) == 3
    assert exon_state_length(3, first=True, last=False) == 0


def test_files_written_before_the_histograms_load_with_one_geometric():
    counts = StructureCounts()
    counts.exon_length_histogram[150] = 80
    data = json.loads(counts.to_json())
    del data["exon_length_histogram"], data["first_exon_length_histogram"]
    old = StructureCounts.from_json(json.dumps(data), "old-counts.json")
    assert not any(old.exon_length_histogram) and old.to_params().exon_stages == []
    params = json.loads(counts.to_params().to_json())
    assert len(params["exon_stages"]) == 3
    del params["exon_stages"]
    assert GeneStructureParams.from_json(json.dumps(params), "old-params.json").exon_stages == []


def test_merge_sums_the_histograms():
    a, b = StructureCounts(), StructureCounts()
    a.exon_length_histogram[10] = 2
    b.exon_length_histogram[10] = 3
    b.exon_length_histogram[EXON_HISTOGRAM_BINS - 1] = 1
    merged = a.merge(b)
    assert merged.exon_length_histogram[10] == 5 and merged.exon_length_histogram[-1] == 1
