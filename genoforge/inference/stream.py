"""The decode engine: continuous batching of windows, each row refilled as its window ends.

Shape legend: B batch rows, M memory tokens per window, T decoded tokens, V vocabulary.

Every decoding path runs through :func:`decode_stream`: predict (:mod:`genoforge.inference.
predictor`, windows streamed from a genome), generative validation during training and the tests
(:func:`decode_windows`, one batch of windows held in memory), and the benchmarks.

Why continuous batching: target lengths vary a lot (10 kb windows of the shared genomes: mean
~230 tokens, but the fly's 99th percentile is ~2,100). Decoded in lockstep, a batch runs as long
as its longest window, so most rows idle; here a row that finishes takes the next window at once,
and the cost follows the mean length instead of the maximum.

The step: :func:`row_step`, the model's cached decoder step
(:meth:`genoforge.model.decoder.GenoforgeDecoder.step`: one token per row, each row at its own
position; the state is a :class:`~genoforge.model.decode_cache.RowCache`, each row's
cross-attention keys and values computed once when its window is loaded). On CUDA it is replayed
from a captured graph (:mod:`genoforge.inference.cuda_graphs`). :class:`FullPrefixStep` is the
reference it is tested against: no cache, the decoder's training forward over each row's whole
prefix at every step (``decode_windows(use_cache=False)``); tests check that both write the same
tokens.

Grammar, token cap and truncation: :mod:`genoforge.inference.decode`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genoforge.errors import ConfigError
from genoforge.genes.classes import INTRON_MINUS, INTRON_PLUS, N_CLASSES
from genoforge.genes.grammar import ROLE_CDS_START, SLOT_HI, SLOT_NONE
from genoforge.genes.target import parse_target_tokens
from genoforge.inference.decode import (
    DEFAULT_MAX_NEW_TOKENS,
    GrammarCache,
    GrammarRows,
    WindowPrediction,
    cut_unfinished_record,
    encoder_batch,
    record_start_ids,
    window_dna,
)
from genoforge.inference.head_guide import (
    ROW_TRACK,
    StructureGuide,
    guide_tracks,
    structure_tracks,
)
from genoforge.inference.hmm_anchor import (
    ANCHOR_BARRIER_RUN,
    ANCHOR_CODING_MIN,
    ANCHOR_CODING_SCALE,
)
from genoforge.inference.predict_config import WINDOWLESS_MAX_NEW_TOKENS
from genoforge.model.attention import cross_mask, decoder_self_mask
from genoforge.model.decode_cache import RowCache

if TYPE_CHECKING:
    from genoforge.inference.hmm_anchor import ViterbiAnchor


def row_step(model, token_ids_B: Tensor, cache: RowCache, active_B: Tensor) -> Tensor:
    """Logits [B, V] of the next token of every row, each at its own position: the model's
    cached decoder step (:meth:`genoforge.model.model.GenoforgeModel.step`: the decoder's, with
    the coordinate pointer's number logits at coordinate slots).

    Rows where ``active_B`` is False are computed on padding and must be ignored.
    """
    return model.step(token_ids_B, cache, active_B)


def check_max_new_tokens(config, max_new_tokens: int) -> None:
    """Refuse a token cap below 1, or one the decode cache of ``config``'s decoder cannot hold.

    Without a decoder look-back window (``decoder_window_size`` 0) the ring keeps every position
    (``max_new_tokens + 1`` slots, all read at every step), so the cap is bounded by
    :data:`~genoforge.inference.predict_config.WINDOWLESS_MAX_NEW_TOKENS`.

    Raises:
        ConfigError: either bound is crossed.
    """
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if config.decoder_window_size == 0 and max_new_tokens > WINDOWLESS_MAX_NEW_TOKENS:
        raise ConfigError(
            f"max_new_tokens {max_new_tokens} does not fit the decode cache of a model without a "
            f"decoder window ({WINDOWLESS_MAX_NEW_TOKENS:,} positions); use --max_new_tokens "
            f"{WINDOWLESS_MAX_NEW_TOKENS} or less"
        )


@dataclass
class _EncodedWindow:
    key: Any
    length: int
    cross_k: list[Tensor]  # per layer [G, M, d]
    cross_v: list[Tensor]
    memory_ok_M: Tensor
    pointer_keys_LP: Tensor | None = None  # the coordinate pointer's boundary keys [L + 1, P]
    pointer_valid_L: Tensor | None = None
    bases: str | None = None  # the window's sequence, for a signal grammar
    guide_RL: Tensor | None = None  # head guidance: the scaled guide tracks [R, L + 1]
    structure: StructureGuide | None = None  # ... and its structure terms (host)
    class_log_probs_LC: np.ndarray | None = None  # ... and the guide's per-base view (a beam's rescoring)


@dataclass
class _Row:
    key: Any
    length: int
    tokens: list[int]
    structure: StructureGuide | None = None  # head guidance's structure terms (host)
    span: tuple[int, int] = (0, -1)  # ... and the span of the coordinate being written
    track: int = 0  # ... and its guide track


def encode_chunk(model, tokenizer, chunk: Sequence[tuple], device, *, rows: int | None, length_multiple: int,
                 signals: bool, guide_weight: float, anchor: ViterbiAnchor | None = None,
                 keep_view: bool = False) -> tuple[list[_EncodedWindow], int, torch.dtype]:
    """Encode ``(key, ids, length[, bases])`` windows together: (their decoding inputs, the
    memory width, the cross K/V dtype). ``rows`` pads the encoder batch; ``signals``: keep each
    window's bases for a signal grammar; ``guide_weight`` > 0: head guidance's tracks, built from
    the head's view, or from the HMM's parse of each window with an ``anchor``
    (:mod:`genoforge.inference.hmm_anchor`); ``keep_view``: keep that view's per-base class
    log-probabilities on the host, intron phases pooled (:func:`pooled_view`), for a beam's
    agreement score."""
    pointer = getattr(model, "pointer", None) is not None
    guided = pointer and guide_weight > 0
    bp_lengths = tokenizer.bp_lengths()
    out: list[_EncodedWindow] = []
    ids = [item[1] for item in chunk]
    batch = encoder_batch(ids, bp_lengths, tokenizer.pad_id, device, length_multiple=length_multiple, rows=rows)
    bases = [window_bases(tokenizer, item) for item in chunk] if pointer or signals else None
    if pointer:
        add_base_fields(batch, bases, [item[1] for item in chunk], bp_lengths, device)
    memory = model.encode_for_decoding(batch)
    kv = model.decoder.cross_kv(memory.states_BMD)
    ok = memory.doc_BM >= 0
    if guided:
        if memory.base_logits_WLK is None:
            raise ConfigError("head guidance needs the model's per-base head")
        if anchor is None:
            terms = guide_tracks(memory.base_logits_WLK, batch["base_mask"])
            probs = torch.softmax(memory.base_logits_WLK[..., :N_CLASSES].float(), dim=-1) if keep_view else None
        else:
            probs, sites = anchor.guide_inputs(memory.base_logits_WLK, [item[2] for item in chunk], bases,
                                               [item[0] for item in chunk])
            terms = structure_tracks(probs, sites, batch["base_mask"])
        view = pooled_view(probs) if keep_view else None
        guide = F.pad(terms.tracks * guide_weight, (0, 0, 0, 1))  # + the row track (ROW_TRACK)
        # the structure terms, segment barriers and ORF scores work on the host
        splice, coding, exon, frame, cds_low, genic = (
            t.cpu().numpy() for t in (terms.splice, terms.coding, terms.exon, terms.frame, terms.cds_low, terms.genic))
        evidence = {} if anchor is None else {"coding_min": ANCHOR_CODING_MIN, "coding_scale": ANCHOR_CODING_SCALE,
                                         "barrier_run": ANCHOR_BARRIER_RUN}
    for i, item in enumerate(chunk):
        key, length = item[0], item[2]
        window = _EncodedWindow(key, length, [k[i] for k, _ in kv], [v[i] for _, v in kv], ok[i])
        if pointer:
            window.pointer_keys_LP = memory.pointer_keys_WLP[i, : length + 1]
            window.pointer_valid_L = memory.pointer_valid_WL[i, : length + 1]
        if signals and bases is not None:
            window.bases = bases[i]
        if guided:
            window.guide_RL = guide[i, :, : length + 1]
            window.structure = StructureGuide(splice[i, :, : length + 1], coding[i, :, : length + 1],
                                              exon[i, :, :length], guide_weight, frame[i, :, :, :length],
                                              cds_low[i, :, : length + 1], genic[i, :, :length], **evidence)
            if view is not None:
                window.class_log_probs_LC = view[i, :length]
        out.append(window)
    return out, memory.states_BMD.shape[1], kv[0][0].dtype


def pooled_view(probs_WLC: Tensor) -> np.ndarray:
    """float32 [W, L, C] natural-log class probabilities with each strand's intron phases pooled
    (every intron column holds the strand's total), on the host: a decoded structure's phases come
    from its frame, which a per-base view hardly sees inside an intron."""
    probs = probs_WLC.float().clone()
    for phases in (INTRON_PLUS, INTRON_MINUS):
        columns = list(phases)
        probs[..., columns] = probs[..., columns].sum(dim=-1, keepdim=True)
    return torch.log(probs.clamp_min(1e-12)).cpu().numpy()


@torch.no_grad()
def decode_stream(
    model,
    tokenizer,
    windows: Iterable[tuple[Any, list[int], int]],
    *,
    batch_size: int,
    max_new_tokens: int,
    grammars: GrammarCache | None = None,
    length_multiple: int = 1,
    pad_encoder_rows: bool = False,
    step: Callable | None = None,
    guide_weight: float = 0.0,
    anchor: ViterbiAnchor | None = None,
) -> Iterator[tuple[Any, WindowPrediction]]:
    """Decode windows with continuous batching; yields ``(key, prediction)`` as windows finish.

    Args:
        model: a GenoforgeModel in eval mode (its device and dtype are used).
        tokenizer: its GenoTokenizer.
        windows: ``(key, encoder ids, window length in bp)`` per window, or ``(key, ids,
            length, bases)`` with the window's sequence, consumed lazily (``batch_size`` windows
            are encoded together when rows free up). A model with a coordinate pointer reads
            the bases (from the ids when not given: :func:`~genoforge.inference.decode.window_dna`).
        batch_size: decoder rows (windows decoded at once) and encoder batch.
        max_new_tokens: decoder steps per window at most (tokens after ``<bos>``, ``<eos>``
            included; module docstring of :mod:`genoforge.inference.decode`).
        length_multiple, pad_encoder_rows: fixed encoder shapes (for compiled kernels on CUDA).
        step: replaces :func:`row_step`: a :class:`~genoforge.inference.cuda_graphs.
            GraphedRowStep`, the :class:`FullPrefixStep` reference, or a test's.
        guide_weight: with a coordinate pointer and a per-base head, add this times the head's
            guide terms to the decoder's choices (:mod:`genoforge.inference.head_guide`); 0 off.
        anchor: build the guide terms from the HMM's parse of each window instead of the head's
            raw view (:class:`~genoforge.inference.hmm_anchor.ViterbiAnchor`).

    Results come in completion order, not input order; every prediction parses.

    Raises:
        ConfigError: ``max_new_tokens`` is below 1 or beyond the decode cache
            (:func:`check_max_new_tokens`).
    """
    check_max_new_tokens(model.config, max_new_tokens)
    grammars = grammars or GrammarCache(tokenizer)
    record_starts = record_start_ids(grammars(None))
    step = step or row_step
    parameter = next(model.parameters())
    device = parameter.device
    bos, eos, pad = tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id
    source = iter(windows)
    queue: deque[_EncodedWindow] = deque()
    exhausted = False
    cache: RowCache | None = None
    rows: list[_Row | None] = [None] * batch_size
    grammar_rows = GrammarRows(batch_size, device)  # each row's grammar state and mask
    current_B = torch.full((batch_size,), pad, dtype=torch.long, device=device)
    pointer = getattr(model, "pointer", None) is not None
    guided = pointer and guide_weight > 0

    def refill_queue() -> None:
        nonlocal exhausted, cache
        chunk = []
        while len(chunk) < batch_size and not exhausted:
            item = next(source, None)
            if item is None:
                exhausted = True
            else:
                chunk.append(item)
        if not chunk:
            return
        encoded, width, dtype = encode_chunk(model, tokenizer, chunk, device, rows=batch_size if pad_encoder_rows else None,
                                             length_multiple=length_multiple, signals=grammars.signals,
                                             guide_weight=guide_weight, anchor=anchor)
        if cache is None:
            cache = RowCache.empty(model.config, batch_size, width, device, dtype, max_positions=max_new_tokens + 1)
        queue.extend(encoded)

    def finish(b: int, truncated: bool) -> tuple[Any, WindowPrediction]:
        row = rows[b]
        assert row is not None
        tokens = row.tokens if not truncated else cut_unfinished_record(row.tokens, record_starts, eos)
        strings = [tokenizer.id_to_token(i) for i in tokens]
        annotation = parse_target_tokens(strings, window_size=row.length, max_records=grammars.max_records,
                                         max_exons=grammars.max_exons)
        rows[b] = None
        grammar_rows.stop(b)
        return row.key, WindowPrediction(tokens, annotation, truncated)

    while True:
        for b in range(batch_size):
            if rows[b] is not None:
                continue
            if not queue:
                refill_queue()
            if not queue:
                break
            window = queue.popleft()
            assert cache is not None
            cache.load(b, window.cross_k, window.cross_v, window.memory_ok_M)
            if window.pointer_keys_LP is not None:
                cache.load_pointer(b, window.pointer_keys_LP, window.pointer_valid_L, window.guide_RL)
            grammar_rows.start(b, grammars.for_window(window.length, window.bases), bos)
            rows[b] = _Row(window.key, window.length, [bos], window.structure)
            current_B[b] = bos
        active = [row is not None for row in rows]
        if not any(active):
            return
        assert cache is not None
        active_B = torch.tensor(active, device=device)
        if pointer:
            lows, highs, tracks = grammar_rows.coordinate_lows, grammar_rows.coordinate_highs, None
            if guided:
                lows, highs, tracks = guided_slots(rows, grammar_rows, cache)
            cache.set_coordinate_slots(grammar_rows.coordinate_slots, grammar_rows.coordinate_his,
                                       grammar_rows.last_coordinates, lows, highs, tracks)
        logits_BV = step(model, current_B, cache, active_B)
        if guided:
            logits_BV = add_structure_terms(logits_BV, rows, grammar_rows, tokenizer)
        picked = grammar_rows.pick(logits_BV)
        for b, row in enumerate(rows):
            if row is None:
                picked[b] = pad
                continue
            row.tokens.append(picked[b])
            if grammar_rows.advance(b, picked[b]):
                yield finish(b, truncated=False)
                picked[b] = pad
                continue
            if len(row.tokens) > max_new_tokens:
                yield finish(b, truncated=True)
                picked[b] = pad
        current_B = torch.tensor(picked, dtype=torch.long, device=device)


def guided_slots(rows: Sequence, grammar_rows: GrammarRows, cache: RowCache) -> tuple[list[int], list[int], list[int]]:
    """Each row's coordinate span and guide track under head guidance, set at a coordinate's
    ``hi`` digit and kept for its ``lo`` digit: the span of
    :meth:`~genoforge.inference.head_guide.StructureGuide.guided_span`; the track of its role,
    or at a CDS start the row's own track of ORF scores (written into ``cache``)."""
    lows, highs = list(grammar_rows.coordinate_lows), list(grammar_rows.coordinate_highs)
    tracks = list(grammar_rows.guide_tracks)
    for b, row in enumerate(rows):
        slot = grammar_rows.coordinate_slots[b]
        if row is None or row.structure is None or slot == SLOT_NONE:
            continue
        if slot == SLOT_HI:
            grammar, state = grammar_rows.grammars[b], grammar_rows.states[b]
            row.span = row.structure.guided_span(grammar, state, grammar_rows.last_coordinates[b],
                                                 grammar_rows.furthest_coordinates[b])
            row.track = tracks[b]
            if grammar.coordinate_role(state) == ROLE_CDS_START:
                values = row.structure.cds_start_track(grammar, state)
                if values is not None:
                    cache.set_row_track(b, ROW_TRACK, torch.from_numpy(values))
                    row.track = ROW_TRACK
        lows[b], highs[b] = row.span
        tracks[b] = row.track
    return lows, highs, tracks


def add_structure_terms(logits_BV: Tensor, rows: Sequence, grammar_rows: GrammarRows, tokenizer) -> Tensor:
    """``logits_BV`` (float32) plus each row's head-guidance structure terms
    (:class:`~genoforge.inference.head_guide.StructureGuide`): one small upload per step."""
    row_ids: list[int] = []
    token_ids: list[int] = []
    values: list[float] = []
    for b, row in enumerate(rows):
        if row is None or row.structure is None or grammar_rows.states[b] is None:
            continue
        grammar = grammar_rows.grammars[b]
        for token, value in row.structure.token_terms(grammar, grammar_rows.states[b],
                                                      grammar_rows.last_coordinates[b],
                                                      grammar_rows.furthest_coordinates[b]):
            if value:
                row_ids.append(b)
                token_ids.append(tokenizer.token_to_id(token))
                values.append(value)
    if not values:
        return logits_BV
    out = logits_BV.float().clone()
    out.index_put_((torch.tensor(row_ids, device=out.device), torch.tensor(token_ids, device=out.device)),
                   torch.tensor(values, device=out.device), accumulate=True)
    return out


class FullPrefixStep:
    """The reference ``step`` for :func:`decode_stream`: no KV cache, the decoder's training
    forward over every row's whole prefix at each step, and the logits of its last position.

    ``memory`` is the encoding (``model.encode``) of the batch whose window b decodes in row b,
    which holds when every window has a row of its own from the first step (no refills, as in
    :func:`decode_windows`). Only ``cache.position_B`` is used (advanced as the cached step
    does); a row given a second window is refused.
    """

    def __init__(self, memory):
        self.memory = memory
        self.fed: list[Tensor] = []  # the [B] token ids of every step so far

    @torch.no_grad()
    def __call__(self, model, token_ids_B: Tensor, cache: RowCache, active_B: Tensor) -> Tensor:
        if self.fed and bool(((cache.position_B == 0) & active_B).any()):
            raise ValueError("FullPrefixStep decodes one window per row; a row was refilled")
        self.fed.append(token_ids_B.clone())
        cache.position_B += 1
        hidden_BD, logits_BV = prefix_hidden_logits(model, self.memory, torch.stack(self.fed, dim=1))
        return model.pointer_logits(hidden_BD, logits_BV, cache)

    def reorder(self, parents_B: Tensor) -> None:
        """Beam search: row b continues row ``parents_B[b]``'s prefix."""
        self.fed = [t.index_select(0, parents_B) for t in self.fed]


def prefix_logits(model, memory, decoder_ids_BT: Tensor) -> Tensor:
    """Logits [B, V] after the last of ``decoder_ids_BT`` (one document per row, position 0 at
    its first token), from the decoder's full forward over the whole prefix."""
    return prefix_hidden_logits(model, memory, decoder_ids_BT)[1]


def prefix_hidden_logits(model, memory, decoder_ids_BT: Tensor) -> tuple[Tensor, Tensor]:
    """(hidden [B, D], logits [B, V]) after the last of ``decoder_ids_BT``: :func:`prefix_logits`."""
    config = model.config
    decoder_doc_BT = torch.zeros(decoder_ids_BT.shape, dtype=torch.long, device=decoder_ids_BT.device)
    self_spec = decoder_self_mask(decoder_doc_BT, config.decoder_window_size, config.decoder_block_size)
    cross_spec = cross_mask(decoder_doc_BT, memory.doc_BM.long(), config.decoder_block_size)
    positions_BT = torch.arange(decoder_ids_BT.shape[1], device=decoder_ids_BT.device).expand_as(decoder_ids_BT)
    hidden, _ = model.decoder(decoder_ids_BT, positions_BT, memory.states_BMD, self_spec, cross_spec,
                              model.backend_for(decoder_ids_BT.device))
    return hidden[:, -1], model.decoder.logits(hidden[:, -1])


def window_bases(tokenizer, item: tuple) -> str:
    """The sequence of a ``(key, ids, length[, bases])`` window: given, or read from its ids."""
    length = item[2]
    return item[3][:length] if len(item) > 3 else window_dna(tokenizer, item[1], length)


def add_base_fields(batch: dict, bases: Sequence[str | np.ndarray], ids: Sequence[Sequence[int]],
                    bp_lengths, device) -> None:
    """Add the per-base fields of windows (``bases`` as text or base codes, their encoder ``ids``;
    window i in row i) to their encoder ``batch``: what the per-base head and the coordinate
    pointer's keys read."""
    from genoforge.genes.classes import encode_bases
    from genoforge.model.base_inputs import base_fields

    width = batch["input_ids"].shape[1]
    codes = [encode_bases(b) if isinstance(b, str) else b for b in bases]
    fields = base_fields(codes, ids, [b * width for b in range(len(ids))], bp_lengths)
    batch.update({name: torch.from_numpy(value).to(device) for name, value in fields.items()})


@torch.no_grad()
def decode_windows(
    model,
    tokenizer,
    input_ids: Sequence[Sequence[int]],
    window_lengths: Sequence[int],
    *,
    grammars: GrammarCache | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    use_cache: bool = True,
    length_multiple: int = 1,
    rows: int | None = None,
    guide_weight: float = 0.0,
    anchor: ViterbiAnchor | None = None,
) -> list[WindowPrediction]:
    """Decode one batch of windows with :func:`decode_stream`, one row per window; every result
    parses (:mod:`genoforge.inference.decode`). Results in input order.

    This is the entry point for callers that already hold encoder ids, such as generative
    validation during training (the ids of a baked sample, hints included, work as they are).

    Args:
        model: a GenoforgeModel (put it in eval mode; its device is used).
        tokenizer: the model's GenoTokenizer.
        input_ids: encoder ids per window.
        window_lengths: each window's length in bp (the grammar's coordinate limit).
        grammars: a shared GrammarCache (built here when None).
        max_new_tokens: decoder steps per window at most.
        use_cache: False decodes with the :class:`FullPrefixStep` reference instead of the KV
            cache (tests compare the two).
        length_multiple, rows: pad the encoder batch (see :func:`encoder_batch`); ``rows`` also
            pads the decoder batch.
        guide_weight, anchor: head guidance (:func:`decode_stream`).

    Raises:
        ConfigError: ``max_new_tokens`` out of range (:func:`check_max_new_tokens`).
    """
    if len(input_ids) != len(window_lengths):
        raise ValueError("one window length per window is needed")
    if not input_ids:
        return []
    batch_size = max(rows or 0, len(input_ids))
    step = None
    if not use_cache:
        batch = encoder_batch(input_ids, tokenizer.bp_lengths(), tokenizer.pad_id, next(model.parameters()).device,
                              length_multiple=length_multiple, rows=batch_size)
        step = FullPrefixStep(model.encode(batch))
    windows = [(k, ids, length) for k, (ids, length) in enumerate(zip(input_ids, window_lengths, strict=True))]
    decoded = dict(decode_stream(model, tokenizer, windows, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                 grammars=grammars, length_multiple=length_multiple, pad_encoder_rows=True,
                                 step=step, guide_weight=guide_weight, anchor=anchor))
    return [decoded[k] for k in range(len(windows))]
