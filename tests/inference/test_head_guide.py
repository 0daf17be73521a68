"""Head guidance: the per-base head's segment and site log-odds steer the pointer's coordinates.

The tracks are checked on a window whose head output is written by hand (each track peaks at the
edge it is for, on both strands), then decoding is checked on random weights: guided, every exon
coordinate is the best boundary of its track within the grammar's range, the KV-cached step
equals the full-prefix reference, and weight 0 is the unguided decoder.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from genoforge.genes import classes as cl
from genoforge.genes.grammar import (
    ROLE_CDS_END,
    ROLE_CDS_START,
    ROLE_EXON_END,
    ROLE_FIRST_START,
    ROLE_INTRON_START,
    SLOT_HI,
    SLOT_LO,
    TargetGrammar,
)
from genoforge.inference.decode import GrammarCache, window_dna
from genoforge.inference.head_guide import (
    N_GUIDE_TRACKS,
    StructureGuide,
    guide_track,
    guide_tracks,
)
from genoforge.inference.stream import (
    FullPrefixStep,
    add_base_fields,
    decode_stream,
    encoder_batch,
    row_step,
)
from tests.inference.coding_bias import coding_step
from tests.tiny import build_debug_model, write_tokenizer_dir

# A + transcript: outside [0, 10), 5' UTR [10, 15), CDS [15, 30), intron [30, 50), CDS [50, 60),
# 3' UTR [60, 70), outside [70, 100).
PLUS_LAYOUT = [(10, cl.INTERGENIC), (5, cl.UTR5_PLUS), (15, cl.CDS_PLUS[0]), (20, cl.INTRON_PLUS[0]),
               (10, cl.CDS_PLUS[1]), (10, cl.UTR3_PLUS), (30, cl.INTERGENIC)]


def _head_logits(layout, confidence: float = 6.0, signals: dict[int, int] | None = None) -> torch.Tensor:
    """[1, L, K + S] logits: ``confidence`` on each base's class, signal logits low except at
    ``signals`` (column -> base index, high there)."""
    labels = [c for n, c in layout for _ in range(n)]
    logits = torch.zeros(1, len(labels), cl.N_CLASSES + cl.N_SIGNALS)
    logits[0, torch.arange(len(labels)), torch.tensor(labels)] = confidence
    logits[0, :, cl.N_CLASSES:] = -20.0
    for column, base in (signals or {}).items():
        logits[0, base, cl.N_CLASSES + column] = 20.0
    return logits


def _mirror(layout):
    """The same transcript on the - strand (the layout reversed, classes moved to -)."""
    minus = {cl.INTERGENIC: cl.INTERGENIC, cl.UTR5_PLUS: cl.UTR5_MINUS, cl.UTR3_PLUS: cl.UTR3_MINUS}
    minus.update({c: c + cl.STRAND_OFFSET for c in cl.CDS_PLUS + cl.INTRON_PLUS})
    return [(n, minus[c]) for n, c in reversed(layout)]


def _argmax_after(track: torch.Tensor, low: int) -> int:
    return low + int(track[low:].argmax())


def test_each_plus_strand_track_peaks_at_its_edge() -> None:
    logits = _head_logits(PLUS_LAYOUT)
    tracks = guide_tracks(logits, torch.ones(1, 100, dtype=torch.bool)).tracks
    assert tracks.shape == (1, N_GUIDE_TRACKS, 101)
    assert torch.all(tracks[0, 0] == 0)
    track = lambda role: tracks[0, guide_track(role, "+")]
    assert int(track(ROLE_FIRST_START).argmax()) == 10
    assert _argmax_after(track(ROLE_EXON_END), 11) == 30  # the first exon ends where the intron begins
    assert _argmax_after(track(ROLE_INTRON_START), 31) == 50
    assert _argmax_after(track(ROLE_EXON_END), 51) == 70
    assert int(track(ROLE_CDS_START).argmax()) == 15  # where coding begins after the 5' UTR
    assert _argmax_after(track(ROLE_CDS_END), 16) == 60


def test_each_minus_strand_track_peaks_at_its_mirrored_edge() -> None:
    logits = _head_logits(_mirror(PLUS_LAYOUT))  # outside [0, 30), 3' UTR [30, 40), CDS [40, 50), ...
    tracks = guide_tracks(logits, torch.ones(1, 100, dtype=torch.bool)).tracks
    track = lambda role: tracks[0, guide_track(role, "-")]
    assert int(track(ROLE_FIRST_START).argmax()) == 30
    assert _argmax_after(track(ROLE_EXON_END), 31) == 50
    assert _argmax_after(track(ROLE_INTRON_START), 51) == 70
    assert _argmax_after(track(ROLE_EXON_END), 71) == 90
    assert int(track(ROLE_CDS_START).argmax()) == 40
    assert _argmax_after(track(ROLE_CDS_END), 41) == 85
    # the + tracks see no + exon: their exon-end track only falls
    assert int(tracks[0, guide_track(ROLE_EXON_END, "+")].argmax()) == 0


def test_site_terms_land_on_the_boundary_their_signal_names() -> None:
    flat = [(100, cl.INTERGENIC)]
    mask = torch.ones(1, 100, dtype=torch.bool)
    base = guide_tracks(_head_logits(flat), mask).tracks
    # + acceptor at base 40 (the exon's first base), + stop codon at 60..62 (CDS end 63),
    # - donor at boundary 20, - stop codon [70, 73) signalled at boundary 73 (CDS start 70)
    signals = {1: 40, 3: 60, 4: 20, 7: 73}
    tracks = guide_tracks(_head_logits(flat, signals=signals), mask).tracks
    gained = tracks - base
    assert int(gained[0, guide_track(ROLE_INTRON_START, "+")].argmax()) == 40
    assert int(gained[0, guide_track(ROLE_CDS_END, "+")].argmax()) == 63
    assert int(gained[0, guide_track(ROLE_INTRON_START, "-")].argmax()) == 20
    assert int(gained[0, guide_track(ROLE_CDS_START, "-")].argmax()) == 70
    # an exon's end may be a donor or (no 3' UTR) the stop codon's end: only confidence counts
    exon_end = gained[0, guide_track(ROLE_EXON_END, "+")]
    assert int(exon_end.argmax()) == 63 and float(exon_end.min()) >= 0
    splice = guide_tracks(_head_logits(flat, signals={0: 35, 5: 55}), mask).splice
    assert int(splice[0, 0].argmax()) == 35 and int(splice[0, 1].argmax()) == 55


def test_padding_adds_nothing_to_a_window_s_tracks() -> None:
    logits = _head_logits(PLUS_LAYOUT)
    alone = guide_tracks(logits, torch.ones(1, 100, dtype=torch.bool)).tracks
    padded_logits = torch.cat([logits, torch.randn(1, 37, logits.shape[-1])], dim=1)
    mask = torch.zeros(1, 137, dtype=torch.bool)
    mask[0, :100] = True
    padded = guide_tracks(padded_logits, mask).tracks
    assert torch.allclose(padded[..., :101], alone, atol=1e-4)


# -- decoding ------------------------------------------------------------------------------------

LENGTHS = [1_500, 900, 2_400, 1_200]
WEIGHT = 1_000.0  # the guide dominates the random decoder's own pointer scores


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(write_tokenizer_dir(tmp_path_factory.mktemp("tok")))
    model = build_debug_model(tokenizer, 3).eval()
    rng = random.Random(11)
    seqs = ["".join(rng.choice("ACGT") for _ in range(n)) for n in LENGTHS]
    ids = [tokenizer.encode_dna(s) for s in seqs]
    return tokenizer, model, ids


def _decode(model, tokenizer, ids, weight: float | None, use_cache: bool = True, grammars=None, steps: int = 300):
    inner = row_step
    if not use_cache:
        batch = encoder_batch(ids, tokenizer.bp_lengths(), tokenizer.pad_id, "cpu", rows=len(ids))
        inner = FullPrefixStep(model.encode(batch))
    step = coding_step(tokenizer, inner)

    windows = [(k, w, n) for k, (w, n) in enumerate(zip(ids, LENGTHS, strict=True))]
    out = dict(decode_stream(model, tokenizer, windows, batch_size=len(ids), max_new_tokens=steps,
                             grammars=grammars or GrammarCache(tokenizer), pad_encoder_rows=True, step=step,
                             **({} if weight is None else {"guide_weight": weight})))
    return [out[k] for k in range(len(ids))]


def _head_of(model, tokenizer, ids):
    batch = encoder_batch(ids, tokenizer.bp_lengths(), tokenizer.pad_id, "cpu", rows=len(ids))
    bases = [window_dna(tokenizer, w, n) for w, n in zip(ids, LENGTHS, strict=True)]
    add_base_fields(batch, bases, ids, tokenizer.bp_lengths(), "cpu")
    with torch.no_grad():
        memory = model.encode_for_decoding(batch)
    return guide_tracks(memory.base_logits_WLK, batch["base_mask"])


def test_guided_exon_coordinates_are_the_best_boundaries_of_their_tracks(setup) -> None:
    tokenizer, model, ids = setup
    grammars = GrammarCache(tokenizer)
    out = _decode(model, tokenizer, ids, WEIGHT, grammars=grammars)
    terms = _head_of(model, tokenizer, ids)
    checked = 0
    for w, prediction in enumerate(out):
        n = LENGTHS[w]
        guide = StructureGuide(*(t[w, :, : n + 1].numpy() for t in (terms.splice, terms.coding)),
                               terms.exon[w, :, :n].numpy(), WEIGHT)
        grammar = grammars(n)
        state = grammar.start_state()
        last = 0
        for token_id in prediction.token_ids:
            slot, _ = TargetGrammar.coordinate_slot(state)
            role = TargetGrammar.coordinate_role(state)
            if slot == SLOT_HI and role in (ROLE_EXON_END, ROLE_INTRON_START):
                low, high = guide.guided_span(grammar, state, last)
                track = terms.tracks[w, guide_track(role, state.strand), : n + 1]
                best = low + int(track[low: high + 1].argmax())
            state = grammar.advance(state, token_id)
            if slot == SLOT_LO:
                last = state.end if state.end >= 0 else state.start
                if role in (ROLE_EXON_END, ROLE_INTRON_START):
                    assert last == best, (w, role, last, best)
                    checked += 1
    assert checked >= 4, checked


def test_guided_decoding_equals_the_full_prefix_reference(setup) -> None:
    tokenizer, model, ids = setup
    cached = _decode(model, tokenizer, ids, 0.7, steps=150)
    reference = _decode(model, tokenizer, ids, 0.7, use_cache=False, steps=150)
    assert [p.token_ids for p in cached] == [p.token_ids for p in reference]
    assert sum(len(p.token_ids) for p in cached) > 100


def test_guidance_changes_what_is_written_and_weight_zero_is_the_plain_decoder(setup) -> None:
    tokenizer, model, ids = setup
    unguided = _decode(model, tokenizer, ids, None, steps=200)
    zero = _decode(model, tokenizer, ids, 0.0, steps=200)
    guided = _decode(model, tokenizer, ids, WEIGHT, steps=200)
    assert [p.token_ids for p in zero] == [p.token_ids for p in unguided]
    assert [p.token_ids for p in guided] != [p.token_ids for p in unguided]


# -- the host-side structure guide -------------------------------------------------------------

def test_next_run_starts_finds_the_first_full_run_at_or_after_each_base() -> None:
    from genoforge.inference.head_guide import next_run_starts

    flags = np.array([1, 1, 0, 1, 1, 1, 0, 0, 1, 1, 1, 1], dtype=bool)
    out = next_run_starts(flags, 3)
    assert out.tolist() == [3, 3, 3, 3, 8, 8, 8, 8, 8, 9, 12, 12, 12]


def _guide(exon_plus: np.ndarray, exon_minus: np.ndarray | None = None) -> StructureGuide:
    n = exon_plus.shape[0]
    exon = np.stack([exon_plus, np.zeros(n) if exon_minus is None else exon_minus])
    coding = np.concatenate([np.zeros((2, 1)), np.cumsum(exon, axis=1)], axis=1)
    return StructureGuide(np.zeros((2, n + 1)), coding, exon, 1.0)


def test_an_exon_stops_at_the_first_long_non_exonic_run() -> None:
    from genoforge.inference.head_guide import BARRIER_RUN

    exon = np.zeros(1_000)
    exon[100:300] = 0.9  # an exon, then a gap of 100 bases, then the next gene's exon
    exon[400:600] = 0.9
    guide = _guide(exon)
    low, high = guide.coordinate_span(ROLE_EXON_END, "+", 101, 1_000, last=100)
    assert (low, high) == (101, 300 + BARRIER_RUN)
    # an intron (from 300) may not run through the next exon; a first exon starts after `last`
    assert guide.coordinate_span(ROLE_INTRON_START, "+", 301, 999, last=300) == (301, 400 + BARRIER_RUN)
    assert guide.coordinate_span(ROLE_FIRST_START, "+", 0, 999, last=300) == (300, 400 + BARRIER_RUN)
    # on the other strand nothing is exonic: an exon there stops at once
    assert guide.coordinate_span(ROLE_EXON_END, "-", 101, 1_000, last=100) == (101, 100 + BARRIER_RUN)


def test_the_strand_term_prefers_the_strand_whose_coding_comes_first() -> None:
    from genoforge.genes.grammar import GrammarState

    plus, minus = np.zeros(2_000), np.zeros(2_000)
    plus[1_200:1_500] = 0.9
    minus[300:600] = 0.9
    guide = _guide(plus, minus)
    grammar = TargetGrammar({t: i for i, t in enumerate(_vocab())}, window_size=2_000)
    state = GrammarState(line="transcript", slot=2)  # the strand field
    assert grammar.field_of(state) == "strand"
    ((token, term),) = guide.token_terms(grammar, state, last=0)
    assert token == "+" and term < 0  # - is 900 bp nearer
    ((_, term),) = guide.token_terms(grammar, state, last=700)  # past the - gene
    assert term > 0


def _vocab() -> list[str]:
    from genoforge.genes import inventory as inv

    return list(inv.builtin_tokens())


@pytest.mark.parametrize("strand", ["+", "-"])
def test_orf_scores_rank_the_start_whose_frame_the_head_reads_first(strand) -> None:
    from genoforge.genes.classes import encode_bases
    from genoforge.genes.signal_grammar import coding_spans
    from genoforge.inference.head_guide import orf_scores

    # Two ATGs in different frames, each with its own in-frame stop; the head reads the frame of
    # the second as coding (codon positions 0, 1, 2 from it).
    body = "CC" + "ATG" + "AAA" * 4 + "TAA" + "G" + "ATG" + "GCA" * 20 + "TGA" + "CCCCC"
    if strand == "-":
        complement = {"A": "T", "C": "G", "G": "C", "T": "A"}
        sequence = "".join(complement[b] for b in reversed(body))
    else:
        sequence = body
    n = len(sequence)
    codes = encode_bases(sequence)
    exons = ((0, n),)
    spans = coding_spans(codes, exons, strand)
    true_start_in_body = body.index("ATGGCA")
    frame = np.full((3, n), -2.0)
    for k in range(true_start_in_body, true_start_in_body + 63 + 3):
        i = k if strand == "+" else n - 1 - k
        frame[(k - true_start_in_body) % 3, i] = 2.0
    best = orf_scores(frame, exons, strand, spans)
    winner = max(best, key=best.get)
    expected = true_start_in_body if strand == "+" else n - (true_start_in_body + 66)
    assert winner == expected, (best, expected)
    assert len(best) >= 2


def _coordinate(value: int) -> list[str]:
    from genoforge.genes.grammar import COORD_BASE

    return [str(value // COORD_BASE), ":", str(value % COORD_BASE)]


def _after_tokens(grammar: TargetGrammar, tokens: list[str]):
    state = grammar.start_state()
    for token in tokens:
        state = grammar.advance_token(state, token)
    return state


def test_a_coding_transcript_at_the_right_edge_is_not_closed_without_its_cds_line() -> None:
    """A ``-`` protein-coding transcript marked ``>`` whose last exon runs to the window's right
    edge: no base follows the edge, so the splice term there is 0 and the cds line has no lead
    of its own. Every head that would close the transcript without its cds line (another
    transcript, a feature, ``<eos>``) must lose to it, whatever small preference the decoder's
    own logits have (a random model's ``<eos>`` led by ~0.1 and wrote no cds line)."""
    from genoforge.genes import inventory as inv
    from genoforge.inference.head_guide import EVIDENCE_CLIP

    n = 1_200
    exon = np.zeros((2, n))
    exon[1, 100:n] = 0.9999  # a - gene's coding exon from 100 to the right edge
    coding = np.concatenate([np.zeros((2, 1)), np.cumsum(exon, axis=1)], axis=1)
    guide = StructureGuide(np.zeros((2, n + 1)), coding, exon, 3.0, genic_2L=exon,
                           coding_min=9.0, coding_scale=3.0, barrier_run=1)
    grammar = TargetGrammar({t: i for i, t in enumerate(_vocab())}, window_size=n)
    tokens = ["<bos>", "transcript", "\t", "-", "\t", "protein_coding", "\t", "0", "\t", ">", "\n",
              "exon", "\t", *_coordinate(100), "\t", *_coordinate(n), "\n"]
    state = _after_tokens(grammar, tokens)
    assert grammar.after_exon(state) and state.coding and state.exons == ((100, n),)
    terms = dict(guide.token_terms(grammar, state, last=n))
    allowed = set(grammar.allowed_tokens(state))
    closing = allowed & {inv.LINE_TRANSCRIPT, inv.EOS, *inv.FEATURE_TYPES}
    assert inv.LINE_CDS in allowed and closing == {inv.LINE_TRANSCRIPT, inv.EOS, *inv.FEATURE_TYPES}
    for head in closing:
        assert terms[head] <= terms.get(inv.LINE_CDS, 0.0) - 3.0 * EVIDENCE_CLIP, (head, terms)
    # the decoder's own preference for <eos> (as the random model had) no longer wins
    logits = {token: 0.0 for token in allowed}
    logits[inv.EOS] = 5.0
    best = max(allowed, key=lambda token: logits[token] + terms.get(token, 0.0))
    assert best == inv.LINE_CDS, terms


def test_the_window_first_transcript_counts_a_gene_cut_by_the_left_edge() -> None:
    """A window inside one long gene (genic from its first base to its last): before anything
    is written, that gene is the transcript to write, so its coding bases count for
    ``transcript`` and ``protein_coding``; once a transcript ending inside the run is written,
    the rest of the run is that transcript's, not another gene."""
    from genoforge.genes import inventory as inv

    n = 1_200
    exon = np.zeros((2, n))
    exon[1, :] = 0.9999  # - coding throughout: the window lies inside one gene
    coding = np.concatenate([np.zeros((2, 1)), np.cumsum(exon, axis=1)], axis=1)
    guide = StructureGuide(np.zeros((2, n + 1)), coding, exon, 3.0, genic_2L=exon,
                           coding_min=9.0, coding_scale=3.0, barrier_run=1)
    assert guide.coding_after(0) == pytest.approx(float(coding[1, -1]))
    assert guide.coding_after(600) == 0.0  # the rest of the transcript begun
    grammar = TargetGrammar({t: i for i, t in enumerate(_vocab())}, window_size=n)
    state = _after_tokens(grammar, ["<bos>"])
    ((token, term),) = guide.token_terms(grammar, state, last=0)
    assert token == inv.LINE_TRANSCRIPT and term > 0
    state = _after_tokens(grammar, ["<bos>", "transcript", "\t", "-", "\t"])
    ((token, term),) = guide.token_terms(grammar, state, last=0)
    assert token == inv.PROTEIN_CODING and term > 0
    # a gene right after a written one (base before the boundary outside any run) counts whole
    gap = exon.copy()
    gap[1, 400:410] = 0.0
    coding = np.concatenate([np.zeros((2, 1)), np.cumsum(gap, axis=1)], axis=1)
    split = StructureGuide(np.zeros((2, n + 1)), coding, gap, 3.0, genic_2L=gap, coding_min=9.0,
                           coding_scale=3.0, barrier_run=1)
    assert split.coding_after(410) == pytest.approx(float(coding[1, -1] - coding[1, 410]))
    assert split.coding_after(300) == pytest.approx(float(coding[1, -1] - coding[1, 410]))
