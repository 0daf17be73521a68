"""Grammar-constrained greedy decoding (genoforge/inference/decode.py, the grammar side, driven
by the one engine in genoforge/inference/stream.py) on random debug models.

The models are the debug preset over the bundled DNABERT-2 tokenizer plus the token inventory
(what `genoforge model init --preset debug` builds), with random weights: whatever such a model
prefers, the decoded targets must parse. The debug decoder's look-back (11 tokens) is shorter
than the targets decoded here, so the KV cache's ring buffer wraps.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from genoforge.errors import ConfigError
from genoforge.genes.target import parse_target_tokens
from genoforge.inference.decode import GrammarCache, encoder_batch
from genoforge.inference.stream import FullPrefixStep, check_max_new_tokens, decode_stream, decode_windows

from tests.tiny import build_debug_model, build_debug_model_dir

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Three random debug models (different seeds; the second without the coordinate pointer)
    and their tokenizer."""
    from genoforge.model.io import load_model
    from genoforge.tokenizer.core import GenoTokenizer

    root = tmp_path_factory.mktemp("decode_models")
    out = []
    for seed in range(3):
        changes = {"pointer_dim": 0} if seed == 1 else {}
        directory = build_debug_model_dir(root / f"m{seed}", seed, **changes)
        out.append(load_model(directory).eval())
    return out, GenoTokenizer.load(root / "m0")


def random_windows(seed: int, lengths) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice("ACGTacgtN") for _ in range(n)) for n in lengths]


LENGTHS = [1, 7, 37, 180, 650, 1_200]


def test_random_models_always_write_parsable_targets(models) -> None:
    model_list, tokenizer = models
    grammars = GrammarCache(tokenizer)
    records = 0
    for m, model in enumerate(model_list):
        windows = random_windows(m, LENGTHS)
        ids = [tokenizer.encode_dna(w) for w in windows]
        for prediction, length in zip(
            decode_windows(model, tokenizer, ids, LENGTHS, grammars=grammars, max_new_tokens=120), LENGTHS
        ):
            tokens = [tokenizer.id_to_token(i) for i in prediction.token_ids]
            assert tokens[0] == "<bos>" and tokens[-1] == "<eos>"
            # Parsed independently of decode_windows, with the window's own coordinate limit.
            assert parse_target_tokens(tokens, window_size=length) == prediction.annotation
            assert grammars(length).accepts(tokens)
            records += len(prediction.annotation.records)
    assert records > 0  # the models did write records, not just <bos><eos>


def test_masking_holds_against_logits_that_prefer_forbidden_tokens(models, monkeypatch) -> None:
    """A decoder whose top logits are all DNA tokens (never allowed in a target) and that never
    wants to stop still writes a target that parses (cut back at the token cap)."""
    model_list, tokenizer = models
    model = model_list[0]
    step = model.decoder.step
    dna = tokenizer.bp_lengths() > 0
    dna_ids = torch.from_numpy(np.flatnonzero(dna))

    def rigged(token_ids, cache, active):
        logits = step(token_ids, cache, active).clone()
        logits[:, dna_ids] += 1e4
        logits[:, tokenizer.eos_id] -= 1e4
        return logits

    monkeypatch.setattr(model.decoder, "step", rigged)
    ids = [tokenizer.encode_dna(w) for w in random_windows(5, [300, 90])]
    for p, length in zip(decode_windows(model, tokenizer, ids, [300, 90], max_new_tokens=80), [300, 90]):
        parse_target_tokens([tokenizer.id_to_token(i) for i in p.token_ids], window_size=length)
        assert not dna[p.token_ids].any()
        assert p.truncated  # the rigged step was used: it never lets a row end
        assert len(p.token_ids) > 2  # the rigged model still wrote records


def test_kv_cached_decoding_gives_the_same_tokens_as_uncached(models) -> None:
    model_list, tokenizer = models
    lengths = [640, 33, 1_000]
    ids = [tokenizer.encode_dna(w) for w in random_windows(11, lengths)]
    longest = 0
    for model in model_list:
        cached = decode_windows(model, tokenizer, ids, lengths, max_new_tokens=48, use_cache=True)
        uncached = decode_windows(model, tokenizer, ids, lengths, max_new_tokens=48, use_cache=False)
        assert [p.token_ids for p in cached] == [p.token_ids for p in uncached]
        longest = max(longest, *(len(p.token_ids) for p in cached))
    # Longer than twice the 11-token look-back: the ring buffer wrapped.
    assert longest > 2 * model_list[0].config.decoder_window_size


def test_continuous_batching_writes_the_same_tokens_as_uncached(models) -> None:
    """Rows refilled at different times (per-row positions, ring buffers and cross K/V) decode
    exactly what the uncached full forward over the whole prefix decodes, one row per window."""
    model_list, tokenizer = models
    lengths = [640, 33, 1_000, 250, 777]
    ids = [tokenizer.encode_dna(w) for w in random_windows(11, lengths)]
    sizes = []
    for model in model_list:
        uncached = decode_windows(model, tokenizer, ids, lengths, max_new_tokens=48, use_cache=False)
        streamed = dict(decode_stream(model, tokenizer, [(k, ids[k], lengths[k]) for k in range(5)],
                                      batch_size=2, max_new_tokens=48))
        assert [streamed[k].token_ids for k in range(5)] == [p.token_ids for p in uncached]
        assert [streamed[k].annotation for k in range(5)] == [p.annotation for p in uncached]
        sizes += [len(p.token_ids) for p in uncached]
    assert len(set(sizes)) > 2 and max(sizes) > 2 * model_list[0].config.decoder_window_size


def test_a_window_decodes_the_same_alone_and_in_a_padded_batch(models) -> None:
    model_list, tokenizer = models
    lengths = [500, 60, 900]
    ids = [tokenizer.encode_dna(w) for w in random_windows(3, lengths)]
    batch = decode_windows(model_list[1], tokenizer, ids, lengths, max_new_tokens=40, rows=5,
                           length_multiple=64)
    for k in range(3):
        alone = decode_windows(model_list[1], tokenizer, [ids[k]], [lengths[k]], max_new_tokens=40)
        assert alone[0].token_ids == batch[k].token_ids


def test_the_token_cap_cuts_back_to_the_last_complete_record(models) -> None:
    model_list, tokenizer = models
    ids = [tokenizer.encode_dna(w) for w in random_windows(2, [800])]
    # The random model that writes the longest target for this window, so the cap really cuts.
    model = max(model_list, key=lambda m: len(decode_windows(m, tokenizer, ids, [800], max_new_tokens=150)[0].token_ids))
    long = decode_windows(model, tokenizer, ids, [800], max_new_tokens=150)[0]
    short = decode_windows(model, tokenizer, ids, [800], max_new_tokens=25)[0]
    assert short.truncated
    assert short.token_ids[-1] == tokenizer.eos_id
    assert long.token_ids[: len(short.token_ids) - 1] == short.token_ids[:-1]  # greedy: a prefix
    assert short.annotation.records == long.annotation.records[: len(short.annotation.records)]
    assert len(short.token_ids) <= 26


def test_encoder_batch_offsets_follow_the_bases_of_each_token(models) -> None:
    _, tokenizer = models
    windows = ["ACGTACGTTTGACNNNNNNNNGGA", "TTAGC"]
    ids = [tokenizer.encode_dna(w) for w in windows]
    batch = encoder_batch(ids, tokenizer.bp_lengths(), tokenizer.pad_id, length_multiple=16, rows=3)
    assert tuple(batch["input_ids"].shape) == (3, 16)
    for b, w in enumerate(ids):
        bases = tokenizer.bp_lengths()[np.asarray(w)]
        assert batch["input_bp"][b, : len(w)].tolist() == [0, *np.cumsum(bases)[:-1].tolist()]
        assert batch["input_doc"][b, : len(w)].tolist() == [0] * len(w)
        assert batch["input_doc"][b, len(w) :].tolist() == [-1] * (16 - len(w))
    assert (batch["input_doc"][2] == -1).all()


def test_decoding_rejects_a_cap_beyond_the_cache(models) -> None:
    from genoforge.inference.predict_config import WINDOWLESS_MAX_NEW_TOKENS, PredictConfig
    from genoforge.inference.predictor import Predictor

    model_list, tokenizer = models
    model = model_list[0]
    ids = tokenizer.encode_dna("ACGT")
    with pytest.raises(ConfigError, match="max_new_tokens must be >= 1, got 0"):
        decode_windows(model, tokenizer, [ids], [4], max_new_tokens=0)
    with pytest.raises(ConfigError, match="max_new_tokens must be >= 1"):
        next(decode_stream(model, tokenizer, [(0, ids, 4)], batch_size=1, max_new_tokens=-3))
    # Without a decoder look-back the ring holds every position: the cap is bounded.
    windowless = build_debug_model(tokenizer, decoder_window_size=0).eval()
    beyond = WINDOWLESS_MAX_NEW_TOKENS + 1
    for use_cache in (True, False):
        with pytest.raises(ConfigError, match=f"max_new_tokens {beyond} does not fit the decode cache"):
            decode_windows(windowless, tokenizer, [ids], [4], max_new_tokens=beyond, use_cache=use_cache)
    with pytest.raises(ConfigError, match="does not fit the decode cache"):
        Predictor(windowless, tokenizer, PredictConfig(window_size=600, device="cpu", max_new_tokens=beyond))
    check_max_new_tokens(windowless.config, WINDOWLESS_MAX_NEW_TOKENS)  # the largest cap it takes
    check_max_new_tokens(model.config, 10 * WINDOWLESS_MAX_NEW_TOKENS)  # a look-back window: any cap
    predictions = decode_windows(windowless, tokenizer, [ids], [4], max_new_tokens=12)
    assert predictions[0].token_ids[0] == tokenizer.bos_id and predictions[0].token_ids[-1] == tokenizer.eos_id


def test_the_full_prefix_reference_refuses_a_refilled_row(models) -> None:
    """The reference knows each row's memory only as row b = window b: a second window in a row
    would be decoded against the first one's memory, so it is refused."""
    model_list, tokenizer = models
    model = model_list[0]
    lengths = [640, 33]
    ids = [tokenizer.encode_dna(w) for w in random_windows(11, lengths)]
    memory = model.encode(encoder_batch(ids[:1], tokenizer.bp_lengths(), tokenizer.pad_id))
    items = [(k, ids[k], lengths[k]) for k in range(2)]
    with pytest.raises(ValueError, match="one window per row"):
        list(decode_stream(model, tokenizer, items, batch_size=1, max_new_tokens=48, step=FullPrefixStep(memory)))


def test_pure_noise_logits_always_parse(models, monkeypatch) -> None:
    """Fresh random logits at every step (many grammar paths per window) still always parse."""
    model_list, tokenizer = models
    model = model_list[0]
    generator = torch.Generator().manual_seed(0)

    def noise(token_ids, cache, active):
        cache.position_B += 1
        return torch.randn(token_ids.shape[0], model.config.vocab_size, generator=generator) * 5

    monkeypatch.setattr(model.decoder, "step", noise)
    lengths = [random.Random(k).choice([1, 2, 999, 1_000, 1_001, 4_321]) for k in range(24)]
    ids = [tokenizer.encode_dna("A" * n) for n in lengths]
    grammars = GrammarCache(tokenizer, max_records=6, max_exons=4)
    predictions = decode_windows(model, tokenizer, ids, lengths, grammars=grammars, max_new_tokens=400)
    finished = 0
    for p, length in zip(predictions, lengths):
        tokens = [tokenizer.id_to_token(i) for i in p.token_ids]
        parse_target_tokens(tokens, window_size=length, max_records=6, max_exons=4)
        finished += not p.truncated
    assert finished > 0 and sum(len(p.annotation.records) for p in predictions) > 24


def test_stream_with_noise_logits_parses_and_returns_every_window(models) -> None:
    model_list, tokenizer = models
    generator = torch.Generator().manual_seed(1)

    def noise(model, token_ids, cache, active):
        cache.position_B += 1
        return torch.randn(token_ids.shape[0], model.config.vocab_size, generator=generator) * 5

    lengths = [random.Random(k).choice([1, 3, 999, 1_000, 1_001, 2_500]) for k in range(20)]
    items = [(k, tokenizer.encode_dna("C" * n), n) for k, n in enumerate(lengths)]
    grammars = GrammarCache(tokenizer, max_records=5, max_exons=3)
    results = dict(decode_stream(model_list[0], tokenizer, items, batch_size=3, max_new_tokens=300,
                                 grammars=grammars, step=noise))
    assert sorted(results) == list(range(20))
    for k, p in results.items():
        parse_target_tokens([tokenizer.id_to_token(i) for i in p.token_ids], window_size=lengths[k],
                            max_records=5, max_exons=3)
        assert len(p.token_ids) <= 301
    assert sum(len(p.annotation.records) for p in results.values()) > 20


def test_a_cut_drops_the_transcript_whose_exon_list_was_interrupted(models) -> None:
    """Cut inside a transcript block, the kept target must not show that transcript with fewer
    exons (which would parse as a whole, different transcript): the block is dropped."""
    from genoforge.genes.target import WindowAnnotation, WindowTranscript, encode_target
    from genoforge.inference.decode import cut_unfinished_record, record_start_ids

    _, tokenizer = models
    first = WindowTranscript(strand="+", biotype="protein_coding", gene=0, partial=".",
                             exons=((10, 50),), cds=(10, 50), cds_phase=0)
    second = WindowTranscript(strand="-", biotype="protein_coding", gene=1, partial=".",
                              exons=((100, 150), (200, 260), (300, 330)), cds=None, cds_phase=0)
    ids = tokenizer.encode_target(encode_target(WindowAnnotation(records=(first, second))))
    newlines = [i for i, t in enumerate(ids) if t == tokenizer.token_to_id("\n")]
    # Cut right after the second transcript's first exon line: its block parses, but is unfinished.
    cut_at = newlines[4] + 1  # tx1, exon, cds, tx2, exon1
    starts = record_start_ids(GrammarCache(tokenizer)(1000))
    kept = cut_unfinished_record(ids[:cut_at], starts, tokenizer.eos_id)
    parsed = parse_target_tokens([tokenizer.id_to_token(i) for i in kept], window_size=1000)
    assert parsed.records == (first,)
    # Nothing complete before the cut: only <bos><eos> remains.
    assert cut_unfinished_record(ids[:3], starts, tokenizer.eos_id) == [tokenizer.bos_id, tokenizer.eos_id]


def _reference_pick(logits_BV: torch.Tensor, masks: list[np.ndarray | None]) -> list[int]:
    """The per-row mask the decoder used before its mask table: a numpy [B, V] array built from
    each active row's ``allowed_mask`` (cut or padded with False), idle rows allowing anything."""
    width = logits_BV.shape[-1]
    allowed_BV = np.ones((len(masks), width), dtype=bool)
    for b, mask in enumerate(masks):
        if mask is not None:
            allowed_BV[b] = False
            allowed_BV[b, : min(width, mask.size)] = mask[:width]
    allowed = torch.from_numpy(allowed_BV)
    return logits_BV.float().masked_fill(~allowed, float("-inf")).argmax(dim=-1).tolist()


@pytest.mark.parametrize("extra_width", [0, 37, -1])
def test_grammar_rows_pick_what_per_row_masks_pick(extra_width) -> None:
    """Rows that start, finish, get cut and idle at random, over grammars of several window
    sizes, with a mask table small enough to be emptied and refilled many times: every pick and
    every state equal those of the per-row reference. The logits are wider than the grammar's
    vocabulary, as wide, or cut just above the last grammar token."""
    from genoforge.genes import inventory as inv
    from genoforge.genes.grammar import TargetGrammar
    from genoforge.inference.decode import GrammarRows

    vocab = {token: i + 7 for i, token in enumerate(inv.builtin_tokens())}
    grammars = [TargetGrammar(vocab, window_size=w, max_records=4, max_exons=3) for w in (40, 1_500, 10_000)]
    width = grammars[0].vocab_size + extra_width if extra_width >= 0 else max(grammars[0].token_of) + 1
    rng = random.Random(extra_width)
    generator = torch.Generator().manual_seed(3)
    rows_n = 12
    rows = GrammarRows(rows_n, "cpu", capacity=rows_n + 4)
    states: list = [None] * rows_n
    grammar_of: list = [None] * rows_n
    bos = vocab[inv.BOS]
    finished = resets = 0
    for _ in range(600):
        for b in range(rows_n):
            if grammar_of[b] is None and rng.random() < 0.5:
                grammar_of[b] = rng.choice(grammars)
                states[b] = grammar_of[b].advance(grammar_of[b].start_state(), bos)
                rows.start(b, grammar_of[b], bos)
        logits = torch.randn(rows_n, width, generator=generator) * 4
        masks = [None if g is None else g.allowed_mask(s) for g, s in zip(grammar_of, states)]
        table = rows._table
        picked = rows.pick(logits)
        resets += rows._table is not table and table is not None
        assert picked == _reference_pick(logits, masks)
        for b in range(rows_n):
            if grammar_of[b] is None:
                continue
            states[b] = grammar_of[b].advance(states[b], picked[b])
            done = rows.advance(b, picked[b])
            assert done == grammar_of[b].is_final(states[b])
            if done:
                finished += 1
                grammar_of[b] = None
            elif rng.random() < 0.01:  # cut by the token cap
                rows.stop(b)
                grammar_of[b] = None
            else:
                assert rows.states[b] == states[b]
    assert finished > 30 and resets > 3


def test_decoding_gives_the_tokens_of_the_per_row_mask_loop(models) -> None:
    """decode_windows writes, on random debug models (with and without the coordinate pointer),
    exactly the tokens of the step loop the mask table replaced: the model's cached step, each
    row's allowed_mask in a numpy array, argmax."""
    from genoforge.genes.grammar import TargetGrammar
    from genoforge.inference.decode import cut_unfinished_record, record_start_ids, window_dna
    from genoforge.inference.stream import add_base_fields
    from genoforge.model.decode_cache import RowCache

    model_list, tokenizer = models
    lengths = [700, 45, 1_000, 320]
    ids = [tokenizer.encode_dna(w) for w in random_windows(21, lengths)]
    cache_of_grammars = GrammarCache(tokenizer)
    grammars = [cache_of_grammars(length) for length in lengths]
    bos, eos, pad = tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id
    steps, rows = 60, 5
    for model in model_list[:2]:
        out = decode_windows(model, tokenizer, ids, lengths, max_new_tokens=steps, rows=rows)
        # The reference loop (every window loaded at step 0, one row each, one row idle), then the
        # same cut-back for rows the cap stopped.
        batch = encoder_batch(ids, tokenizer.bp_lengths(), pad, rows=rows)
        if model.pointer is not None:
            bases = [window_dna(tokenizer, w, n) for w, n in zip(ids, lengths)]
            add_base_fields(batch, bases, ids, tokenizer.bp_lengths(), "cpu")
        memory = model.encode_for_decoding(batch)
        kv = model.decoder.cross_kv(memory.states_BMD)
        cache = RowCache.empty(model.config, rows, memory.states_BMD.shape[1], "cpu", kv[0][0].dtype,
                               max_positions=steps + 1)
        for b in range(len(lengths)):
            cache.load(b, [k[b] for k, _ in kv], [v[b] for _, v in kv], memory.doc_BM[b] >= 0)
            if model.pointer is not None:
                cache.load_pointer(b, memory.pointer_keys_WLP[b, : lengths[b] + 1],
                                   memory.pointer_valid_WL[b, : lengths[b] + 1])
        states = [g.advance(g.start_state(), bos) for g in grammars]
        tokens = [[bos] for _ in lengths]
        last = [0] * (len(lengths) + 1)  # each row's last written coordinate (the pointer's length term)
        value_of = {tokenizer.token_to_id(str(v)): v for v in range(1_000)}
        current = torch.tensor([bos] * len(lengths) + [pad], dtype=torch.long)
        for _ in range(steps):
            masks = [None if g.is_final(s) else g.allowed_mask(s) for g, s in zip(grammars, states)]
            if all(m is None for m in masks):
                break
            active = torch.tensor([m is not None for m in masks] + [False])
            slots = [TargetGrammar.coordinate_slot(s) if m is not None else (0, 0)
                     for s, m in zip(states, masks)] + [(0, 0)]
            spans = [g.coordinate_range(s) if slot[0] else (0, -1)
                     for g, s, slot in zip(grammars, states, slots)] + [(0, -1)]
            cache.set_coordinate_slots([slot for slot, _ in slots], [hi for _, hi in slots], last,
                                       [low for low, _ in spans], [high for _, high in spans])
            picked = _reference_pick(model.step(current, cache, active), masks + [None])
            for b, mask in enumerate(masks):
                if mask is None:
                    picked[b] = pad
                else:
                    if slots[b][0] == 2:  # a lo digit: the coordinate is complete
                        last[b] = slots[b][1] * 1_000 + value_of[picked[b]]
                    states[b] = grammars[b].advance(states[b], picked[b])
                    tokens[b].append(picked[b])
            picked[-1] = pad
            current = torch.tensor(picked, dtype=torch.long)
        starts = record_start_ids(grammars[0])
        for b in range(len(lengths)):
            finished = grammars[b].is_final(states[b])
            assert out[b].truncated == (not finished)
            assert out[b].token_ids == (tokens[b] if finished else cut_unfinished_record(tokens[b], starts, eos))
        assert sum(len(t) for t in tokens) > 10 * len(lengths)


def test_grammar_rows_refuse_grammars_of_another_vocabulary() -> None:
    from genoforge.genes import inventory as inv
    from genoforge.genes.grammar import TargetGrammar
    from genoforge.inference.decode import GrammarRows

    vocab = {token: i for i, token in enumerate(inv.builtin_tokens())}
    shifted = {token: i + 1 for token, i in vocab.items()}
    rows = GrammarRows(2, "cpu")
    rows.start(0, TargetGrammar(vocab, window_size=100), vocab[inv.BOS])
    rows.start(1, TargetGrammar(dict(vocab), window_size=50), vocab[inv.BOS])  # equal mapping: fine
    with pytest.raises(ConfigError, match="share one vocabulary"):
        rows.start(1, TargetGrammar(shifted, window_size=100), shifted[inv.BOS])
    with pytest.raises(ConfigError, match="capacity"):
        GrammarRows(8, "cpu", capacity=8)
