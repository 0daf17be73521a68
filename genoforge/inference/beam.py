"""Beam search for the generative decoder: ``beam`` hypotheses per window, kept by their score.

A hypothesis's score is the sum of its tokens' log-probabilities under the grammar-masked
logits the greedy decoder picks from (:func:`~genoforge.inference.stream.decode_stream`): the
decoder's own, plus, with head guidance, the per-base head's terms
(:mod:`genoforge.inference.head_guide`), so the head's agreement with the decoded structure is
part of the score. Every step, each window keeps the ``beam`` best continuations of its live
hypotheses; one that writes ``<eos>`` is finished. A window is done when ``FINISHED_PER_BEAM``
x ``beam`` hypotheses have finished or none is live, and its finished hypothesis of the best
score per token is its prediction (the plain sum would prefer an empty target to any gene),
with guidance plus the guide weight x the mean log-probability that the guide's per-base view
(the head's, or the HMM parse's) gives the classes of its decoded structure
(:func:`head_agreement`): the stepwise scores are normalised token by token, so they alone
cannot tell which whole structure the head agrees with. A window that reaches
``max_new_tokens`` first keeps its best live one, cut back to its last complete record, as the
greedy decoder does.

Windows are decoded ``windows_per_batch`` at a time, each on ``beam`` rows of the decode cache;
the cache, the grammar rows and (for the reference step) the fed tokens follow each
hypothesis's parent after every step. With ``beam`` 1 this is the greedy decoder (a test checks
it token for token).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any

import torch

from genoforge.genes.target import parse_target_tokens
from genoforge.inference.decode import (
    GrammarCache,
    GrammarRows,
    WindowPrediction,
    cut_unfinished_record,
    record_start_ids,
)
from genoforge.inference.stream import (
    _Row,
    add_structure_terms,
    check_max_new_tokens,
    encode_chunk,
    guided_slots,
    row_step,
)
from genoforge.model.decode_cache import RowCache

if TYPE_CHECKING:
    from genoforge.inference.hmm_anchor import ViterbiAnchor

# A window stops once this many x beam hypotheses have finished (beam > 1): a hypothesis that
# skips a gene finishes first, and stopping at the first ``beam`` of them loses the ones still
# writing it (measured: guided by the HMM parse at beam 2, a long gene came out in 3 pieces).
FINISHED_PER_BEAM = 4


@torch.no_grad()
def decode_beam(
    model,
    tokenizer,
    windows: Iterable[tuple[Any, list[int], int]],
    *,
    beam: int,
    windows_per_batch: int,
    max_new_tokens: int,
    grammars: GrammarCache | None = None,
    length_multiple: int = 1,
    step: Callable | None = None,
    guide_weight: float = 0.0,
    anchor: ViterbiAnchor | None = None,
) -> Iterator[tuple[Any, WindowPrediction]]:
    """Decode windows (as :func:`~genoforge.inference.stream.decode_stream` takes them) with
    beam search; yields ``(key, prediction)`` in input order, every prediction parses.

    ``step`` replaces :func:`~genoforge.inference.stream.row_step`; one with a ``reorder``
    method (the full-prefix reference) is told each step's parents. ``guide_weight`` and
    ``anchor``: head guidance, as for ``decode_stream``.
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    check_max_new_tokens(model.config, max_new_tokens)
    grammars = grammars or GrammarCache(tokenizer)
    step = step or row_step
    source = iter(windows)
    while True:
        chunk = list(islice(source, windows_per_batch))
        if not chunk:
            return
        yield from _decode_chunk(model, tokenizer, chunk, beam, max_new_tokens, grammars, length_multiple, step,
                                 guide_weight, anchor)


def _decode_chunk(model, tokenizer, chunk: Sequence[tuple], beam: int, max_new_tokens: int, grammars: GrammarCache,
                  length_multiple: int, step: Callable, guide_weight: float,
                  anchor: ViterbiAnchor | None = None) -> Iterator[tuple[Any, WindowPrediction]]:
    device = next(model.parameters()).device
    bos, eos, pad = tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id
    record_starts = record_start_ids(grammars(None))
    pointer = getattr(model, "pointer", None) is not None
    guided = pointer and guide_weight > 0
    encoded, width, dtype = encode_chunk(model, tokenizer, chunk, device, rows=None, length_multiple=length_multiple,
                                         signals=grammars.signals, guide_weight=guide_weight,
                                         anchor=anchor, keep_view=beam > 1)
    n_rows = len(encoded) * beam
    cache = RowCache.empty(model.config, n_rows, width, device, dtype, max_positions=max_new_tokens + 1)
    grammar_rows = GrammarRows(n_rows, device)
    rows: list[_Row | None] = []
    for w, window in enumerate(encoded):
        for k in range(beam):
            b = w * beam + k
            cache.load(b, window.cross_k, window.cross_v, window.memory_ok_M)
            if window.pointer_keys_LP is not None:
                cache.load_pointer(b, window.pointer_keys_LP, window.pointer_valid_L, window.guide_RL)
            grammar_rows.start(b, grammars.for_window(window.length, window.bases), bos)
            rows.append(_Row(window.key, window.length, [bos], window.structure))
    # at the first step only each window's first row is live (its copies would repeat it)
    scores = torch.full((len(encoded), beam), float("-inf"), device=device)
    scores[:, 0] = 0.0
    live = [[k == 0 for k in range(beam)] for _ in encoded]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in encoded]
    enough = beam if beam == 1 else FINISHED_PER_BEAM * beam  # beam 1 stays the greedy decoder
    done = [False] * len(encoded)
    current = torch.full((n_rows,), bos, dtype=torch.long, device=device)
    for _ in range(max_new_tokens):
        active = [not done[b // beam] and live[b // beam][b % beam] for b in range(n_rows)]
        if not any(active):
            break
        visible = [r if a else None for r, a in zip(rows, active, strict=True)]  # the rows decoded now
        if pointer:
            lows, highs, tracks = grammar_rows.coordinate_lows, grammar_rows.coordinate_highs, None
            if guided:
                lows, highs, tracks = guided_slots(visible, grammar_rows, cache)
            cache.set_coordinate_slots(grammar_rows.coordinate_slots, grammar_rows.coordinate_his,
                                       grammar_rows.last_coordinates, lows, highs, tracks)
        logits = step(model, current, cache, torch.tensor(active, device=device))
        if guided:
            logits = add_structure_terms(logits, visible, grammar_rows, tokenizer)
        log_probs = torch.log_softmax(grammar_rows.masked_logits(logits), dim=-1)
        vocab = log_probs.shape[-1]
        alive = torch.tensor(active, device=device).view(len(encoded), beam)
        total = torch.where(alive[..., None], scores[..., None] + log_probs.view(len(encoded), beam, vocab),
                            float("-inf"))
        top_scores, top_index = total.view(len(encoded), -1).topk(min(2 * beam, beam * vocab), dim=-1)
        top_scores, top_index = top_scores.tolist(), top_index.tolist()  # the step's one host sync
        parents = list(range(n_rows))
        picked = [pad] * n_rows
        new_scores = [[float("-inf")] * beam for _ in encoded]
        new_live = [[False] * beam for _ in encoded]
        for w in range(len(encoded)):
            if done[w]:
                continue
            slot = 0
            for score, index in zip(top_scores[w], top_index[w], strict=True):
                if score == float("-inf") or slot == beam:
                    break
                parent, token = w * beam + index // vocab, index % vocab
                if token == eos:
                    finished[w].append((score, rows[parent].tokens + [eos]))
                    continue
                b = w * beam + slot
                parents[b], picked[b] = parent, token
                new_scores[w][slot], new_live[w][slot] = score, True
                slot += 1
            if len(finished[w]) >= enough or slot == 0:
                done[w] = True
        parents_t = torch.tensor(parents, device=device)
        cache.reorder(parents_t)
        grammar_rows.reorder(parents)
        if hasattr(step, "reorder"):
            step.reorder(parents_t)
        rows = [_copy_row(rows[p]) for p in parents]
        for b, token in enumerate(picked):
            w = b // beam
            if done[w] or not new_live[w][b % beam]:
                continue
            rows[b].tokens.append(token)
            grammar_rows.advance(b, token)
        scores = torch.tensor(new_scores, device=device)
        live = new_live
        current = torch.tensor(picked, dtype=torch.long, device=device)
        if all(done):
            break
    for w, window in enumerate(encoded):
        if finished[w]:
            view = window.class_log_probs_LC if guided else None
            tokens, truncated = max(finished[w], key=lambda item: _rank(item, view, guide_weight, tokenizer,
                                                                        window.length, grammars))[1], False
        else:  # the cap came first: the best live hypothesis, cut back
            best = max(range(beam), key=lambda k: scores[w, k].item())
            tokens, truncated = cut_unfinished_record(rows[w * beam + best].tokens, record_starts, eos), True
        strings = [tokenizer.id_to_token(i) for i in tokens]
        annotation = parse_target_tokens(strings, window_size=window.length, max_records=grammars.max_records,
                                         max_exons=grammars.max_exons)
        yield window.key, WindowPrediction(tokens, annotation, truncated)


def _per_token(item: tuple[float, list[int]]) -> float:
    """A finished hypothesis's score per token written (after ``<bos>``): a sum alone would
    favour writing nothing (``<eos>`` at once) over any gene."""
    score, tokens = item
    return score / max(1, len(tokens) - 1)


def _rank(item: tuple[float, list[int]], view_LC, guide_weight: float, tokenizer, length: int,
          grammars: GrammarCache) -> float:
    """A finished hypothesis's rank: its score per token, plus, when guided, ``guide_weight`` x
    its structure's agreement with the guide's per-base view (:func:`head_agreement`)."""
    rank = _per_token(item)
    if view_LC is None or guide_weight <= 0:
        return rank
    strings = [tokenizer.id_to_token(i) for i in item[1]]
    annotation = parse_target_tokens(strings, window_size=length, max_records=grammars.max_records,
                                     max_exons=grammars.max_exons)
    return rank + guide_weight * head_agreement(annotation, view_LC)


def head_agreement(annotation, view_LC) -> float:
    """Mean per-base log-probability, under a per-base view (natural-log class probabilities
    [L, C], intron phases pooled: :func:`~genoforge.inference.stream.pooled_view`), of the classes
    that ``annotation``'s transcripts give the window (intergenic elsewhere): 0 when the view is
    certain of exactly that structure, lower the more bases it places in another class."""
    import numpy as np

    from genoforge.genes.classes import window_labels
    from genoforge.genes.window_models import WindowTranscript

    transcripts = [r for r in annotation.records if isinstance(r, WindowTranscript)]
    labels = window_labels(transcripts, 0, view_LC.shape[0]).astype(np.int64)
    return float(view_LC[np.arange(labels.size), labels].mean()) if labels.size else 0.0


def _copy_row(row: _Row) -> _Row:
    return _Row(row.key, row.length, list(row.tokens), row.structure, row.span, row.track)
