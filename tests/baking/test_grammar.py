"""The grammar automaton accepts exactly what parse_target_tokens accepts (property tests)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from genoforge.errors import TargetParseError, TokenizerError
from genoforge.genes import inventory as inv
from genoforge.genes.annotation import load_annotation
from genoforge.genes.fasta import fasta_lengths
from genoforge.genes.grammar import TargetGrammar
from genoforge.genes.target import (
    encode_target,
    parse_target_tokens,
    window_annotation,
)

DATA = Path(__file__).resolve().parents[1] / "data"
VOCAB = {token: i + 7 for i, token in enumerate(inv.builtin_tokens())}  # ids need not start at 0
INVENTORY = list(inv.builtin_tokens())


def _parses(tokens: list[str], window_size: int, max_records: int, max_exons: int) -> bool:
    try:
        parse_target_tokens(tokens, window_size, max_records, max_exons)
    except TargetParseError:
        return False
    return True


def _walk(grammar: TargetGrammar, rng: random.Random, eos_bias: float = 0.0) -> list[str]:
    """A random path through the automaton, token by token from the allowed mask."""
    state = grammar.start_state()
    tokens: list[str] = []
    while not grammar.is_final(state):
        ids = grammar.allowed_ids(state)
        assert len(ids) > 0, f"dead end after {tokens}"
        eos = grammar.id_of[inv.EOS]
        if eos in ids and rng.random() < eos_bias:
            token_id = eos
        else:
            token_id = int(rng.choice(list(ids)))
        tokens.append(grammar.token_of[token_id])
        state = grammar.advance(state, token_id)
    assert not grammar.allowed_mask(state).any()
    return tokens


@pytest.fixture(scope="module")
def toy_targets() -> list[tuple[int, list[str]]]:
    annotation = load_annotation(DATA / "genes.gff3", fasta_lengths(DATA / "genes.fa"))
    out = []
    for size in (120, 400, 1000):
        for start in range(0, 2000 - size + 1, size // 3):
            wa = window_annotation(annotation, "chr1", start, start + size)
            out.append((size, encode_target(wa)))
    return out


def test_every_encoded_target_is_accepted(toy_targets) -> None:
    for size, tokens in toy_targets:
        assert TargetGrammar(VOCAB, window_size=size).accepts(tokens)
        assert TargetGrammar(VOCAB).accepts(tokens)  # no window: the format's own limit


@pytest.mark.parametrize(
    ("window_size", "max_records", "max_exons"), [(40, 5, 4), (2500, 4, 3), (None, 3, 2)]
)
def test_random_walks_always_parse_and_reencode(window_size, max_records, max_exons) -> None:
    grammar = TargetGrammar(
        VOCAB, window_size=window_size, max_records=max_records, max_exons=max_exons
    )
    rng = random.Random(window_size or 0)
    shapes = set()
    for _ in range(150):
        tokens = _walk(grammar, rng, eos_bias=0.05)
        wa = parse_target_tokens(tokens, window_size, max_records, max_exons)
        assert encode_target(wa) == tokens
        shapes.add(tuple((type(r).__name__, getattr(r, "cds", None) is not None) for r in wa.records))
    assert len(shapes) > 20  # the walks explore many record mixes, not one path


def test_mutations_are_rejected_exactly_when_the_parser_rejects(toy_targets) -> None:
    rng = random.Random(11)
    limits = (1000, 8, 6)
    grammar = TargetGrammar(VOCAB, window_size=limits[0], max_records=limits[1], max_exons=limits[2])
    walker = TargetGrammar(VOCAB, window_size=limits[0], max_records=limits[1], max_exons=limits[2])
    sources = [t for size, t in toy_targets if size == 1000]
    sources += [_walk(walker, rng, eos_bias=0.1) for _ in range(40)]
    near = [inv.NUMBERS[v] for v in (0, 1, 2, 3, 999)] + [inv.TAB, inv.NEWLINE, inv.COORD_SEP,
                                                          inv.LINE_EXON, inv.LINE_CDS, inv.EOS]
    n_accepted = n_rejected = 0
    for _ in range(3000):
        tokens = list(rng.choice(sources))
        at = rng.randrange(len(tokens))
        kind = rng.random()
        pool = near if rng.random() < 0.5 else INVENTORY
        if kind < 0.5:
            tokens[at] = rng.choice(pool)
        elif kind < 0.75:
            del tokens[at]
        else:
            tokens.insert(at, rng.choice(pool))
        parsed = _parses(tokens, *limits)
        assert grammar.accepts(tokens) == parsed, tokens
        n_accepted += parsed
        n_rejected += not parsed
    assert n_accepted > 100 and n_rejected > 100  # both outcomes were exercised


def test_number_slots_constrain_coordinates() -> None:
    grammar = TargetGrammar(VOCAB, window_size=1500)
    state = grammar.start_state()
    for token in ["<bos>", "transcript", "\t", "+", "\t", "tRNA", "\t"]:
        state = grammar.advance_token(state, token)
    assert grammar.allowed_tokens(state) == ["0"]  # the first gene is gene 0
    for token in ["0", "\t", ".", "\n", "exon", "\t"]:
        state = grammar.advance_token(state, token)
    assert grammar.allowed_tokens(state) == ["0", "1"]  # thousands of a start < 1500
    state = grammar.advance_token(grammar.advance_token(state, "1"), ":")
    assert grammar.allowed_tokens(state) == [str(v) for v in range(500)]
    for token in ["499", "\t"]:
        state = grammar.advance_token(state, token)
    assert grammar.allowed_tokens(state) == ["1"]  # end in 1500..1500
    state = grammar.advance_token(grammar.advance_token(state, "1"), ":")
    assert grammar.allowed_tokens(state) == ["500"]
    state = grammar.advance_token(grammar.advance_token(state, "500"), "\n")
    # the exon reaches the window end: no further exon; cds, a new record or <eos>
    assert "exon" not in grammar.allowed_tokens(state)
    assert {"cds", "transcript", "<eos>"} <= set(grammar.allowed_tokens(state))
    with pytest.raises(ValueError, match="not allowed"):
        grammar.advance_token(state, "exon")


def test_record_limit_forces_the_end() -> None:
    grammar = TargetGrammar(VOCAB, max_records=1)
    state = grammar.start_state()
    for token in ["<bos>", "origin_of_replication", "\t", ".", "\t", "0", ":", "5", "\t", "0",
                  ":", "9", "\t", ".", "\n"]:
        state = grammar.advance_token(state, token)
    assert grammar.allowed_tokens(state) == ["<eos>"]
    state = grammar.advance_token(state, "<eos>")
    assert grammar.is_final(state) and grammar.allowed_tokens(state) == []


def test_mask_api_over_ids() -> None:
    grammar = TargetGrammar(VOCAB)
    state = grammar.start_state()
    mask = grammar.allowed_mask(state)
    assert mask.dtype == np.bool_ and mask.shape == (max(VOCAB.values()) + 1,)
    assert grammar.allowed_ids(state).tolist() == [VOCAB["<bos>"]]
    mask[:] = True  # callers may write into the mask they get
    assert grammar.allowed_ids(state).tolist() == [VOCAB["<bos>"]]
    with pytest.raises(ValueError):
        grammar.advance(state, VOCAB["<eos>"])
    with pytest.raises(ValueError, match="not a target-grammar token"):
        grammar.advance(state, 0)


def test_missing_vocabulary_token_is_named() -> None:
    vocab = dict(VOCAB)
    del vocab["cds"]
    with pytest.raises(TokenizerError, match="'cds'.*tokens append"):
        TargetGrammar(vocab)


def test_works_over_a_real_tokenizer(baking_tokenizer_dir: Path, toy_targets) -> None:
    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(baking_tokenizer_dir)
    grammar = TargetGrammar(tokenizer, window_size=1000)
    assert grammar.vocab_size == tokenizer.vocab_size
    for size, tokens in toy_targets:
        if size != 1000:
            continue
        state = grammar.start_state()
        for token_id in tokenizer.encode_target(tokens):
            assert grammar.allowed_mask(state)[token_id]
            state = grammar.advance(state, token_id)
        assert grammar.is_final(state)


def _random_states(grammar: TargetGrammar, rng: random.Random, walks: int) -> list:
    """Every state on ``walks`` random paths (with their coordinates, CDS spans and gene counts)."""
    states = []
    for _ in range(walks):
        state = grammar.start_state()
        while not grammar.is_final(state):
            states.append(state)
            ids = grammar.allowed_ids(state)
            eos = grammar.id_of[inv.EOS]
            token_id = eos if eos in ids and rng.random() < 0.03 else int(rng.choice(list(ids)))
            state = grammar.advance(state, token_id)
        states.append(state)
    return states


def _reference_allowed(grammar: TargetGrammar, state) -> set[str]:
    """The allowed tokens computed without memo or key: for a coordinate digit, every value of
    the line's allowed coordinate ranges is enumerated; other slots come from a fresh grammar."""
    from genoforge.genes.grammar import _TEMPLATES, COORD_BASE

    fresh = TargetGrammar(VOCAB, grammar.window_size, grammar.max_records, grammar.max_exons)
    if state.line in ("gap", "done"):
        return set(fresh.allowed_tokens(state))
    slot = _TEMPLATES[state.line][state.slot]
    if slot not in ("s_hi", "s_lo", "e_hi", "e_lo"):
        return set(fresh.allowed_tokens(state))
    values = [v for low, high in fresh._values(state, slot[0]) for v in range(low, high + 1)]
    if slot.endswith("_hi"):
        return {inv.NUMBERS[v // COORD_BASE] for v in values}
    return {inv.NUMBERS[v % COORD_BASE] for v in values if v // COORD_BASE == state.hi}


def test_memoised_masks_equal_the_uncached_computation_over_random_states(monkeypatch) -> None:
    """The memo (keyed by allowed_key, shared by grammars of every window size) gives the masks
    that an uncached, brute-force computation gives, also after the memo overflows and refills."""
    import genoforge.genes.grammar as grammar_module

    monkeypatch.setattr(grammar_module, "_DIGITS_MEMO_SIZE", 64)  # overflow often
    rng = random.Random(5)
    shared: dict = {}  # allowed_key -> mask, across grammars: what a decoder's mask table keeps
    checked = set()
    for window_size, max_records, max_exons in [(2500, 6, 5), (1001, 4, 3), (10_000, 8, 6), (999, 3, 9)]:
        grammar = TargetGrammar(VOCAB, window_size, max_records, max_exons)
        for state in _random_states(grammar, rng, walks=30):
            key = grammar.allowed_key(state)
            mask = grammar.mask_of_key(key)
            expected = _reference_allowed(grammar, state)
            assert {grammar.token_of[i] for i in np.flatnonzero(mask)} == expected, state
            assert (grammar.allowed_mask(state) == mask).all()
            if key in shared:
                assert (shared[key] == mask).all(), (key, state)
            shared[key] = mask
            checked.add(state)
    assert len(checked) > 2_000 and len(shared) > 200  # many states, many of them sharing keys


def test_keyed_advance_equals_advance() -> None:
    grammar = TargetGrammar(VOCAB, window_size=3000, max_records=5, max_exons=4)
    rng = random.Random(2)
    for state in _random_states(grammar, rng, walks=10):
        if grammar.is_final(state):
            continue
        key = grammar.allowed_key(state)
        for token_id in grammar.allowed_ids(state)[:5]:
            nxt, nxt_key = grammar.advance_keyed(state, key, int(token_id))
            assert nxt == grammar.advance(state, int(token_id))
            assert nxt_key == grammar.allowed_key(nxt)
        with pytest.raises(ValueError, match="not allowed"):
            grammar.advance_keyed(state, key, VOCAB[inv.COORD_SEP] if inv.COORD_SEP not in
                                  grammar.allowed_tokens(state) else VOCAB[inv.EOS])
