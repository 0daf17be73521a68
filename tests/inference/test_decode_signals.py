"""Generative decoding with the signal grammar: on random weights every CDS written is a complete
ORF and every intron of a coding transcript sits at a canonical splice site."""

from __future__ import annotations

import random

import pytest

from genoforge.genes.signal_check import signal_violations
from genoforge.genes.window_models import WindowTranscript
from genoforge.inference.decode import GrammarCache
from genoforge.inference.stream import decode_stream
from tests.inference.coding_bias import coding_step
from tests.tiny import build_debug_model, write_tokenizer_dir

LENGTHS = [1_500, 900, 2_400, 1_200, 3_000, 600]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from genoforge.tokenizer.core import GenoTokenizer

    return GenoTokenizer.load(write_tokenizer_dir(tmp_path_factory.mktemp("tok")))


def _windows(tokenizer, seed: int = 5):
    rng = random.Random(seed)
    seqs = ["".join(rng.choice("ACGT") for _ in range(n)) for n in LENGTHS]
    return [(k, tokenizer.encode_dna(s), len(s), s) for k, s in enumerate(seqs)]


def _decode(model, tokenizer, signals: bool):
    windows = _windows(tokenizer)
    out = dict(decode_stream(model, tokenizer, windows, batch_size=3, max_new_tokens=400,
                             grammars=GrammarCache(tokenizer, signals=signals), step=coding_step(tokenizer)))
    return windows, out


@pytest.mark.parametrize("seed", [3, 5])
def test_every_cds_written_is_a_complete_orf_with_canonical_introns(tokenizer, seed) -> None:
    model = build_debug_model(tokenizer, seed).eval()
    windows, out = _decode(model, tokenizer, signals=True)
    coding = spliced = 0
    for key, _, _, bases in windows:
        annotation = out[key].annotation
        assert signal_violations(annotation, bases, clip_in_introns=False) == []
        for record in annotation.records:
            if isinstance(record, WindowTranscript) and record.cds is not None and record.partial == ".":
                coding += 1
                spliced += len(record.exons) > 1
    assert coding >= 5 and spliced >= 1, (coding, spliced)


def test_without_the_signal_grammar_the_same_decoder_breaks_the_rules(tokenizer) -> None:
    """The check above can fail: the plain grammar lets the same biased random model write CDS
    off ATG and introns off GT-AG."""
    model = build_debug_model(tokenizer, 0).eval()
    windows, out = _decode(model, tokenizer, signals=False)
    problems = sum(len(signal_violations(out[key].annotation, bases, clip_in_introns=False))
                   for key, _, _, bases in windows)
    assert problems > 0


def test_signal_decoding_with_the_cache_equals_the_full_prefix_reference(tokenizer) -> None:
    """The KV-cached step and the reference that reruns the whole prefix write the same tokens
    under the signal grammar (one row per window, as decode_windows lays them)."""
    from genoforge.inference.decode import encoder_batch
    from genoforge.inference.stream import FullPrefixStep

    model = build_debug_model(tokenizer, 5).eval()
    windows = _windows(tokenizer)[:3]
    biased = coding_step(tokenizer)
    cached = dict(decode_stream(model, tokenizer, windows, batch_size=3, max_new_tokens=200,
                                grammars=GrammarCache(tokenizer, signals=True), pad_encoder_rows=True,
                                step=biased))
    batch = encoder_batch([w[1] for w in windows], tokenizer.bp_lengths(), tokenizer.pad_id, rows=3)
    reference = coding_step(tokenizer, FullPrefixStep(model.encode(batch)))
    full = dict(decode_stream(model, tokenizer, windows, batch_size=3, max_new_tokens=200,
                              grammars=GrammarCache(tokenizer, signals=True), pad_encoder_rows=True,
                              step=reference))
    assert [cached[k].token_ids for k in range(3)] == [full[k].token_ids for k in range(3)]
    assert any(len(cached[k].token_ids) > 20 for k in range(3))
