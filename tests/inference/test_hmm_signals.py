"""The head's signal outputs in the Viterbi decoder: signal targets where the decoder scores a site,
and head site log-odds alone placing every exon (genoforge/inference/hmm_signals.py)."""

from __future__ import annotations

import numpy as np

from genoforge.genes.classes import N_CLASSES, encode_bases, window_labels
from genoforge.inference.hmm import decode_genes
from tests.inference.planted_genes import (
    DEFAULT,
    EACH_PHASE,
    check_transcript,
    make_gene,
    models,
    motif_rich,
    plant,
    random_track,
)


def expected_sites(transcript) -> dict[str, set[int]]:
    """Where each signal of ``transcript`` lies (positions as genes.classes defines them)."""
    exons, (cds_start, cds_end) = transcript.exons, transcript.cds
    if transcript.strand == "+":
        sites = {"donor": {e for _, e in exons[:-1]}, "acceptor": {s for s, _ in exons[1:]},
                 "start": {cds_start}, "stop": {cds_end - 3}}
    else:
        sites = {"donor": {s for s, _ in exons[1:]}, "acceptor": {e for _, e in exons[:-1]},
                 "start": {cds_end}, "stop": {cds_start + 3}}
    return {f"{name}{transcript.strand}": at for name, at in sites.items()}


def planted_pair(seed: int = 3):
    """A contig with the each-phase gene (UTRs too) on + and a second one on -."""
    rng = np.random.default_rng(seed)
    gene = make_gene(rng, *EACH_PHASE, utr5=12, utr3=9)
    other = make_gene(rng, (9, 21, 18), (70, 80), utr5=5)
    return plant(rng, 1200, [(100, "+", gene), (650, "-", other)])


def test_signal_targets_mark_each_site_where_the_decoder_scores_it():
    """Targets from the class labels sit exactly at the planted donors, acceptors, starts and stops
    of both strands, and the decoder's signal column of each is open (finite) there: the head
    is taught the very boundary the Viterbi edge reads."""
    import torch

    from genoforge.genes.classes import SIGNAL_NAMES
    from genoforge.inference.hmm_signals import HEAD_SIGNAL_ROWS, Signals, block_columns
    from genoforge.model.base_signals import signal_targets

    seq, transcripts = planted_pair()
    labels = window_labels(transcripts, 0, len(seq))
    targets, labelled = signal_targets(torch.from_numpy(labels.astype(np.int64))[None])
    assert labelled.all()
    want: dict[str, set[int]] = {name: set() for name in SIGNAL_NAMES}
    for transcript in transcripts:
        for name, at in expected_sites(transcript).items():
            want[name] |= at
    got = {name: set(np.flatnonzero(targets[0, :, k].numpy()).tolist()) for k, name in enumerate(SIGNAL_NAMES)}
    assert got == want
    columns = block_columns(Signals(DEFAULT, 1.0), encode_bases(seq), 0, len(seq))
    for k, name in enumerate(SIGNAL_NAMES):
        rows = np.flatnonzero(HEAD_SIGNAL_ROWS[:, k])
        for t in want[name]:
            assert np.isfinite(columns[rows, t]).any(), f"{name} at {t}: no open decoder column"


def test_signal_targets_ignore_unlabelled_bases_and_window_edges():
    import torch

    from genoforge.model.base_signals import signal_targets

    # exon+ | intron+ at 2|3 (a donor at 3), an unlabelled gap, intron+ | exon+ across the gap
    labels = torch.tensor([[3, 1, 2, 4, 4, -100, 1, 2]])
    targets, labelled = signal_targets(labels)
    assert targets[0, :, 0].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]  # donor+
    assert targets[0, :, 1].sum() == 0  # no acceptor across the unlabelled base
    assert labelled.tolist() == [[True] * 5 + [False] + [True] * 2]


def head_track(seq: str, transcripts, odds: float) -> np.ndarray:
    """Class posteriors that say only "a gene on this strand here" (inside a gene's span, equal
    mass on its strand's eight classes; outside, intergenic 0.9), and head log-odds +odds at the
    true sites, -odds elsewhere."""
    from genoforge.genes.classes import N_SIGNALS, SIGNAL_NAMES, STRAND_OFFSET

    probs = np.full((len(seq), N_CLASSES), 0.1 / (N_CLASSES - 1))
    probs[:, 0] = 0.9
    signals = np.full((len(seq), N_SIGNALS), -odds)
    for transcript in transcripts:
        shift = 0 if transcript.strand == "+" else STRAND_OFFSET
        span = slice(transcript.exons[0][0], transcript.exons[-1][1])
        probs[span] = 0.02 / (N_CLASSES - 8)
        probs[span, 1 + shift : 9 + shift] = 0.98 / 8
        for name, at in expected_sites(transcript).items():
            signals[sorted(at), SIGNAL_NAMES.index(name)] = odds
    return np.concatenate([np.log(probs), signals], axis=1)


def test_head_signals_alone_place_every_exon_on_both_strands():
    """With class evidence that does not say where exons end and no PWMs, the head's site
    log-odds place every boundary of both planted genes exactly; with the head's weight 0 the
    same track does not."""
    seq, transcripts = planted_pair()
    track = head_track(seq, transcripts, odds=8.0)
    annotation = decode_genes(seq, track, DEFAULT, seqid="chrT", signal_weight=0.0, head_signal_weight=1.0)
    assert models(annotation) == sorted((t.strand, t.exons, t.cds) for t in transcripts)
    without = decode_genes(seq, track, DEFAULT, seqid="chrT", signal_weight=0.0, head_signal_weight=0.0)
    assert models(without) != models(annotation)


def test_head_signals_keep_every_cds_a_complete_orf():
    """Random head log-odds (on random posteriors) never open a forbidden edge."""
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        seq = motif_rich(rng, 3000)
        track = random_track(rng, len(seq), signal_sd=6.0)
        annotation = decode_genes(seq, track, DEFAULT, seqid="chrT", head_signal_weight=2.0, chunk=1500, overlap=400)
        for transcript in annotation.transcripts:
            check_transcript(seq, transcript, DEFAULT.min_intron)
