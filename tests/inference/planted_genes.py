"""Planted genes for the Viterbi decoder's tests: random contigs with known gene models, their
near one-hot posterior tracks, and the complete-ORF check (tests/inference/test_hmm*.py)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np

from genoforge.genes.classes import N_CLASSES, window_labels
from genoforge.genes.structure import GeneStructureParams
from genoforge.inference.hmm import decode_genes

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


EACH_PHASE = ((7, 7, 10, 12), (25, 30, 22))  # exon and intron lengths giving introns of each phase


def random_track(rng: np.random.Generator, length: int, signal_sd: float) -> np.ndarray:
    """[length, N_CLASSES + N_SIGNALS]: random class log-probabilities (Dirichlet 0.3 per base)
    and random head site log-odds (normal, ``signal_sd``): a track that forces nothing."""
    from genoforge.genes.classes import N_SIGNALS

    log_probs = np.log(rng.dirichlet(np.full(N_CLASSES, 0.3), length))
    signals = rng.normal(0.0, signal_sd, (length, N_SIGNALS))
    return np.concatenate([log_probs, signals], axis=1)
