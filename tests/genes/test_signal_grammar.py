"""SignalGrammar: canonical introns and complete ORFs, on both strands (planted toy genes)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from genoforge.baking.reverse import (
    reverse_complement_annotation,
    reverse_complement_dna,
)
from genoforge.errors import ConfigError
from genoforge.genes import inventory as inv
from genoforge.genes.annotation import load_annotation
from genoforge.genes.classes import encode_bases
from genoforge.genes.fasta import read_fasta
from genoforge.genes.grammar import TargetGrammar
from genoforge.genes.signal_check import intron_signal, orf_problem, signal_violations
from genoforge.genes.signal_grammar import SignalGrammar, coding_spans
from genoforge.genes.signals import INTRON_CLASSES, STOP_CODONS
from genoforge.genes.target import encode_target, parse_target_tokens, window_annotation
from genoforge.genes.window_models import WindowAnnotation, WindowTranscript

VOCAB = {token: i + 7 for i, token in enumerate(inv.builtin_tokens())}
SENSE = [a + b + c for a in "ACGT" for b in "ACGT" for c in "ACGT"
         if a + b + c not in STOP_CODONS and a + b + c != "ATG"]


def _background(rng: random.Random, length: int) -> list[str]:
    return [rng.choice("ACGT") for _ in range(length)]


def _plant(bases: list[str], exons, cds, rng: random.Random, introns=("GT-AG",), stop="TAA"):
    """Write a + strand gene into ``bases``: canonical intron ends, ATG..stop over the spliced CDS."""
    for k, ((_, end), (start, _)) in enumerate(itertools.pairwise(exons)):
        cls = introns[k % len(introns)]
        bases[end:end + 2], bases[start - 2:start] = cls[:2], cls[3:]
    positions = [p for s, e in exons for p in range(max(s, cds[0]), min(e, cds[1]))]
    assert len(positions) % 3 == 0
    coding = "ATG" + "".join(rng.choice(SENSE) for _ in range(len(positions) // 3 - 2)) + stop
    for p, base in zip(positions, coding):
        bases[p] = base


def _one(transcript: WindowTranscript) -> WindowAnnotation:
    return WindowAnnotation((transcript,))


def _minus(dna: str, wa: WindowAnnotation) -> tuple[str, WindowAnnotation]:
    return reverse_complement_dna(dna), reverse_complement_annotation(wa, len(dna))


def _both_strands(dna: str, wa: WindowAnnotation):
    yield dna, wa
    yield _minus(dna, wa)


# A + strand gene in a 500 bp window: exons [50,90) [150,200) [260,330), CDS [70, 292): 20 + 50 +
# 32 coding bases, so codons span both junctions; introns GT-AG and GC-AG.
EXONS = ((50, 90), (150, 200), (260, 330))
CDS = (70, 292)


@pytest.fixture(scope="module")
def planted() -> tuple[str, WindowAnnotation]:
    rng = random.Random(1)
    bases = _background(rng, 500)
    _plant(bases, EXONS, CDS, rng, introns=("GT-AG", "GC-AG"))
    wa = _one(WindowTranscript("+", inv.PROTEIN_CODING, 0, ".", EXONS, CDS, 0))
    return "".join(bases), wa


def _accepted(dna: str, wa: WindowAnnotation, clip_in_introns: bool = False) -> bool:
    tokens = encode_target(wa)
    assert TargetGrammar(VOCAB, window_size=len(dna)).accepts(tokens)
    return SignalGrammar(VOCAB, dna, clip_in_introns=clip_in_introns).accepts(tokens)


def _rejected(dna: str, wa: WindowAnnotation, clip_in_introns: bool = False) -> None:
    assert not _accepted(dna, wa, clip_in_introns)
    assert signal_violations(wa, dna, clip_in_introns=clip_in_introns)


def test_true_targets_of_planted_genes_are_accepted_on_both_strands(planted) -> None:
    dna, wa = planted
    for strand_dna, strand_wa in _both_strands(dna, wa):
        assert signal_violations(strand_wa, strand_dna) == []
        assert _accepted(strand_dna, strand_wa)
        assert _accepted(strand_dna.lower(), strand_wa)  # soft-masked sequence reads the same
    # the whole target with other records around it
    other = WindowTranscript("+", "lncRNA", 1, ".", ((5, 20), (400, 420)), None)
    feature_wa = WindowAnnotation((*wa.records, other))
    assert _accepted(dna, feature_wa) and signal_violations(feature_wa, dna) == []


def test_start_off_atg_is_rejected_on_both_strands(planted) -> None:
    dna, wa = planted
    broken = dna[:CDS[0]] + "C" + dna[CDS[0] + 1:]  # ATG -> CTG
    for strand_dna, strand_wa in _both_strands(broken, wa):
        _rejected(strand_dna, strand_wa)
    # and a start moved one codon in, onto a sense codon
    (t,) = wa.records
    moved = _one(WindowTranscript("+", t.biotype, 0, ".", EXONS, (CDS[0] + 3, CDS[1]), 0))
    for strand_dna, strand_wa in _both_strands(dna, moved):
        _rejected(strand_dna, strand_wa)


def test_splice_site_off_class_is_rejected_on_both_strands(planted) -> None:
    dna, wa = planted
    for at, base in ((EXONS[0][1], "C"), (EXONS[0][1] + 1, "A"), (EXONS[1][0] - 1, "C"),
                     (EXONS[2][0] - 2, "T")):
        broken = dna[:at] + base + dna[at + 1:]
        for strand_dna, strand_wa in _both_strands(broken, wa):
            _rejected(strand_dna, strand_wa)


def test_stop_past_the_first_in_frame_stop_is_rejected_on_both_strands(planted) -> None:
    dna, wa = planted
    later = CDS[1] + 9  # a second in-frame stop three codons further, in the last exon
    dna2 = dna[:later - 3] + "TGA" + dna[later:]
    (t,) = wa.records
    assert _accepted(dna2, wa)
    long = _one(WindowTranscript("+", t.biotype, 0, ".", EXONS, (CDS[0], later), 0))
    for strand_dna, strand_wa in _both_strands(dna2, long):
        _rejected(strand_dna, strand_wa)


def test_frame_breaking_exon_is_rejected_and_skipping_it_is_accepted_on_both_strands() -> None:
    rng = random.Random(3)
    bases = _background(rng, 400)
    exons = ((20, 60), (100, 130), (200, 260))  # the middle exon holds 30 bases
    skip = ((20, 60), (200, 260))
    _plant(bases, skip, (30, 230), rng)  # the ORF over exons 1 and 3
    for k in range(100, 130):
        bases[k] = rng.choice("ACG")  # no stray T in the middle exon
    bases[98:100] = "AG"
    bases[130:132] = "GT"
    bases[109:112] = "TAG"  # coding base 30 + 9: in frame
    dna = "".join(bases)
    ok = _one(WindowTranscript("+", inv.PROTEIN_CODING, 0, ".", skip, (30, 230), 0))
    bad = _one(WindowTranscript("+", inv.PROTEIN_CODING, 0, ".", exons, (30, 230), 0))
    for strand_dna, strand_wa in _both_strands(dna, ok):
        assert signal_violations(strand_wa, strand_dna) == []
        assert _accepted(strand_dna, strand_wa)
    for strand_dna, strand_wa in _both_strands(dna, bad):
        assert any("in-frame stop" in p for p in signal_violations(strand_wa, strand_dna))
        _rejected(strand_dna, strand_wa)


def _clip(dna: str, t: WindowTranscript, low: int, high: int) -> tuple[str, WindowAnnotation]:
    """The + strand transcript ``t`` seen through the window ``[low, high)``."""
    exons = tuple((max(s, low) - low, min(e, high) - low) for s, e in t.exons if e > low and s < high)
    assert t.cds is not None
    coding = [p for s, e in t.exons for p in range(max(s, t.cds[0], low), min(e, t.cds[1], high))]
    cds = (coding[0] - low, coding[-1] + 1 - low)
    cut5 = sum(max(0, min(e, low) - max(s, t.cds[0])) for s, e in t.exons)
    partial = ("<" if t.exons[0][0] < low else "") + (">" if t.exons[-1][1] > high else "")
    clipped = WindowTranscript("+", t.biotype, 0, partial or ".", exons, cds, (t.cds_phase - cut5) % 3)
    return dna[low:high], _one(clipped)


@pytest.mark.parametrize(("low", "high"), [(75, 500), (80, 500), (82, 500), (0, 280), (0, 275),
                                           (161, 270), (152, 500)])
def test_window_clipped_cds_is_accepted_on_both_edges_and_strands(planted, low, high) -> None:
    dna, wa = planted
    window_dna, clipped = _clip(dna, wa.records[0], low, high)
    for strand_dna, strand_wa in _both_strands(window_dna, clipped):
        assert signal_violations(strand_wa, strand_dna) == [], strand_wa
        assert _accepted(strand_dna, strand_wa)
    # without the partial mark the clipped CDS is no ORF
    (t,) = clipped.records
    unmarked = _one(WindowTranscript("+", t.biotype, 0, ".", t.exons, t.cds, t.cds_phase))
    for strand_dna, strand_wa in _both_strands(window_dna, unmarked):
        _rejected(strand_dna, strand_wa)


@pytest.mark.parametrize(("low", "high"), [(100, 500), (120, 500), (0, 240), (0, 210),
                                           (95, 230)])
def test_window_edge_in_an_intron_clips_only_with_clip_in_introns(planted, low, high) -> None:
    dna, wa = planted
    window_dna, clipped = _clip(dna, wa.records[0], low, high)
    for strand_dna, strand_wa in _both_strands(window_dna, clipped):
        _rejected(strand_dna, strand_wa)
        assert signal_violations(strand_wa, strand_dna, clip_in_introns=True) == []
        assert _accepted(strand_dna, strand_wa, clip_in_introns=True)


@pytest.mark.parametrize(("low", "high"), [(100, 500), (120, 500), (0, 240), (0, 210), (95, 230)])
def test_an_intron_clip_needs_a_canonical_intron_end_at_the_outer_exon(planted, low, high) -> None:
    """clip_in_introns is no escape from the ORF rule: the outer exon the CDS is clipped at must
    open (high side) or close (low side) a canonical intron; "AA" there is rejected on both strands."""
    dna, wa = planted
    window_dna, clipped = _clip(dna, wa.records[0], low, high)
    (t,) = clipped.records
    bases = list(window_dna)
    if "<" in t.partial:
        bases[t.exons[0][0] - 2 : t.exons[0][0]] = "AA"
    if ">" in t.partial:
        bases[t.exons[-1][1] : t.exons[-1][1] + 2] = "AA"
    for strand_dna, strand_wa in _both_strands("".join(bases), clipped):
        assert signal_violations(strand_wa, strand_dna, clip_in_introns=True), strand_wa
        assert not _accepted(strand_dna, strand_wa, clip_in_introns=True)


def test_coding_spans_are_exactly_the_orfs_the_checker_accepts() -> None:
    """Brute force over every (start, end, phase) of random exon chains, both strands, clipped or
    not: the grammar's table holds exactly the spans signal_violations finds nothing in."""
    rng = random.Random(4)
    for trial in range(40):
        size = rng.randrange(30, 60)
        bases = _background(rng, size)
        for _ in range(3):
            at = rng.randrange(0, size - 2)
            bases[at:at + 3] = "ATG"
        dna = "".join(bases)
        bounds = sorted(rng.sample(range(size + 1), 2 * rng.randrange(1, 4)))
        if rng.random() < 0.5:
            bounds[0] = 0
        if rng.random() < 0.5:
            bounds[-1] = size
        exons = tuple((bounds[i], bounds[i + 1]) for i in range(0, len(bounds), 2))
        assert all(s < e for s, e in exons)
        strand = rng.choice("+-")
        partial = rng.choice((".", "<", ">", "<>"))
        clip_low = "<" in partial and exons[0][0] == 0
        clip_high = ">" in partial and exons[-1][1] == size
        spans = set(coding_spans(encode_bases(dna), exons, strand, clip_low, clip_high))
        expected = set()
        for s0, e0 in exons:
            for cs in range(s0, e0):
                for s1, e1 in exons:
                    for ce in range(max(s1, cs) + 1, e1 + 1):
                        for phase in range(3):
                            t = WindowTranscript(strand, inv.PROTEIN_CODING, 0, partial, exons,
                                                 (cs, ce), phase)
                            if orf_problem(t, dna) is None:
                                expected.add((cs, ce, phase))
        assert spans == expected, (trial, dna, exons, strand, partial)


def test_next_exon_starts_are_exactly_the_canonical_acceptors() -> None:
    rng = random.Random(5)
    dna = "".join(_background(rng, 300))
    grammar = SignalGrammar(VOCAB, dna)
    for strand in "+-":
        for end in range(1, 300):
            got = {v for low, high in grammar.next_exon_starts(strand, end)
                   for v in range(low, high + 1)}
            want = {s for s in range(end + 4, 300) if intron_signal(dna, end, s, strand) in INTRON_CLASSES}
            assert got == want, (strand, end)


def _walk(grammar: SignalGrammar, rng: random.Random) -> list[str]:
    """A random path: uniform among the allowed tokens, except that protein_coding, a next exon
    and cds are favoured, small coordinate steps too, and <eos> is put off (each most of the time), so that the signal rules are exercised
    often."""
    state = grammar.start_state()
    tokens: list[str] = []
    while not grammar.is_final(state):
        allowed = grammar.allowed_tokens(state)
        assert allowed, f"dead end after {tokens}"
        if inv.PROTEIN_CODING in allowed and rng.random() < 0.7:
            token = inv.PROTEIN_CODING
        elif inv.LINE_EXON in allowed and len(allowed) > 1 and rng.random() < 0.5:
            token = inv.LINE_EXON
        elif inv.LINE_CDS in allowed and rng.random() < 0.7:
            token = inv.LINE_CDS
        elif allowed[0] in inv.NUMBERS and rng.random() < 0.5:
            token = rng.choice(allowed[:30])  # short exons and introns, so that many splice
        else:
            token = rng.choice(allowed)
            if token == inv.EOS and len(allowed) > 1 and rng.random() < 0.8:
                token = rng.choice([t for t in allowed if t != inv.EOS])
        tokens.append(token)
        state = grammar.advance_token(state, token)
        assert len(tokens) < 20_000
    return tokens


def _walk_dna(rng: random.Random) -> str:
    """~600 bp with planted genes on both strands (so long ORFs and spliced ones exist)."""
    bases = _background(rng, 600)
    _plant(bases, ((10, 70), (120, 190)), (30, 152), rng, introns=("AT-AC",))
    minus = _background(rng, 300)
    _plant(minus, ((0, 80), (140, 220), (260, 300)), (20, 270), rng, introns=("GT-AG", "GC-AG"))
    bases[300:600] = reverse_complement_dna("".join(minus))
    return "".join(bases)


@pytest.mark.parametrize("clip_in_introns", [False, True])
def test_random_walks_end_parse_and_keep_to_the_signals(clip_in_introns: bool) -> None:
    rng = random.Random(6)
    dna = _walk_dna(rng)
    grammar = SignalGrammar(VOCAB, dna, max_records=6, max_exons=5,
                            clip_in_introns=clip_in_introns)
    plain = TargetGrammar(VOCAB, window_size=len(dna), max_records=6, max_exons=5)
    n_cds = n_spliced_cds = n_introns = 0
    for _ in range(400):
        tokens = _walk(grammar, rng)
        assert plain.accepts(tokens)
        wa = parse_target_tokens(tokens, window_size=len(dna), max_records=6, max_exons=5)
        assert signal_violations(wa, dna, clip_in_introns=clip_in_introns) == [], tokens
        coding = [r for r in wa.records if isinstance(r, WindowTranscript)
                  and r.biotype == inv.PROTEIN_CODING]
        n_introns += sum(len(r.exons) - 1 for r in coding)
        n_cds += sum(r.cds is not None for r in coding)
        n_spliced_cds += sum(len(r.exons) > 1 and r.cds is not None for r in coding)
    assert n_cds > 100 and n_spliced_cds > 10 and n_introns > 25, (n_cds, n_spliced_cds, n_introns)


def test_other_biotypes_and_features_are_unconstrained() -> None:
    dna = "A" * 200  # no ATG, no splice site anywhere
    t = WindowTranscript("+", "lncRNA", 0, ".", ((10, 20), (30, 40)), None)
    pseudo = WindowTranscript("-", inv.PSEUDOGENE, 1, ".", ((50, 60), (70, 80)), (52, 75), 1)
    wa = WindowAnnotation((t, pseudo))
    assert _accepted(dna, wa) and signal_violations(wa, dna) == []
    coding = _one(WindowTranscript("+", inv.PROTEIN_CODING, 0, ".", ((10, 20),), None))
    assert _accepted(dna, coding)  # one exon, no cds line: allowed
    grammar = SignalGrammar(VOCAB, dna)
    state = grammar.start_state()
    for token in encode_target(coding)[:-1]:
        state = grammar.advance_token(state, token)
    assert inv.LINE_EXON not in grammar.allowed_tokens(state)  # no intron can open
    assert inv.LINE_CDS not in grammar.allowed_tokens(state)  # no ORF


def test_bad_intron_class_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        SignalGrammar(VOCAB, "ACGT" * 10, intron_classes=("GTAG",))
    grammar = SignalGrammar(VOCAB, "ACGT" * 10, intron_classes=("gt-ag",))
    assert grammar.intron_classes == ("gt-ag",)


def test_keys_of_equal_value_sets_give_equal_masks(planted) -> None:
    dna, wa = planted
    grammar = SignalGrammar(VOCAB, dna)
    plain = TargetGrammar(VOCAB, window_size=len(dna))
    state = grammar.start_state()
    for token in encode_target(wa):
        key = grammar.allowed_key(state)
        assert (grammar.mask_of_key(key) == plain.mask_of_key(key)).all()
        assert (grammar.allowed_mask(state) == grammar.mask_of_key(key)).all()
        nxt, nxt_key = grammar.advance_keyed(state, key, VOCAB[token])
        state = grammar.advance_token(state, token)
        assert nxt == state and nxt_key == grammar.allowed_key(state)


# Coding transcripts of 10 kb tiles (5 kb stride) that keep to the rules, the window edge allowed
# to fall in an intron (clip_in_introns). The chloroplast's misses are real biology: group II
# introns (GT-AC, GT-AT), GTG and RNA-edited ACG starts.
CLEAN_SHARE = {"athal_chloroplast": 0.7, "fly_snap_segments": 1.0, "athal_snap_segments": 1.0}


@pytest.mark.shared_data
@pytest.mark.parametrize("species", sorted(CLEAN_SHARE))
def test_real_windows_are_accepted_exactly_when_they_keep_to_the_signals(
    shared_data: Path, species: str
) -> None:
    """Real annotations in 10 kb tiles: the grammar accepts a window's true target exactly when
    signal_violations finds nothing in it (with and without clip_in_introns), and with
    clip_in_introns nearly every coding transcript keeps to the rules."""
    folder = shared_data / species
    genome = {r.seqid: r.sequence for r in read_fasta(folder / "genome.fa.gz")}
    annotation = load_annotation(folder / "annotation.gff3.gz",
                                 {seqid: len(seq) for seqid, seq in genome.items()})
    n_coding = n_clean = n_clean_strict = 0
    for seqid, sequence in genome.items():
        for start in range(0, max(1, len(sequence) - 5_000), 5_000):
            end = min(start + 10_000, len(sequence))
            wa = window_annotation(annotation, seqid, start, end)
            dna = sequence[start:end]
            tokens = encode_target(wa)
            for clip_in_introns in (False, True):
                problems = signal_violations(wa, dna, clip_in_introns=clip_in_introns)
                grammar = SignalGrammar(VOCAB, dna, clip_in_introns=clip_in_introns)
                assert grammar.accepts(tokens) == (not problems), (seqid, start, problems)
            for record in wa.records:
                if isinstance(record, WindowTranscript) and record.biotype == inv.PROTEIN_CODING:
                    one = WindowAnnotation((record,))
                    n_coding += 1
                    n_clean += not signal_violations(one, dna, clip_in_introns=True)
                    n_clean_strict += not signal_violations(one, dna)
    print(f"\n{species}: {n_clean}/{n_coding} coding transcripts of 10 kb tiles keep to the "
          f"signals ({n_clean_strict} when a clipped end must reach the window edge)")
    assert n_coding > 100 and n_clean >= CLEAN_SHARE[species] * n_coding
