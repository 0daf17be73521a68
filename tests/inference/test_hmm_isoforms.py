"""Alternative transcripts of the structure decoder (genoforge/inference/hmm_isoforms.py).

A gene is planted with two acceptors for its second intron, six bases apart (both in frame), and
a track whose classes say only "a gene on this strand here" while the head's site log-odds mark
every site of both isoforms: the Viterbi parse writes one of them, and the isoform pass, forcing
the acceptor the parse skipped, writes the other as a second transcript of the same gene. Random
tracks check that every alternative is a complete ORF with canonical introns, on both strands.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from genoforge.genes.classes import N_CLASSES, encode_bases
from genoforge.genes.gene_models import cds_pieces
from genoforge.inference.hmm import decode_genes
from genoforge.inference.hmm_isoforms import add_isoforms
from tests.inference.planted_genes import (
    DEFAULT,
    check_transcript,
    make_gene,
    motif_rich,
    plant,
    random_track,
    revcomp,
)
from tests.inference.test_hmm_signals import head_track

WEIGHTS = {"emission_weight": 1.0, "signal_weight": 0.0, "head_signal_weight": 1.0}


def two_acceptors(strand: str):
    """(contig, isoform A, isoform B): B's last exon starts six bases after A's (codons 1-2 of A's
    last exon removed; the second codon is made ?AG with ? not T, so B's intron ends in AG and A
    reads no stop there)."""
    rng = np.random.default_rng(7)
    gene = make_gene(rng, (30, 45, 33), (60, 70))
    bases = list(gene.bases)
    last = gene.exons[2][0]
    bases[last + 3 : last + 6] = "CAG"
    gene = dataclasses.replace(gene, bases="".join(bases))
    seq, (a,) = plant(rng, 900, [(300, "+", gene)])
    exons = list(a.exons)
    exons[2] = (exons[2][0] + 6, exons[2][1])
    b = SimpleNamespace(strand="+", exons=tuple(exons), cds=a.cds, gene_id=a.gene_id)
    if strand == "-":
        n = len(seq)
        seq = revcomp(seq)
        a, b = (SimpleNamespace(strand="-", exons=tuple((n - e, n - s) for s, e in reversed(t.exons)),
                                cds=(n - t.cds[1], n - t.cds[0]), gene_id=t.gene_id) for t in (a, b))
    return seq, a, b


def decode(seq: str, track: np.ndarray, isoforms: int, **kwargs):
    annotation = decode_genes(seq, track, DEFAULT, seqid="chrT", **WEIGHTS)
    return annotation, add_isoforms(annotation, encode_bases(seq), track, DEFAULT, isoforms=isoforms,
                                    **WEIGHTS, **kwargs)


@pytest.mark.parametrize("strand", ["+", "-"])
def test_the_skipped_acceptor_gives_a_second_isoform_of_the_gene(strand):
    seq, a, b = two_acceptors(strand)
    track = np.maximum(head_track(seq, [a], odds=8.0), head_track(seq, [b], odds=8.0))
    parse, with_isoforms = decode(seq, track, isoforms=2, max_loss=20.0)
    want = {(a.exons, a.cds), (b.exons, b.cds)}
    assert len(parse.transcripts) == 1 and (parse.transcripts[0].exons, parse.transcripts[0].cds) in want
    assert {(t.exons, t.cds) for t in with_isoforms.transcripts} == want
    assert {t.gene for t in with_isoforms.transcripts} == {0}
    assert with_isoforms.transcripts.count(parse.transcripts[0]) == 1  # the parse's own model stays
    for transcript in with_isoforms.transcripts:
        check_transcript(seq, transcript, DEFAULT.min_intron)


def test_an_alternative_needs_a_score_close_to_the_best_parse():
    seq, a, b = two_acceptors("+")
    # B's acceptor is marked weakly: forcing it costs about 2 x (8 - 1) nats of head log-odds.
    weak = head_track(seq, [b], odds=1.0)
    track = np.maximum(head_track(seq, [a], odds=8.0), weak)
    parse, loose = decode(seq, track, isoforms=2, max_loss=30.0, min_site=-2.0)
    _, strict = decode(seq, track, isoforms=2, max_loss=2.0, min_site=-2.0)
    assert [(t.exons, t.cds) for t in parse.transcripts] == [(a.exons, a.cds)]
    assert {(t.exons, t.cds) for t in loose.transcripts} == {(a.exons, a.cds), (b.exons, b.cds)}
    assert strict.transcripts == parse.transcripts
    # One transcript per gene asked for, or a track without the head's site columns: nothing added.
    assert decode(seq, track, isoforms=1, max_loss=30.0)[1].transcripts == parse.transcripts
    classes_only = track[:, :N_CLASSES]
    assert decode(seq, classes_only, isoforms=3, max_loss=30.0)[1].transcripts == decode(
        seq, classes_only, isoforms=1)[0].transcripts


def test_random_tracks_give_only_complete_orf_isoforms():
    for seed in range(3):
        rng = np.random.default_rng(200 + seed)
        seq = motif_rich(rng, 2500)
        track = random_track(rng, len(seq), signal_sd=4.0)
        parse, with_isoforms = decode(seq, track, isoforms=3, max_loss=50.0)
        assert [t for t in with_isoforms.transcripts if t in parse.transcripts] == parse.transcripts
        per_gene = {}
        for transcript in with_isoforms.transcripts:
            check_transcript(seq, transcript, DEFAULT.min_intron)
            per_gene.setdefault(transcript.gene, set()).add(tuple(cds_pieces(transcript.exons, transcript.cds)))
        counts = [sum(t.gene == g for t in with_isoforms.transcripts) for g in per_gene]
        assert all(len(chains) == n <= 3 for chains, n in zip(per_gene.values(), counts))
        assert len(with_isoforms.transcripts) > len(parse.transcripts)  # the test exercises something
