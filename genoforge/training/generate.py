"""Generative validation: decode validation windows during training and score them.

Loss says how well the model predicts the reference token by token; generative validation says
what it writes on its own. At each evaluation (``--generate_samples N``), the processes decode the
first N windows of the validation shard (deterministic: the same windows every time; under DDP
each rank decodes every world_size-th window and the predictions are gathered) with the
inference decoder (:func:`genoforge.inference.stream.decode_windows`: greedy, grammar-
constrained) and scores them against the windows' own targets with the ``genoforge eval`` scorer
(:func:`genoforge.evaluation.compare.compare_transcripts`).

Scores are pooled over the windows (micro-averaged): every window becomes its own sequence
(``seqid`` = ``window-<index>``), so nothing matches across windows, and one comparison counts
all their bases, exons, transcripts and genes together. Coordinates stay window-relative;
partial transcripts (cut by the window edge) are scored as they are clipped, on both sides alike.

A level's F1 is undefined when nothing is on either side; it is then reported as None (JSON
null). When only one side is empty (nothing found, or nothing to find) the F1 is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from genoforge.errors import TargetParseError
from genoforge.evaluation.compare import LEVELS, compare_transcripts
from genoforge.evaluation.metrics import LevelScore
from genoforge.genes.gene_models import Transcript
from genoforge.genes.target import parse_target_tokens
from genoforge.genes.window_models import WindowAnnotation


def window_transcripts(annotation: WindowAnnotation, seqid: str) -> list[Transcript]:
    """The window's transcripts as scorer gene models on sequence ``seqid`` (window coordinates).

    ``gene_id`` is the window's gene index, so isoforms of one window gene are one gene.
    """
    return [
        Transcript(seqid=seqid, strand=t.strand, biotype=t.biotype, gene_id=f"{seqid}:gene{t.gene}",
                   transcript_id=f"{seqid}:t{i}", exons=t.exons, cds=t.cds, cds_phase=t.cds_phase)
        for i, t in enumerate(annotation.transcripts)
    ]


def level_f1(score: LevelScore) -> float | None:
    """F1 of one level; 0 when exactly one side is empty, None when both are (module docstring)."""
    if score.f1 is not None:
        return score.f1
    return 0.0 if score.n_reference or score.n_prediction else None


def score_windows(
    references: Sequence[WindowAnnotation], predictions: Sequence[WindowAnnotation]
) -> dict[str, float | None]:
    """``gen_<level>_f1`` for every level of :data:`genoforge.evaluation.compare.LEVELS`, pooled."""
    if len(references) != len(predictions):
        raise ValueError("one prediction per reference window is needed")
    ref: list[Transcript] = []
    pred: list[Transcript] = []
    for i, (r, p) in enumerate(zip(references, predictions, strict=True)):
        ref += window_transcripts(r, f"window-{i}")
        pred += window_transcripts(p, f"window-{i}")
    levels = compare_transcripts(ref, pred)
    return {f"gen_{name}_f1": level_f1(levels[name]) for name in LEVELS}


@dataclass
class ValidationWindows:
    """The windows generative validation decodes: encoder ids, lengths and parsed references.

    ``skipped`` counts windows whose target does not parse (not a baked shard's; left out).
    """

    input_ids: list[list[int]]
    window_lengths: list[int]
    references: list[WindowAnnotation]
    skipped: int = 0


def load_validation_windows(shard, tokenizer, n: int) -> ValidationWindows:
    """The first ``n`` samples of ``shard`` (a PackedShard) with their reference annotations."""
    windows = ValidationWindows([], [], [])
    for i in range(min(n, len(shard))):
        sample = shard.sample(i)
        length = sample.window_end - sample.window_start
        tokens = [tokenizer.id_to_token(int(t)) for t in sample.target_ids]
        try:
            reference = parse_target_tokens(tokens, window_size=length)
        except TargetParseError:
            windows.skipped += 1
            continue
        windows.input_ids.append([int(t) for t in sample.input_ids])
        windows.window_lengths.append(length)
        windows.references.append(reference)
    return windows


DecodedWindow = tuple[int, WindowAnnotation, bool]  # (window index, prediction, truncated)


def decode_validation_windows(model, tokenizer, windows: ValidationWindows, indices: Sequence[int], *,
                              max_new_tokens: int, batch_size: int = 8,
                              autocast=nullcontext) -> list[DecodedWindow]:
    """Decode the windows at ``indices`` with ``model`` (batches of ``batch_size``, no grad).

    ``autocast`` makes the context the forward passes run in (training's bf16 autocast on CUDA).
    Leaves the model in the mode it found it in. Greedy decoding draws no random numbers, so the
    training RNG stream is untouched.
    """
    import torch

    from genoforge.inference.decode import GrammarCache
    from genoforge.inference.stream import decode_windows

    was_training = model.training
    model.eval()
    decoded: list[DecodedWindow] = []
    grammars = GrammarCache(tokenizer, signals=True)  # as predict decodes (its default)
    indices = list(indices)
    try:
        with torch.no_grad(), autocast():
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                out = decode_windows(model, tokenizer, [windows.input_ids[i] for i in chunk],
                                     [windows.window_lengths[i] for i in chunk],
                                     grammars=grammars, max_new_tokens=max_new_tokens)
                decoded += [(i, p.annotation, bool(p.truncated)) for i, p in zip(chunk, out, strict=True)]
    finally:
        model.train(was_training)
    return decoded


def score_decoded(windows: ValidationWindows, decoded: Sequence[DecodedWindow]) -> dict[str, Any]:
    """``gen_<level>_f1`` per level, ``gen_windows`` and ``gen_truncated`` of every window decoded.

    ``decoded`` may come from several processes in any order; each window must appear once.
    """
    by_index = {i: (annotation, truncated) for i, annotation, truncated in decoded}
    if len(by_index) != len(decoded) or sorted(by_index) != list(range(len(windows.references))):
        raise ValueError("every validation window must be decoded exactly once")
    order = sorted(by_index)
    predictions = [by_index[i][0] for i in order]
    return {**score_windows(windows.references, predictions), "gen_windows": len(predictions),
            "gen_truncated": sum(by_index[i][1] for i in order)}


def generative_validation(model, tokenizer, windows: ValidationWindows, *, max_new_tokens: int,
                          batch_size: int = 8, autocast=nullcontext) -> dict[str, Any]:
    """Decode every window of ``windows`` with ``model`` in this process and score them.

    Returns:
        ``gen_<level>_f1`` per level, ``gen_windows`` (windows scored) and ``gen_truncated``
        (windows cut by ``max_new_tokens``).
    """
    decoded = decode_validation_windows(model, tokenizer, windows, range(len(windows.input_ids)),
                                        max_new_tokens=max_new_tokens, batch_size=batch_size,
                                        autocast=autocast)
    return score_decoded(windows, decoded)
