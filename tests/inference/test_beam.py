"""Beam search: beam 1 is the greedy decoder token for token, the KV-cached beam equals the
full-prefix reference, and every hypothesis it returns parses and keeps the signal grammar's rules."""

from __future__ import annotations

import random

import pytest

from genoforge.genes.signal_check import signal_violations
from genoforge.inference.beam import decode_beam
from genoforge.inference.decode import GrammarCache
from genoforge.inference.stream import (
    FullPrefixStep,
    decode_stream,
    encoder_batch,
    row_step,
)
from tests.inference.coding_bias import coding_step
from tests.tiny import build_debug_model, write_tokenizer_dir

LENGTHS = [1_400, 700, 2_000]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from genoforge.tokenizer.core import GenoTokenizer

    tokenizer = GenoTokenizer.load(write_tokenizer_dir(tmp_path_factory.mktemp("tok")))
    model = build_debug_model(tokenizer, 3).eval()
    rng = random.Random(2)
    seqs = ["".join(rng.choice("ACGT") for _ in range(n)) for n in LENGTHS]
    windows = [(k, tokenizer.encode_dna(s), len(s), s) for k, s in enumerate(seqs)]
    return tokenizer, model, windows


@pytest.mark.parametrize("guide_weight", [0.0, 0.7])
def test_beam_one_is_the_greedy_decoder(setup, guide_weight) -> None:
    tokenizer, model, windows = setup
    greedy = dict(decode_stream(model, tokenizer, windows, batch_size=3, max_new_tokens=160,
                                grammars=GrammarCache(tokenizer, signals=True), step=coding_step(tokenizer, row_step),
                                guide_weight=guide_weight))
    beam = dict(decode_beam(model, tokenizer, windows, beam=1, windows_per_batch=2, max_new_tokens=160,
                            grammars=GrammarCache(tokenizer, signals=True), step=coding_step(tokenizer, row_step),
                            guide_weight=guide_weight))
    assert {k: p.token_ids for k, p in beam.items()} == {k: p.token_ids for k, p in greedy.items()}
    assert {k: p.truncated for k, p in beam.items()} == {k: p.truncated for k, p in greedy.items()}
    assert sum(len(p.token_ids) for p in beam.values()) > 60


def test_cached_beam_equals_the_full_prefix_reference(setup) -> None:
    tokenizer, model, windows = setup
    beam = 3
    cached = dict(decode_beam(model, tokenizer, windows, beam=beam, windows_per_batch=3, max_new_tokens=90,
                              step=coding_step(tokenizer, row_step), guide_weight=0.7))
    # the reference re-reads every row's whole prefix; row b decodes window b // beam
    ids = [w[1] for w in windows for _ in range(beam)]
    memory = model.encode(encoder_batch(ids, tokenizer.bp_lengths(), tokenizer.pad_id, "cpu"))
    reference = dict(decode_beam(model, tokenizer, windows, beam=beam, windows_per_batch=3, max_new_tokens=90,
                                 step=coding_step(tokenizer, FullPrefixStep(memory)), guide_weight=0.7))
    assert {k: p.token_ids for k, p in cached.items()} == {k: p.token_ids for k, p in reference.items()}


def test_beam_hypotheses_parse_and_keep_the_signal_rules(setup) -> None:
    tokenizer, model, windows = setup
    out = dict(decode_beam(model, tokenizer, windows, beam=4, windows_per_batch=2, max_new_tokens=300,
                           grammars=GrammarCache(tokenizer, signals=True), step=coding_step(tokenizer, row_step)))
    assert sorted(out) == [0, 1, 2]
    for key, _, _, bases in windows:
        assert out[key].token_ids[0] == tokenizer.bos_id
        assert signal_violations(out[key].annotation, bases, clip_in_introns=False) == []


def test_head_agreement_is_highest_for_the_structure_the_view_holds() -> None:
    """The beam's rescoring term: the planted gene's own structure agrees with a view made from
    its labels (near 0), ahead of the same gene shifted by 3 bp, a gene missing, or nothing."""
    import numpy as np
    import torch

    from genoforge.genes import inventory as inv
    from genoforge.genes.classes import N_CLASSES, window_labels
    from genoforge.genes.window_models import WindowAnnotation, WindowTranscript
    from genoforge.inference.beam import head_agreement
    from genoforge.inference.stream import pooled_view

    def gene(shift: int) -> WindowTranscript:
        exons = ((40 + shift, 90 + shift), (150 + shift, 199 + shift))
        return WindowTranscript("+", inv.PROTEIN_CODING, 0, ".", exons, (40 + shift, 199 + shift), 0)

    other = WindowTranscript("-", inv.PROTEIN_CODING, 1, ".", ((260, 350),), (260, 350), 0)
    truth = WindowAnnotation((gene(0), other))
    labels = window_labels([gene(0), other], 0, 400)
    probs = torch.full((1, 400, N_CLASSES), 0.01 / (N_CLASSES - 1))
    probs[0, np.arange(400), torch.from_numpy(labels.astype(np.int64))] = 0.99
    view = pooled_view(probs)[0]
    scores = {name: head_agreement(annotation, view) for name, annotation in {
        "truth": truth, "shifted": WindowAnnotation((gene(3), other)), "one missing": WindowAnnotation((other,)),
        "empty": WindowAnnotation(())}.items()}
    assert scores["truth"] == pytest.approx(np.log(0.99), abs=1e-3)
    assert scores["truth"] > scores["shifted"] and scores["truth"] > scores["one missing"] > scores["empty"]
