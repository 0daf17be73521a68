"""The Viterbi gene-structure decoder (genoforge/inference/hmm.py).

Three layers:

- **Recovery.** Genes are planted in a random contig; the posterior track is near one-hot on the
  true labels (:func:`window_labels`, probability 0.97). The decoder must return exactly the
  planted models: introns of phase 0/1/2 (including the remembered-codon cases 1T, 2TA, 2TG),
  GC-AG and AT-AC introns, one-base and start/stop-only exons, minus-strand genes, UTRs, genes
  at the contig's ends, and several genes across small chunks (a gene straddling a chunk edge).
- **Validity.** Random contigs (uniform, and rich in ATG, stops and splice dinucleotides), random
  Dirichlet posteriors (with -inf and NaN sprinkled in), random parameters and weights: every
  transcript written is a complete ORF with canonical introns >= ``min_intron``. Decoding the
  reverse complement (posteriors mirrored) gives the mirrored genes exactly.
- **Edges.** Shape and argument errors, an empty contig, an all-N contig.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from genoforge.genes.classes import N_CLASSES, encode_bases, window_labels
from genoforge.inference.hmm import build_graph, decode_genes
from tests.inference.planted_genes import (
    DEFAULT,
    EACH_PHASE,
    MIRROR,
    MIXED,
    assert_recovers,
    check_transcript,
    make_gene,
    models,
    motif_rich,
    near_one_hot,
    plant,
    revcomp,
)


@pytest.mark.parametrize("params", [DEFAULT, MIXED], ids=["one-intron-duration", "two-intron-durations"])
@pytest.mark.parametrize("strand", ["+", "-"])
def test_recovers_a_gene_with_introns_of_each_phase(strand, params):
    rng = np.random.default_rng(1)
    seq, transcripts = plant(rng, 400, [(150, strand, make_gene(rng, *EACH_PHASE))])
    assert_recovers(seq, transcripts, params)


@pytest.mark.parametrize("strand", ["+", "-"])
def test_recovers_codons_split_with_remembered_bases(strand):
    # ATG | AAT T|AC CGT A|AG | TA|T TG|G CCC | TAA: introns after a T (1T), after TA and TG (2TA,
    # 2TG) and after A (1o) where the next bases complete no stop: none of them may be forbidden.
    cds = "ATG" + "AAT" + "T" + "AC" + "CGT" + "A" + "AG" + "TA" + "T" + "TG" + "G" + "CCC" + "TAA"
    exons = (3 + 3 + 1, 2 + 3 + 1, 2 + 2, 1 + 2, 1 + 3 + 3)
    rng = np.random.default_rng(2)
    gene = make_gene(rng, exons, (24, 31, 22, 27), cds=cds)
    seq, transcripts = plant(rng, 400, [(100, strand, gene)])
    assert_recovers(seq, transcripts)


@pytest.mark.parametrize("strand", ["+", "-"])
def test_recovers_noncanonical_introns(strand):
    rng = np.random.default_rng(3)
    gene = make_gene(rng, (7, 8, 6), (25, 30), kinds=["GC-AG", "AT-AC"])
    seq, transcripts = plant(rng, 300, [(60, strand, gene)])
    params = dataclasses.replace(DEFAULT, gcag_fraction=0.05, atac_fraction=0.05)
    assert_recovers(seq, transcripts, params)


@pytest.mark.parametrize("strand", ["+", "-"])
@pytest.mark.parametrize("exons", [
    (3, 9),  # first exon = the start codon alone (phase-0 intron right after ATG)
    (9, 3),  # last exon = the stop codon alone
    (4, 1, 7),  # a one-base middle exon (phase 1 -> phase 2)
    (6, 2, 7),  # a two-base middle exon (phase 0 -> phase 2)
    (5, 1, 6),  # a one-base exon at codon position 2 (phase 2 -> phase 0)
    (3, 3, 3),  # start alone, one codon, stop alone
], ids=str)
def test_recovers_short_exons(strand, exons):
    rng = np.random.default_rng(sum(exons))
    for seed in range(3):  # several codons: the remembered bases differ
        seq, transcripts = plant(rng, 260, [(80, strand, make_gene(rng, exons, (30,) * (len(exons) - 1)))])
        assert_recovers(seq, transcripts)


@pytest.mark.parametrize("strand", ["+", "-"])
def test_single_exon_genes_shorter_than_the_species_shortest_are_not_written(strand):
    """A 90-bp single-exon gene is written while the limit is at most 90 and dropped above it;
    a spliced gene with less coding sequence (63 bp) is written whatever the limit."""
    rng = np.random.default_rng(12)
    seq, transcripts = plant(rng, 900, [(100, strand, make_gene(rng, (90,))),
                                        (500, strand, make_gene(rng, (30, 33), (80,)))])
    log_probs = near_one_hot(window_labels(transcripts, 0, len(seq)))
    true = sorted((t.strand, t.exons, t.cds) for t in transcripts)
    for limit in (0, 90):
        assert models(decode_genes(seq, log_probs, dataclasses.replace(DEFAULT, min_single_cds=limit),
                                   seqid="c")) == true
    spliced = [m for m in true if len(m[1]) == 2]
    assert models(decode_genes(seq, log_probs, dataclasses.replace(DEFAULT, min_single_cds=91), seqid="c")) == spliced


@pytest.mark.parametrize("strand", ["+", "-"])
def test_no_internal_exon_is_shorter_than_the_species_shortest(strand):
    """With min_internal_exon 3 a 3-bp internal exon, a start-codon-alone first exon and a
    stop-codon-alone last exon are still found, and a head that calls a 1- or 2-bp internal exon
    gets none shorter than 3 (every CDS still a complete ORF)."""
    params = dataclasses.replace(DEFAULT, min_internal_exon=3)
    rng = np.random.default_rng(21)
    for exons in ((3, 3, 3), (4, 3, 5), (3, 9), (9, 3), (7, 5, 4, 5)):
        seq, transcripts = plant(rng, 300, [(80, strand, make_gene(rng, exons, (30,) * (len(exons) - 1)))])
        assert_recovers(seq, transcripts, params)
    for exons in ((4, 1, 7), (6, 2, 7), (5, 1, 6)):
        for _ in range(3):
            seq, transcripts = plant(rng, 300, [(80, strand, make_gene(rng, exons, (30,) * (len(exons) - 1)))])
            log_probs = near_one_hot(window_labels(transcripts, 0, len(seq)))
            assert models(decode_genes(seq, log_probs, DEFAULT, seqid="c")) == [
                (strand, transcripts[0].exons, transcripts[0].cds)]  # no limit: the short exon is found
            for transcript in decode_genes(seq, log_probs, params, seqid="c").transcripts:
                check_transcript(seq, transcript, params.min_intron)
                assert all(e - s >= 3 for s, e in transcript.exons[1:-1])


def test_one_base_exon_after_a_1t_intron():
    # ATG T | A | G...: codon TAG split T|A|G across two introns is a stop and must never be
    # written; TAC split T|A|C is fine and must be found.
    rng = np.random.default_rng(4)
    gene = make_gene(rng, (4, 1, 7), (30, 30), cds="ATGT" + "A" + "CGCTTGA")
    seq, transcripts = plant(rng, 260, [(80, "+", gene)])
    assert_recovers(seq, transcripts)
    stop_gene = make_gene(rng, (4, 1, 7), (30, 30), cds="ATGT" + "A" + "GGCTTGA")
    seq, transcripts = plant(rng, 260, [(80, "+", stop_gene)])
    log_probs = near_one_hot(window_labels(transcripts, 0, len(seq)))
    assert (("+", transcripts[0].exons, transcripts[0].cds)
            not in models(decode_genes(seq, log_probs, DEFAULT, seqid="c")))


@pytest.mark.parametrize("base", [DEFAULT, MIXED], ids=["one-intron-duration", "two-intron-durations"])
def test_minimum_intron_length_is_exact(base):
    params = dataclasses.replace(base, min_intron=25)
    rng = np.random.default_rng(5)
    for strand in "+-":
        seq, transcripts = plant(rng, 250, [(60, strand, make_gene(rng, (9, 12), (25,)))])
        assert_recovers(seq, transcripts, params)
        short, short_tx = plant(rng, 250, [(60, strand, make_gene(rng, (9, 12), (24,)))])
        log_probs = near_one_hot(window_labels(short_tx, 0, len(short)))
        for t in decode_genes(short, log_probs, params, seqid="c").transcripts:
            assert all(b[0] - a[1] >= 25 for a, b in zip(t.exons, t.exons[1:]))


def test_recovers_single_exon_genes_and_utrs_on_both_strands():
    rng = np.random.default_rng(6)
    genes = [
        (50, "+", make_gene(rng, (30,))),
        (150, "-", make_gene(rng, (21,))),
        (250, "+", make_gene(rng, (27,), utr5=15, utr3=20)),
        (350, "-", make_gene(rng, (24,), utr5=12, utr3=9)),
        (450, "+", make_gene(rng, (11, 7, 9), (28, 21), utr5=12, utr3=9)),
        (600, "-", make_gene(rng, (9,))),  # the shortest CDS: ATG, one codon, a stop
    ]
    seq, transcripts = plant(rng, 700, genes)
    assert_recovers(seq, transcripts)


@pytest.mark.parametrize("strand", ["+", "-"])
def test_genes_at_the_contig_ends_are_kept(strand):
    rng = np.random.default_rng(7)
    left, right = make_gene(rng, (12, 9), (30,)), make_gene(rng, (15, 12), (25,))
    length = 200
    seq, transcripts = plant(rng, length, [(0, strand, left), (length - len(right.bases), strand, right)])
    assert_recovers(seq, transcripts)


def test_genes_cut_by_the_contig_ends_are_dropped():
    rng = np.random.default_rng(8)
    seq, transcripts = plant(rng, 300, [(20, "+", make_gene(rng, (30,))), (100, "-", make_gene(rng, (12, 9), (30,))),
                                        (200, "+", make_gene(rng, (30,)))])
    log_probs = near_one_hot(window_labels(transcripts, 0, 300))
    # Cut 10 bases into the first gene and into the last one: only the middle gene is complete.
    annotation = decode_genes(seq[30:210], log_probs[30:210], DEFAULT, seqid="c")
    middle = transcripts[1]
    assert models(annotation) == [("-", tuple((s - 30, e - 30) for s, e in middle.exons),
                                   (middle.cds[0] - 30, middle.cds[1] - 30))]


def test_several_genes_across_small_chunks():
    """3000 bp in chunks of 1000 overlapping by 300 (starts 0, 700, 1400, 2000; cores split at
    850, 1550, 2200), decoded two chunks at a time. Genes straddle chunk 0's end (1000), chunk 1's
    start (700), a core boundary (850) and chunk 2's end (2400); one sits at the contig's end."""
    rng = np.random.default_rng(9)
    genes = [(100, "+", make_gene(rng, (30, 21), (40,))),
             (560, "-", make_gene(rng, (12, 18, 9), (30, 35))),  # 560..690ish, near chunk 1's start
             (780, "+", make_gene(rng, (15, 15, 15), (25, 30))),  # across the core boundary 850
             (930, "-", make_gene(rng, (21, 24), (60,), utr5=10, utr3=15)),  # across 1000
             (1480, "+", make_gene(rng, (18, 12), (33,))),
             (2330, "-", make_gene(rng, (27, 12), (45,))),  # across 2400
             (2900, "+", make_gene(rng, (30, 9), (61,)))]  # ends at the contig's last base
    seq, transcripts = plant(rng, 3000, genes)
    assert transcripts[-1].exons[-1][1] == 3000
    kwargs = dict(chunk=1000, overlap=300, max_batch=2)
    assert_recovers(seq, transcripts, **kwargs)
    # The stitched chunks decode what one chunk of the whole contig decodes, on random posteriors too.
    rng = np.random.default_rng(10)
    log_probs = np.log(rng.dirichlet(np.full(N_CLASSES, 0.3), size=len(seq)) + 1e-9)
    log_probs[:, 1:] += 1.0
    whole = decode_genes(seq, log_probs, DEFAULT, seqid="c", chunk=len(seq), overlap=0)
    chunked = decode_genes(seq, log_probs, DEFAULT, seqid="c", **kwargs)
    short = [m for m in models(whole) if m[1][-1][1] - m[1][0][0] < 140]  # well inside any overlap
    assert short and set(short) <= set(models(chunked))


def test_codes_and_string_and_float16_agree():
    rng = np.random.default_rng(11)
    seq, transcripts = plant(rng, 300, [(40, "+", make_gene(rng, (12, 9), (30,))), (150, "-", make_gene(rng, (24,)))])
    log_probs = near_one_hot(window_labels(transcripts, 0, len(seq)))
    a = decode_genes(seq, log_probs, DEFAULT, seqid="c")
    b = decode_genes(encode_bases(seq), log_probs.astype(np.float16), DEFAULT, seqid="c")
    c = decode_genes(seq.lower(), log_probs.astype(np.float32), DEFAULT, seqid="c")
    assert models(a) == models(b) == models(c) and len(models(a)) == 2


# --- validity on random input ---------------------------------------------------------------------


def random_case(seed: int):
    """A random contig, a piecewise-Dirichlet posterior track, random parameters and weights."""
    rng = np.random.default_rng(seed)
    length = int(rng.integers(200, 2000))
    seq = motif_rich(rng, length) if seed % 2 else "".join(rng.choice(list("ACGTN"), length, p=[0.24] * 4 + [0.04]))
    log_probs = np.empty((length, N_CLASSES))
    at = 0
    while at < length:  # stretches favouring one class, so genes of every kind get decoded
        n = min(int(rng.integers(5, 80)), length - at)
        alpha = np.full(N_CLASSES, 0.3)
        alpha[rng.integers(N_CLASSES)] = 5.0
        log_probs[at : at + n] = np.log(rng.dirichlet(alpha, size=n) + 1e-12)
        at += n
    if seed % 3 == 0:
        log_probs[rng.random(log_probs.shape) < 0.05] = -np.inf
    if seed % 5 == 0:
        log_probs[rng.random(log_probs.shape) < 0.01] = np.nan

    def pwm(rows):
        return rng.normal(0.0, 1.0, (len(rows), 4)).tolist()

    prior = rng.normal(-3.0, 1.0, N_CLASSES)
    params = dataclasses.replace(
        DEFAULT, mean_intergenic=float(rng.uniform(20, 500)), mean_intron=float(rng.uniform(30, 300)),
        mean_coding_exon=float(rng.uniform(5, 200)), mean_coding_exons_per_gene=float(rng.uniform(1, 8)),
        utr5_fraction=float(rng.uniform(0, 1)), utr3_fraction=float(rng.uniform(0, 1)),
        gcag_fraction=float(rng.uniform(0, 0.3)), atac_fraction=float(rng.uniform(0, 0.3)),
        min_intron=int(rng.integers(20, 40)), donor_pwm=pwm(DEFAULT.donor_pwm),
        acceptor_pwm=pwm(DEFAULT.acceptor_pwm), start_pwm=pwm(DEFAULT.start_pwm), stop_pwm=pwm(DEFAULT.stop_pwm),
        class_log_prior=((prior + prior[MIRROR]) / 2).tolist(),  # strand-symmetric, for the mirror test
        intron_length_mix=[] if seed % 2 else [[0.6, float(rng.uniform(2, 30))], [0.4, float(rng.uniform(50, 900))]],
        min_internal_exon=int(rng.integers(1, 4)))
    weights = dict(emission_weight=float(rng.uniform(0.2, 5.0)), signal_weight=float(rng.uniform(0.0, 3.0)))
    return seq, log_probs, params, weights, rng


def test_random_input_gives_only_complete_orfs_with_canonical_introns():
    written, kinds = 0, set()
    for seed in range(60):
        seq, log_probs, params, weights, rng = random_case(seed)
        chunk = int(rng.integers(300, 1500))
        with np.errstate(invalid="raise"):  # -inf and NaN posteriors must not reach the arithmetic
            annotation = decode_genes(seq, log_probs, params, seqid="r", chunk=chunk,
                                      overlap=int(rng.integers(0, chunk // 2)), **weights)
        for transcript in annotation.transcripts:
            check_transcript(seq, transcript, params.min_intron)
            assert all(e - s >= params.min_internal_exon for s, e in transcript.exons[1:-1])
            kinds.add((transcript.strand, len(transcript.exons) > 1))
        spans = sorted((t.exons[0][0], t.exons[-1][1]) for t in annotation.transcripts)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # genes never overlap
        written += len(annotation.transcripts)
    assert written > 200 and kinds == {("+", True), ("+", False), ("-", True), ("-", False)}


def test_reverse_complement_decodes_to_the_mirrored_genes():
    """A minus gene scores exactly what its reverse complement scores on + (signals included)."""
    total = 0
    for seed in range(20):
        seq, log_probs, params, weights, _ = random_case(seed)
        length = len(seq)
        whole = dict(chunk=length, overlap=0, **weights)  # one chunk: chunk placement is not symmetric
        forward = decode_genes(seq, log_probs, params, seqid="f", **whole)
        mirrored = decode_genes(revcomp(seq), np.ascontiguousarray(log_probs[::-1][:, MIRROR]), params,
                                seqid="r", **whole)

        def flip(span):
            return (length - span[1], length - span[0])

        back = sorted(("+" if t.strand == "-" else "-", tuple(flip(x) for x in reversed(t.exons)), flip(t.cds))
                      for t in mirrored.transcripts)
        assert models(forward) == back
        total += len(back)
    assert total > 50


def test_stop_and_splice_rich_contig_with_gene_favouring_posteriors():
    # Posteriors that push CDS and intron classes everywhere: the constraints alone shape genes.
    rng = np.random.default_rng(12)
    seq = motif_rich(rng, 3000)
    log_probs = np.log(rng.dirichlet(np.full(N_CLASSES, 0.5), size=len(seq)))
    log_probs[:, 0] -= 3.0
    for track in (log_probs, log_probs[:, MIRROR]):  # the same push on the other strand
        annotation = decode_genes(seq, track, DEFAULT, seqid="c", emission_weight=3.0, chunk=1200, overlap=400)
        assert annotation.transcripts
        for transcript in annotation.transcripts:
            check_transcript(seq, transcript, DEFAULT.min_intron)


# --- edges --------------------------------------------------------------------------------------


def test_shape_and_argument_errors_are_value_errors():
    seq = "ACGT" * 25
    good = np.zeros((100, N_CLASSES))
    wrong = (np.zeros((99, N_CLASSES)), np.zeros((100, N_CLASSES - 1)), np.zeros(100), np.zeros((100, N_CLASSES, 1)))
    for bad in wrong:
        with pytest.raises(ValueError, match="log_probs_LC has shape"):
            decode_genes(seq, bad, DEFAULT, seqid="c")
    for chunk, overlap in ((100, 100), (100, 150), (100, -1), (0, 0)):
        with pytest.raises(ValueError, match="overlap"):
            decode_genes(seq, good, DEFAULT, seqid="c", chunk=chunk, overlap=overlap)
    with pytest.raises(ValueError, match="max_batch"):
        decode_genes(seq, good, DEFAULT, seqid="c", max_batch=0)


def test_empty_contig():
    annotation = decode_genes("", np.zeros((0, N_CLASSES)), DEFAULT, seqid="empty")
    assert annotation.seqid == "empty" and annotation.length == 0 and annotation.transcripts == []


def test_all_n_contig_has_no_genes():
    labels = np.zeros(500, dtype=np.int64)
    labels[100:400] = np.tile([1, 2, 3], 100)  # the network insists on a CDS
    annotation = decode_genes("N" * 500, near_one_hot(labels), DEFAULT, seqid="gap", chunk=200, overlap=50)
    assert annotation.transcripts == [] and annotation.length == 500


def test_tiny_contigs():
    for seq in ("A", "ATG", "ATGAAATAA", "ATGTAA"):
        log_probs = near_one_hot(np.tile([1, 2, 3], 3)[: len(seq)])
        annotation = decode_genes(seq, log_probs, DEFAULT, seqid="t")
        if seq == "ATGAAATAA":
            assert models(annotation) == [("+", ((0, 9),), (0, 9))]
        else:
            assert annotation.transcripts == []


def test_graph_is_the_mirror_of_itself():
    graph = build_graph(DEFAULT)
    names = set(graph.names_S)
    assert names == {"IG"} | {s[0].translate(str.maketrans("+-", "-+")) + s[1:] for s in names - {"IG"}}
    assert graph.n_states == 1 + 2 * 38
    for shortest, extra in ((2, 3), (3, 6)):  # YA0-2 (YA1_T replaces E1_T), then YB0-2
        young = build_graph(dataclasses.replace(DEFAULT, min_internal_exon=shortest))
        names = set(young.names_S)
        assert names == {"IG"} | {s[0].translate(str.maketrans("+-", "-+")) + s[1:] for s in names - {"IG"}}
        assert "+YA1_T" in names and "+E1_T" not in names and young.n_states == 1 + 2 * (38 + extra)


# --- the head's signal outputs ----------------------------------------------------------------


@pytest.mark.parametrize("strand", ["+", "-"])
def test_no_gene_crosses_an_assembly_gap(strand):
    """A run of ASSEMBLY_GAP N inside a planted gene's long intron (the head still calls it intron)
    splits the locus: no model spans the gap; 9 N (shorter than a gap) leave the gene whole."""
    from genoforge.inference.hmm import ASSEMBLY_GAP

    rng = np.random.default_rng(7)
    seq, transcripts = plant(rng, 900, [(100, strand, make_gene(rng, (60, 45, 93), (300, 40)))])
    labels = window_labels(transcripts, 0, len(seq))
    (t,) = transcripts
    intron = max(((a[1], b[0]) for a, b in zip(t.exons, t.exons[1:])), key=lambda i: i[1] - i[0])
    middle = (intron[0] + intron[1]) // 2
    for run, crosses in ((ASSEMBLY_GAP - 1, True), (ASSEMBLY_GAP, False), (120, False)):
        gapped = seq[:middle] + "N" * run + seq[middle + run:]
        annotation = decode_genes(gapped, near_one_hot(labels), DEFAULT, seqid="chrT")
        spans = [(t.exons[0][0], t.exons[-1][1]) for t in annotation.transcripts]
        assert any(lo < middle and middle + run <= hi for lo, hi in spans) == crosses, (run, spans)
        if crosses:
            assert models(annotation) == [(t.strand, t.exons, t.cds)]
