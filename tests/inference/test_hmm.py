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
from types import SimpleNamespace

import numpy as np
import pytest

from genoforge.genes.classes import N_CLASSES, encode_bases, window_labels
from genoforge.genes.structure import GeneStructureParams
from genoforge.inference.hmm import build_graph, decode_genes

STOPS = ("TAA", "TAG", "TGA")
CANONICAL_INTRONS = ("GT-AG", "GC-AG", "AT-AC")
_COMPLEMENT = str.maketrans("ACGTN", "TGCAN")
# Class i of a contig is class MIRROR[i] of its reverse complement (strand swapped).
MIRROR = np.array([0] + list(range(9, 17)) + list(range(1, 9)))
DEFAULT = GeneStructureParams.default()
# Two intron durations (a short and a long intron state per type), as fitted for fly.
MIXED = dataclasses.replace(DEFAULT, intron_length_mix=[[0.67, 15.0], [0.33, 1600.0]])


def revcomp(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def random_bases(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list("ACGT"), n))


def sense_codons(rng: np.random.Generator, n: int) -> str:
    codons = []
    while len(codons) < n:
        codon = random_bases(rng, 3)
        if codon not in STOPS:
            codons.append(codon)
    return "".join(codons)


@dataclasses.dataclass
class Planted:
    """A gene written 5'->3' on its own strand: its bases, exons and CDS relative to its start."""

    bases: str
    exons: tuple[tuple[int, int], ...]
    cds: tuple[int, int]


def make_gene(rng, exon_lengths, intron_lengths=(), *, utr5=0, utr3=0, kinds=None, cds=None) -> Planted:
    """A gene of coding exons ``exon_lengths`` (stop included) split by introns of the given lengths.

    ``kinds``: each intron's dinucleotides (default GT-AG); ``cds``: the coding bases (default
    ATG, random sense codons, a random stop).
    """
    total = sum(exon_lengths)
    assert total % 3 == 0 and len(intron_lengths) == len(exon_lengths) - 1
    cds = cds or "ATG" + sense_codons(rng, total // 3 - 2) + str(rng.choice(STOPS))
    assert len(cds) == total
    kinds = kinds or ["GT-AG"] * len(intron_lengths)
    bases, exons, used = random_bases(rng, utr5), [], 0
    for i, length in enumerate(exon_lengths):
        exons.append([len(bases), len(bases) + length])
        bases += cds[used : used + length]
        used += length
        if i < len(intron_lengths):
            donor, acceptor = kinds[i].split("-")
            bases += donor + random_bases(rng, intron_lengths[i] - 4) + acceptor
    cds_span = (utr5, len(bases))
    bases += random_bases(rng, utr3)
    exons[0][0], exons[-1][1] = 0, len(bases)
    return Planted(bases, tuple(map(tuple, exons)), cds_span)


def plant(rng, length: int, genes: list[tuple[int, str, Planted]]) -> tuple[str, list[SimpleNamespace]]:
    """A random contig of ``length`` with each gene written at its start on its strand."""
    contig = list(random_bases(rng, length))
    transcripts = []
    for start, strand, gene in genes:
        n = len(gene.bases)
        bases, exons, cds = gene.bases, gene.exons, gene.cds
        if strand == "-":
            bases = revcomp(bases)
            exons = tuple((n - e, n - s) for s, e in reversed(exons))
            cds = (n - cds[1], n - cds[0])
        contig[start : start + n] = bases
        transcripts.append(SimpleNamespace(
            strand=strand, exons=tuple((s + start, e + start) for s, e in exons),
            cds=(cds[0] + start, cds[1] + start), gene_id=f"g{start}"))
    return "".join(contig), transcripts


def near_one_hot(labels: np.ndarray, p: float = 0.97) -> np.ndarray:
    log_probs = np.full((labels.size, N_CLASSES), np.log((1 - p) / (N_CLASSES - 1)))
    log_probs[np.arange(labels.size), labels] = np.log(p)
    return log_probs


def models(annotation) -> list[tuple]:
    return sorted((t.strand, tuple(t.exons), tuple(t.cds)) for t in annotation.transcripts)


def assert_recovers(seq: str, transcripts, params=DEFAULT, **kwargs) -> None:
    log_probs = near_one_hot(window_labels(transcripts, 0, len(seq)))
    annotation = decode_genes(seq, log_probs, params, seqid="chrT", **kwargs)
    assert models(annotation) == sorted((t.strand, t.exons, t.cds) for t in transcripts)
    assert annotation.seqid == "chrT" and annotation.length == len(seq)
    assert [t.gene for t in annotation.transcripts] == list(range(len(transcripts)))
    assert all(t.biotype == "protein_coding" and t.cds_phase == 0 for t in annotation.transcripts)


# --- recovery -----------------------------------------------------------------------------------

# Exon lengths -> intron phases: 7 | 1, 14 | 2, 24 | 0; 36 coding bases.
EACH_PHASE = ((7, 7, 10, 12), (25, 30, 22))


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


def check_transcript(seq: str, transcript, min_intron: int) -> None:
    """A complete ORF (spliced, read on its strand) with canonical introns >= min_intron."""
    exons, (cds_start, cds_end) = transcript.exons, transcript.cds
    assert 0 <= exons[0][0] <= cds_start < cds_end <= exons[-1][1] <= len(seq)
    assert all(a[0] < a[1] < b[0] for a, b in zip(exons, exons[1:])) and exons[-1][0] < exons[-1][1]
    pieces = [(max(s, cds_start), min(e, cds_end)) for s, e in exons if max(s, cds_start) < min(e, cds_end)]
    orf = "".join(seq[s:e] for s, e in pieces)
    introns = [(a[1], b[0]) for a, b in zip(exons, exons[1:])]
    pairs = [(seq[s : s + 2], seq[e - 2 : e]) for s, e in introns]
    if transcript.strand == "-":
        orf = revcomp(orf)
        pairs = [(revcomp(acceptor), revcomp(donor)) for donor, acceptor in pairs]
    codons = [orf[i : i + 3] for i in range(0, len(orf), 3)]
    assert len(orf) % 3 == 0 and len(orf) >= 9, transcript
    assert codons[0] == "ATG" and codons[-1] in STOPS, transcript
    assert not set(codons[:-1]) & set(STOPS), transcript
    assert all(f"{d}-{a}" in CANONICAL_INTRONS for d, a in pairs), (transcript, pairs)
    assert all(e - s >= min_intron for s, e in introns), transcript


def motif_rich(rng: np.random.Generator, length: int) -> str:
    """A sequence dense in start and stop codons and splice dinucleotides, both strands."""
    motifs = ["ATG", "CAT", "TAA", "TAG", "TGA", "TTA", "CTA", "TCA", "GTAAGT", "CAG", "AG", "GT",
              "AT", "AC", "CT", "GC", "GCAG", "CTTAC"]
    parts, size = [], 0
    while size < length:
        part = motifs[rng.integers(len(motifs))] if rng.random() < 0.6 else "ACGTN"[rng.integers(5)]
        parts.append(part)
        size += len(part)
    return "".join(parts)[:length]


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
        intron_length_mix=[] if seed % 2 else [[0.6, float(rng.uniform(2, 30))], [0.4, float(rng.uniform(50, 900))]])
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


# --- the head's signal outputs ----------------------------------------------------------------


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
    from genoforge.genes.classes import N_SIGNALS

    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        seq = motif_rich(rng, 3000)
        log_probs = np.log(rng.dirichlet(np.full(N_CLASSES, 0.3), len(seq)))
        signals = rng.normal(0.0, 6.0, (len(seq), N_SIGNALS))
        track = np.concatenate([log_probs, signals], axis=1)
        annotation = decode_genes(seq, track, DEFAULT, seqid="chrT", head_signal_weight=2.0, chunk=1500, overlap=400)
        for transcript in annotation.transcripts:
            check_transcript(seq, transcript, DEFAULT.min_intron)
